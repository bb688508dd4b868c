"""Invariant checks for a batch a user built or modified (numpy only; no hypothesis).

:func:`check_batch` runs them all on a :class:`~mmprep.Batch` (or a dict with the same keys and
``plans=``): every media item's placeholder run holds exactly its plan's ids and count, no
placeholder token sits outside an item, no item is cut by the end of the sequence, pixel rows
equal the plans' grids, per-item entries (``edges().item_keys``: grids, sizes, frame indices,
durations ...) equal the plans, and MRoPE ``position_ids`` have the right shape, are monotone where the
rule says so and equal the family's rule. Each failure raises :class:`BatchCheckError` naming
the sample, the item and the numbers.

The expected ids of an item are its family's own replacement (``family.placeholder(plan)``) in
the tokenizer's ids, so the checks never ask which family they serve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import MmprepError
from ..positions import MediaFeature
from ..prompt.driver import token_type_ids
from ..prompt.tokens import (
    Expansion,
    Span,
    as_vocab,
    pieces_num_features,
    pieces_to_ids,
)

MODALITIES = ("image", "video", "audio")


class BatchCheckError(MmprepError):
    """A batch breaks an invariant of its plans (the message names the sample and the numbers)."""


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _runs_starts(ids: np.ndarray, token: int) -> np.ndarray:
    """Indices where a run of ``token`` starts."""
    hit = ids == token
    start = hit.copy()
    start[1:] &= ~hit[:-1]
    return np.flatnonzero(start)


def _expected(family, plan, vocab, sample: int, modality: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    pieces = family.placeholder(plan)
    if pieces_num_features(pieces) != plan.num_tokens:
        raise BatchCheckError(
            f"sample {sample}: {modality} {index}: the plan says {plan.num_tokens} tokens but its placeholder "
            f"holds {pieces_num_features(pieces)} (a plan edited by hand?)"
        )
    return pieces_to_ids(pieces, vocab)


def _find(ids: np.ndarray, rep: np.ndarray, start: int) -> tuple[int | None, int | None]:
    """``(match, cut)``: the first run start >= ``start`` where ``rep`` lies whole, else where a
    proper prefix of it ends the sequence."""
    n, k = ids.size, rep.size
    for c in _runs_starts(ids, int(rep[0])).tolist():
        if c < start:
            continue
        if c + k <= n and np.array_equal(ids[c:c + k], rep):
            return c, None
        if c + k > n and np.array_equal(ids[c:], rep[: n - c]):
            return None, c
    return None, None


def _describe_run(ids: np.ndarray, features: set[int], start: int, vocab) -> str:
    hits = np.flatnonzero(np.isin(ids[start:], list(features)))
    if not hits.size:
        return f"no placeholder token after token {start}"
    at = start + int(hits[0])
    end = at
    while end < ids.size and ids[end] == ids[at]:
        end += 1
    return f"the next placeholder run starts at token {at} and holds {end - at} tokens (id {int(ids[at])})"


def media_spans(family, input_ids: Any, plans: Mapping[str, Sequence[Any]], *, tokenizer: Any,
                sample: int = 0) -> tuple[Span, ...]:
    """Where each media item of one sample sits in its (unpadded) ``input_ids``, in text order.

    ``plans``: ``{"image": [ImagePlan, ...], "video": [...], "audio": [...]}`` of this sample,
    in the order their placeholders appear per modality. Raises :class:`BatchCheckError` when an
    item's exact replacement is missing, cut by the end of the ids, or a placeholder token sits
    outside every item.
    """
    return _match(family, input_ids, plans, as_vocab(tokenizer), sample).spans


def _match(family, input_ids: Any, plans: Mapping[str, Sequence[Any]], vocab, sample: int) -> Expansion:
    """The sample's ids, its feature mask (tokens that take encoder rows) and spans, as found."""
    ids = _np(input_ids).astype(np.int64).ravel()
    reps = {m: [_expected(family, p, vocab, sample, m, i) for i, p in enumerate(plans.get(m, ()) or ())]
            for m in MODALITIES}
    features = {int(t) for items in reps.values() for rep, mask in items for t in rep[mask]}
    nxt = {m: 0 for m in MODALITIES}
    spans: list[Span] = []
    feature = np.zeros(ids.size, dtype=bool)
    cursor = 0
    while any(nxt[m] < len(reps[m]) for m in MODALITIES):
        found = []
        for m in MODALITIES:
            if nxt[m] < len(reps[m]):
                rep, mask = reps[m][nxt[m]]
                at, cut = _find(ids, rep, cursor)
                found.append((at if at is not None else np.inf, m, rep, mask, cut))
        at, m, rep, mask, cut = min(found, key=lambda f: f[0])
        if at == np.inf:  # nothing whole is left: an item cut by the end, else a missing one
            cuts = [f for f in found if f[4] is not None]
            if cuts:
                _, m, rep, mask, cut = min(cuts, key=lambda f: f[4])
        i = nxt[m]
        if at == np.inf:
            if cut is not None:
                raise BatchCheckError(
                    f"sample {sample}: {m} {i} is cut by the end of the sequence: it starts at token {cut} and "
                    f"{ids.size - cut} of its {rep.size} tokens remain ({int(mask[: ids.size - cut].sum())} of "
                    f"{int(mask.sum())} placeholder tokens)"
                )
            raise BatchCheckError(
                f"sample {sample}: {m} {i} needs its placeholder of {rep.size} tokens with {int(mask.sum())} "
                f"placeholder tokens (the plan's count) after token {cursor}, but it is not there: "
                f"{_describe_run(ids, features, cursor, vocab)}"
            )
        at = int(at)
        spans.append(Span(m, i, at, int(rep.size), int(mask.sum())))
        feature[at:at + rep.size] = mask
        nxt[m] += 1
        cursor = at + rep.size
    _check_strays(ids, spans, features, sample)
    return Expansion(ids, feature, tuple(spans))


def _check_strays(ids: np.ndarray, spans: Sequence[Span], features: set[int], sample: int) -> None:
    if not features:
        return
    covered = np.zeros(ids.size, dtype=bool)
    for s in spans:
        covered[s.start:s.start + s.length] = True
    stray = np.isin(ids, list(features)) & ~covered
    if stray.any():
        at = int(np.flatnonzero(stray)[0])
        raise BatchCheckError(
            f"sample {sample}: {int(stray.sum())} placeholder token(s) (first at token {at}, id {int(ids[at])}) "
            f"belong to no media item; the plans account for {sum(s.num_features for s in spans)} in "
            f"{len(spans)} item(s)"
        )


def check_truncation(spans: Sequence[Span], length: int, *, sample: int = 0) -> None:
    """Raise if cutting a sequence to its first ``length`` tokens splits a media span."""
    for s in spans:
        if s.start < length < s.start + s.length:
            raise BatchCheckError(
                f"sample {sample}: a cut at {length} tokens splits {s.modality} {s.index} (tokens {s.start}.."
                f"{s.start + s.length - 1}): {length - s.start} of its {s.length} tokens would remain"
            )


def _sample_plans(plans: Mapping[str, Any], b: int) -> dict[str, list]:
    return {m: list(plans[m][b]) for m in MODALITIES if m in plans and b < len(plans[m])}


def _item_value(plan, what: str) -> list[int]:
    """One item's row of a per-item batch entry: ``"grid"``, ``"grid_t"``, ``"size"`` (the
    resized ``(height, width)`` px) or a plan field (an int such as ``num_tokens``, or a tuple
    such as ``frame_indices``)."""
    if what == "grid":
        return [int(v) for v in plan.grid]
    if what == "grid_t":
        return [int(plan.grid[0])]
    if what == "size":
        return [int(plan.height), int(plan.width)]
    value = getattr(plan, what)
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)]


def _rows(value: Any, want: list[list[int]]) -> list[np.ndarray]:
    """A per-item batch entry as one int row per item: an ``(N, k)`` / ``(N,)`` array (or a flat
    ``N * k`` one), or a list of N rows of any length (``frames_indices``)."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) or hasattr(v, "shape") for v in value):
        return [_np(v).astype(np.int64).reshape(-1) for v in value]
    arr = _np(value).astype(np.int64)
    widths = {len(w) for w in want}
    if len(widths) == 1 and arr.size % widths.pop() == 0:
        return list(arr.reshape(-1, len(want[0]))) if want else []
    return list(arr.reshape(arr.shape[0], -1)) if arr.ndim else [arr.reshape(-1)]


def _show(row: Any, limit: int = 12) -> str:
    values = [int(v) for v in row]
    return str(values) if len(values) <= limit else f"[{', '.join(map(str, values[:limit]))}, ...] ({len(values)} values)"


def _row_difference(key: str, k: int, got: np.ndarray, want: list[int]) -> str:
    """Why row ``k`` differs from its plan: both rows when short, else the first difference."""
    if len(got) == len(want) and len(want) > 12:
        j = int(np.flatnonzero(got != np.asarray(want))[0])
        return (f"{key} row {k} differs from its plan at position {j} of {len(want)}: "
                f"{int(got[j])} but the plan says {want[j]}")
    return f"{key} row {k} is {_show(got)} but its plan says {_show(want)}"


def check_pixels(family, batch: Mapping[str, Any], plans: Mapping[str, Any]) -> None:
    """Pixel rows equal the plans' grids (``t*h*w`` patch rows for a 2-D patch array, ``t`` rows,
    tiles or frames, for a 4-D one), and every per-item entry the family names
    (``edges().item_keys``: grids, tiles per image, tokens per image, resized sizes, frame
    indices and durations, audio frames) equals the plans."""
    edges = family.edges()
    keys = edges.pixel_keys
    for m in MODALITIES:
        items = [(b, i, p) for b, per in enumerate(plans.get(m, ()) or ()) for i, p in enumerate(per)]
        if m in keys and keys[m] in batch:
            shape = getattr(batch[keys[m]], "shape", None) or _np(batch[keys[m]]).shape
            rows = [int(np.prod(p.grid)) if len(shape) == 2 else int(p.grid[0]) for _, _, p in items]
            if int(shape[0]) != sum(rows):
                per_sample: dict[int, int] = {}
                for (b, _, _), r in zip(items, rows):
                    per_sample[b] = per_sample.get(b, 0) + r
                raise BatchCheckError(
                    f"{m} pixels {keys[m]!r} have {int(shape[0])} rows but the plans' grids give {sum(rows)} "
                    f"(per sample: {per_sample})"
                )
    for key, (m, what) in edges.item_keys.items():
        items = [(b, i, p) for b, per in enumerate(plans.get(m, ()) or ()) for i, p in enumerate(per)]
        if key not in batch or not items:
            continue
        want = [_item_value(p, what) for _, _, p in items]
        got = _rows(batch[key], want)
        if len(got) != len(want):
            raise BatchCheckError(f"{key} has {len(got)} rows for {len(want)} planned {m} items")
        for k, ((b, i, _), row, plan_row) in enumerate(zip(items, got, want)):
            if len(row) != len(plan_row) or (row != np.asarray(plan_row)).any():
                raise BatchCheckError(f"sample {b}: {m} {i}: {_row_difference(key, k, row, plan_row)}")


def check_positions(family, position_ids: Any, attention_mask: Any, spans: Sequence[Sequence[Span]],
                    plans: Mapping[str, Any]) -> None:
    """MRoPE ``position_ids`` ``(3, B, L)``: text tokens share one position on all rows and step by
    one, the t row never decreases, and every sample equals ``family.mrope_positions``."""
    pos, mask = _np(position_ids), _np(attention_mask).astype(bool)
    if pos.ndim != 3 or pos.shape[0] != 3 or pos.shape[1:] != mask.shape:
        raise BatchCheckError(f"position_ids must be (3, B, L) = (3, {mask.shape[0]}, {mask.shape[1]}), got {pos.shape}")
    for b, sample_spans in enumerate(spans):
        p = pos[:, b, mask[b]]
        text = np.ones(p.shape[1], dtype=bool)
        for s in sample_spans:
            text[s.start:s.start + s.length] = False
        odd = np.flatnonzero(text & ((p[0] != p[1]) | (p[0] != p[2])))
        if odd.size:
            j = int(odd[0])
            raise BatchCheckError(f"sample {b}: text token {j} has positions {p[:, j].tolist()}; text shares one on all rows")
        down = np.flatnonzero(np.diff(p[0]) < 0)
        if down.size:
            j = int(down[0])
            raise BatchCheckError(f"sample {b}: the t row decreases from {int(p[0, j])} to {int(p[0, j + 1])} at token {j + 1}")
        feats = [MediaFeature(s.modality, s.start, tuple(int(v) for v in plans[s.modality][b][s.index].grid))
                 for s in sample_spans]
        want, _ = family.mrope_positions(p.shape[1], feats)
        diff = np.flatnonzero((np.asarray(want) != p).any(axis=0))
        if diff.size:
            j = int(diff[0])
            raise BatchCheckError(
                f"sample {b}: position_ids at token {j} are {p[:, j].tolist()} but the family's rule gives "
                f"{np.asarray(want)[:, j].tolist()}"
            )


def check_token_types(token_types: Any, attention_mask: Any, found: Sequence[Expansion]) -> None:
    """``mm_token_type_ids`` ``(B, L)`` mark exactly the placeholder tokens of each modality."""
    types, mask = _np(token_types), _np(attention_mask).astype(bool)
    if types.shape != mask.shape:
        raise BatchCheckError(f"mm_token_type_ids has shape {types.shape}, input_ids {mask.shape}")
    for b, exp in enumerate(found):
        got, want = types[b][mask[b]], token_type_ids(exp)
        bad = np.flatnonzero(got != want)
        if bad.size:
            j = int(bad[0])
            raise BatchCheckError(
                f"sample {b}: mm_token_type_ids at token {j} is {int(got[j])} but the spans give {int(want[j])} "
                f"({bad.size} tokens differ)"
            )


def check_batch(family, batch: Mapping[str, Any], *, tokenizer: Any, plans: Mapping[str, Any] | None = None
                ) -> list[tuple[Span, ...]]:
    """Check every invariant of a batch against its plans; return each sample's media spans.

    ``batch``: ``input_ids`` ``(B, L)`` (and ``attention_mask``; padding may sit on either side),
    optional pixels, grids and ``position_ids``. ``plans``: ``{modality: [[plan, ...] per
    sample]}`` (default: ``batch.plans``, which ``prompt`` / ``process`` fill). Raises
    :class:`BatchCheckError` for the first broken invariant.
    """
    plans = getattr(batch, "plans", None) if plans is None else plans
    if plans is None:
        raise BatchCheckError("no plans: pass plans={modality: [[plan, ...] per sample]} or a Batch that carries them")
    ids = _np(batch["input_ids"])
    ids = ids.reshape(1, -1) if ids.ndim == 1 else ids
    mask = _np(batch["attention_mask"]).reshape(ids.shape) if "attention_mask" in batch else np.ones(ids.shape, np.int64)
    for m in MODALITIES:
        if m in plans and plans[m] and len(plans[m]) != ids.shape[0]:
            raise BatchCheckError(f"plans hold {len(plans[m])} samples of {m}s but input_ids has {ids.shape[0]} rows")
    vocab = as_vocab(tokenizer)
    found = [_match(family, ids[b][mask[b].astype(bool)], _sample_plans(plans, b), vocab, b) for b in range(ids.shape[0])]
    spans = [e.spans for e in found]
    if "mm_token_type_ids" in batch:
        check_token_types(batch["mm_token_type_ids"], mask, found)
    check_pixels(family, batch, plans)
    if "position_ids" in batch:
        check_positions(family, batch["position_ids"], mask, spans, plans)
    return spans
