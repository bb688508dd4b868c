"""``explain``: every count as a structured account of the decisions that made it.

A family's ``explain_image`` / ``explain_video`` / ``explain_audio`` return an :class:`Explanation`
(one media item: the steps with their numbers, then the plan's figures); ``explain(text, ...)``
returns a :class:`PromptExplanation` (every item, where its placeholder sits, text tokens, MRoPE
offsets). The final figures are the plan's own; the steps re-derive them and the family checks
that they agree. Everything here is a plain dataclass: :func:`to_json` makes it JSON-ready,
:func:`render` prints it. This module never names a family.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MmprepError


@dataclass(frozen=True)
class Step:
    """One decision: a short name, a sentence, and the numbers it used or produced."""

    name: str
    text: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    """How one media item became its placeholder tokens."""

    modality: str  # "image", "video", "audio"
    family: str
    engine: str
    inputs: Mapping[str, Any]  # what was asked (sizes in px, frames, fps, samples)
    steps: tuple[Step, ...]
    num_tokens: int  # the plan's placeholder tokens (embedding slots)
    grid: tuple[int, ...] | None  # the plan's (t, h, w) patches, where it has one
    plan: Mapping[str, Any]  # the plan's fields (JSON-ready)
    rules: Mapping[str, Any] = field(default_factory=dict)  # engine-rule fields in effect


@dataclass(frozen=True)
class SpanInfo:
    """Where one item's replacement sits in the expanded prompt (token indices)."""

    modality: str
    index: int
    start: int
    length: int  # tokens of the whole replacement (wrappers and separators included)
    num_features: int  # embedding slots inside it
    position_start: int | None = None  # MRoPE: temporal position of the first token of the span
    position_next: int | None = None  # MRoPE: position of the token after the span (None: it ends the prompt)


@dataclass(frozen=True)
class PromptExplanation:
    """A whole prompt: its items, their spans, the text between them and the totals."""

    family: str
    engine: str
    items: tuple[Explanation, ...]
    media_tokens: int  # embedding slots of all items (sum of num_tokens)
    spans: tuple[SpanInfo, ...] = ()  # with a tokenizer only
    text_tokens: int | None = None  # prompt tokens outside every span (with a tokenizer)
    total_tokens: int | None = None  # len(input_ids) (with a tokenizer)
    mrope_delta: int | None = None  # MRoPE families: max position + 1 - length
    steps: tuple[Step, ...] = ()  # request-level decisions (e.g. a shared image budget)


def plan_fields(plan: Any) -> dict[str, Any]:
    """A plan's dataclass fields, JSON-ready (nested plans/metadata included)."""
    return to_json(plan) if dataclasses.is_dataclass(plan) else {}


def to_json(obj: Any) -> Any:
    """Dataclasses, tuples, numpy values and mappings as plain JSON types (NaN/inf as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return repr(obj)


def dumps(obj: Any) -> str:
    return json.dumps(to_json(obj), indent=2)


def check_equal(what: str, derived: Any, planned: Any) -> None:
    """The explanation re-derived ``what``; it must equal the plan's (a bug otherwise)."""
    if derived != planned:
        raise MmprepError(f"explain: the derived {what} {derived!r} differs from the plan's {planned!r}")


def preview(values: Sequence[Any], n: int = 8) -> list[Any]:
    """The first and last few of a long list, ``"..."`` between."""
    values = list(values)
    if len(values) <= 2 * n:
        return values
    return values[:n] + ["..."] + values[-n:]


# -- printing ---------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _render_item(e: Explanation, indent: str = "") -> list[str]:
    inputs = ", ".join(f"{k}={_fmt(v)}" for k, v in e.inputs.items())
    grid = f", grid {_fmt(e.grid)}" if e.grid else ""
    lines = [f"{indent}{e.modality} ({inputs}): {e.num_tokens} tokens{grid}"]
    for i, s in enumerate(e.steps, 1):
        lines.append(f"{indent}  {i}. {s.name}: {s.text}")
        if s.values:
            lines.append(f"{indent}     " + ", ".join(f"{k}={_fmt(v)}" for k, v in s.values.items()))
    if e.rules:
        lines.append(f"{indent}  engine rules: " + ", ".join(f"{k}={_fmt(v)}" for k, v in e.rules.items()))
    return lines


def render(obj: Explanation | PromptExplanation) -> str:
    """A readable account (what ``mmprep explain`` prints)."""
    if isinstance(obj, Explanation):
        return "\n".join([f"{obj.family} (engine {obj.engine})", *_render_item(obj)])
    lines = [f"{obj.family} (engine {obj.engine}): {len(obj.items)} media item(s), {obj.media_tokens} media tokens"]
    for s in obj.steps:
        lines.append(f"  request {s.name}: {s.text}")
        if s.values:
            lines.append("     " + ", ".join(f"{k}={_fmt(v)}" for k, v in s.values.items()))
    for e in obj.items:
        lines += _render_item(e, "  ")
    for s in obj.spans:
        pos = "" if s.position_start is None else (
            f", position {s.position_start}" + ("" if s.position_next is None else f", text resumes at {s.position_next}"))
        lines.append(f"  span {s.modality} {s.index}: tokens [{s.start}, {s.start + s.length}) "
                     f"({s.num_features} slots){pos}")
    if obj.total_tokens is not None:
        lines.append(f"  total: {obj.total_tokens} tokens = {obj.text_tokens} text + "
                     f"{obj.total_tokens - (obj.text_tokens or 0)} in spans")
    if obj.mrope_delta is not None:
        lines.append(f"  mrope delta: {obj.mrope_delta}")
    return "\n".join(lines)


# -- whole prompts ----------------------------------------------------------------------------


def _image_size(item: Any) -> Any:
    """Images as sizes or plans; a path, bytes or file is read for its header only."""
    if isinstance(item, (str, bytes, os.PathLike)) or hasattr(item, "read"):
        from .io.image import probe_image

        return tuple(probe_image(item))
    return item


def _first(batch: Any, key: str) -> Any:
    return np.asarray(batch[key]) if key in batch else None


def explain_prompt(family: Any, text: str, *, images: Any = (), videos: Any = (), audios: Any = (),
                   tokenizer: Any = None, explain_item: Any, request_steps: Any = None,
                   **options: Any) -> PromptExplanation:
    """One prompt's account from the family's ``prompt`` (with a tokenizer) or its plans alone.

    ``explain_item(modality, plan_or_source, index)`` -> :class:`Explanation`;
    ``request_steps(images)`` -> request-level steps and per-image plans (or None).
    """
    media = {"image": [_image_size(x) for x in images or ()], "video": list(videos or ()),
             "audio": list(audios or ())}
    steps: tuple[Step, ...] = ()
    if tokenizer is None:
        planned = {}
        if request_steps is not None and media["image"]:
            steps, planned["image"] = request_steps(media["image"])
        items = tuple(
            explain_item(m, planned[m][i] if m in planned else x, i)
            for m in ("image", "video", "audio") for i, x in enumerate(media[m])
        )
        return PromptExplanation(family.name, family.engine, items, sum(e.num_tokens for e in items), steps=steps)
    kw = {k: v for k, v in media.items() if v}
    batch = family.prompt(text, images=kw.get("image", ()), videos=kw.get("video", ()),
                          audios=kw.get("audio", ()), tokenizer=tokenizer, **options)
    planned = {}
    if request_steps is not None and media["image"]:
        steps, planned["image"] = request_steps(batch.plans["image"][0], planned=True)
    items = tuple(explain_item(m, planned[m][i] if m in planned else p, i) for m in ("image", "video", "audio")
                  for i, p in enumerate(batch.plans.get(m, [[]])[0]))
    ids = np.asarray(batch["input_ids"])[0]
    mask = _first(batch, "attention_mask")
    length = int(mask[0].sum()) if mask is not None else len(ids)
    pos = _first(batch, "position_ids")
    spans = []
    for s in batch.plans["spans"][0]:
        start = nxt = None
        if pos is not None and pos.ndim == 3:
            end = s.start + s.length
            start = int(pos[0, 0, s.start])
            nxt = int(pos[0, 0, end]) if end < length else None
        spans.append(SpanInfo(s.modality, s.index, s.start, s.length, s.num_features, start, nxt))
    delta = _first(batch, "mrope_position_delta")
    in_spans = sum(s.length for s in spans)
    return PromptExplanation(
        family.name, family.engine, items, sum(e.num_tokens for e in items), tuple(spans),
        length - in_spans, length, None if delta is None else int(delta.ravel()[0]), steps,
    )


def rules_in_effect(family: Any, fields: Sequence[str] = ()) -> dict[str, Any]:
    """The engine-rule spec fields (of rules that apply here) and their values."""
    out: dict[str, Any] = {}
    for rule in getattr(family, "engine_rules", ()):
        if rule.applies(family.spec):
            for name in rule.fields():
                if not fields or name in fields:
                    out[name] = getattr(family.spec, name)
    return out
