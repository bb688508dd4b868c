"""The family-independent half of a processor call: samples in, a padded :class:`Batch` out.

A family supplies :class:`Rules` (its placeholders, how a plan becomes a replacement, its MRoPE
function); this module tokenizes every sample's text once, expands placeholders with
:func:`mmprep.tokens.expand`, computes positions from the same spans and pads the batch.
Plans arrive ready-made: from metadata (``*_prompt``) or from the pixel/audio outputs
(``*_process``), so the two paths produce identical ids and positions by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BudgetError, InvalidInputError
from ..validate import MAX_AREA, MAX_TOKENS, check_int
from ..types import AudioPlan, Batch, ImagePlan, VideoPlan
from ..positions import MediaFeature, batch_positions
from .tokens import Expansion, Piece, Target, Vocab, expand

MODALITIES = ("image", "video", "audio")


@dataclass(frozen=True)
class Rules:
    """What a family contributes to prompt building (all plain functions of the spec)."""

    modalities: tuple[str, ...]
    targets: Callable[[Any, Vocab], tuple[list[Target], dict[int, str]]]  # (targets, forbidden id -> name)
    pieces: dict[str, Callable[[Any, Any], tuple[Piece, ...]]]  # modality -> f(family, plan)
    mrope: Callable[[int, list[MediaFeature], Any], tuple[np.ndarray, int]] | None = None
    # batched twin of mrope for many samples, on arrays over every item of the chunk:
    # f(lengths (B,), sample (Q,), offsets (Q,), grids (Q, 3), modality names (Q,), spec) ->
    # (positions (3, sum(lengths)), deltas (B,)); used by prompt/fast.py, tested equal to mrope
    mrope_many: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    prepare_text: Callable[[Any, str, int], str] | None = None  # f(family, text, sample)
    add_special_tokens: bool = True
    max_items: dict[str, int] = field(default_factory=dict)

    def placeholder(self, family: Any, plan: Any) -> tuple[Piece, ...]:
        """The replacement of one media item, read from its plan (what ``prompt`` splices in)."""
        modality = {ImagePlan: "image", VideoPlan: "video", AudioPlan: "audio"}.get(type(plan))
        if modality not in self.pieces:
            raise InvalidInputError(
                f"expected a plan of {', '.join(self.pieces)} (ImagePlan/VideoPlan/AudioPlan), got {type(plan).__name__}"
            )
        return self.pieces[modality](family, plan)


@dataclass(frozen=True)
class SamplePrompt:
    """One sample's expanded prompt and, for MRoPE families, its positions."""

    expansion: Expansion
    plans: dict[str, list[Any]]
    positions: np.ndarray | None  # (3, L) int64
    delta: int | None

    @property
    def input_ids(self) -> np.ndarray:
        return self.expansion.input_ids


# -- samples ----------------------------------------------------------------------------------


def split_samples(text: Any, media: dict[str, Any]) -> tuple[bool, list[str], list[dict[str, list]]]:
    """Normalise ``text`` (a str or a list of str) and per-modality media into samples.

    One sample: ``images=[a, b]``. A batch: ``text=[t0, t1]`` and ``images=[[a], [b, c]]``,
    one list per sample (an empty list for none).
    """
    given = {m: v for m, v in media.items() if v is not None and len(_as_list(v)) > 0}
    if text is None:
        if given:
            raise InvalidInputError(f"{'/'.join(given)} given without text: the text says where media go")
        raise InvalidInputError("text is required")
    single = isinstance(text, str)
    if not single and not isinstance(text, (list, tuple)):
        raise InvalidInputError(f"text must be a str or a list of str, got {type(text).__name__}")
    texts = [text] if single else list(text)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(f"sample {i}: text must be a str, got {type(t).__name__}")
    if not texts:
        raise InvalidInputError("text is an empty list")
    per = [dict() for _ in texts]
    for m, v in given.items():
        items = _as_list(v)
        if single:
            per[0][m] = items
            continue
        if len(items) != len(texts) or not all(isinstance(x, (list, tuple)) and not _is_size(x) for x in items):
            raise InvalidInputError(
                f"for a batch of {len(texts)} texts, {m}s must be a list of {len(texts)} lists "
                f"(one per sample), got {len(items)} entries"
            )
        for i, x in enumerate(items):
            per[i][m] = list(x)
    return single, texts, per


def _as_list(v: Any) -> list:
    if isinstance(v, (list, tuple)) and not _is_size(v):
        return list(v)
    return [v]


def _is_size(x: Any) -> bool:
    """``(h, w)`` ints: one image size, not a list of items."""
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, (int, np.integer)) for v in x)


# -- building -----------------------------------------------------------------------------------


def tokenize(rules: Rules, family: Any, texts: list[str], vocab: Vocab, add_special_tokens: bool | None) -> list[np.ndarray]:
    """Each sample's text tokenized once (a batch call), after the family's text preparation."""
    add = rules.add_special_tokens if add_special_tokens is None else bool(add_special_tokens)
    if rules.prepare_text is not None:
        texts = [rules.prepare_text(family, t, i) for i, t in enumerate(texts)]
    return [np.asarray(ids, dtype=np.int64) for ids in vocab.encode_many(texts, add)]


def build_sample(
    rules: Rules, family: Any, ids: np.ndarray, plans: dict[str, list[Any]], vocab: Vocab, sample: int
) -> SamplePrompt:
    """Expand one tokenized sample with its plans; MRoPE positions from the same spans."""
    for m, plist in plans.items():
        if m not in rules.modalities:
            raise InvalidInputError(f"sample {sample}: this model takes no {m} input (supported: {rules.modalities})")
        limit = rules.max_items.get(m)
        if limit is not None and len(plist) > limit:
            raise InvalidInputError(f"sample {sample}: {len(plist)} {m}s given; the model takes at most {limit} per prompt")
    for m, plist in plans.items():
        for i, p in enumerate(plist):
            check_plan(p, f"sample {sample}: {m} {i}")
    targets, forbidden = rules.targets(family, vocab)
    reps = {m: [rules.pieces[m](family, p) for p in plist] for m, plist in plans.items()}
    total = int(ids.size) + sum(p.repeat for r in reps.values() for pieces in r for p in pieces)
    if total > MAX_TOKENS:
        raise BudgetError(f"sample {sample}: the prompt would hold {total} tokens, above the limit of {MAX_TOKENS}")
    exp = expand(ids, targets, reps, vocab, forbidden=forbidden, sample=sample)
    positions = delta = None
    if rules.mrope is not None:
        feats = [MediaFeature(s.modality, s.start, tuple(int(v) for v in plans[s.modality][s.index].grid))
                 for s in exp.spans]
        positions, delta = rules.mrope(int(exp.input_ids.size), feats, family.spec)
    return SamplePrompt(exp, plans, positions, delta)


def check_plans(plans: list[dict[str, list]]) -> None:
    """:func:`check_plan` over every sample's plans, naming the sample and the item."""
    for b, sample_plans in enumerate(plans):
        for m, plist in sample_plans.items():
            for i, plan in enumerate(plist):
                if not _plain_plan(plan):
                    check_plan(plan, f"sample {b}: {m} {i}")


def _plain_plan(plan: Any) -> bool:
    """True for the common plan that :func:`check_plan` accepts at a glance: plain ints in range."""
    grid = getattr(plan, "grid", (0, 0, 0))
    n = getattr(plan, "num_tokens", None)
    frames = getattr(plan, "frame_tokens", ())
    if type(n) is not int or type(grid) is not tuple or len(grid) != 3 or type(frames) is not tuple or frames:
        return False  # anything else (videos' frame_tokens too): the full check
    t, h, w = grid
    return (type(t) is int and type(h) is int and type(w) is int and 0 <= n <= MAX_TOKENS
            and 0 <= t <= MAX_AREA and 0 <= h <= MAX_AREA and 0 <= w <= MAX_AREA)


def check_plan(plan: Any, where: str) -> None:
    """A plan as it enters a prompt (hand-built ones too): whole, non-negative token counts within
    :data:`~mmprep.validate.MAX_TOKENS` and a grid of three non-negative ints."""
    grid = getattr(plan, "grid", (0, 0, 0))

    def whole(v: Any, most: int) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= most

    if not whole(getattr(plan, "num_tokens", None), MAX_TOKENS):
        raise InvalidInputError(f"{where}: num_tokens must be an int in [0, {MAX_TOKENS}], got {plan.num_tokens!r}")
    if not (isinstance(grid, (tuple, list)) and len(grid) == 3 and all(whole(g, MAX_AREA) for g in grid)):
        raise InvalidInputError(f"{where}: grid must be three non-negative ints (t, h, w), got {grid!r}")
    frame_tokens = getattr(plan, "frame_tokens", ())
    if not all(whole(t, MAX_TOKENS) for t in frame_tokens):
        raise InvalidInputError(f"{where}: frame_tokens must be ints in [0, {MAX_TOKENS}], got {frame_tokens!r}")


# -- assembling a batch -------------------------------------------------------------------------


def pad_id(vocab: Vocab, pad_token_id: int | None) -> int:
    """The id padding uses: the argument, the tokenizer's pad token, else 0."""
    if pad_token_id is not None:
        return check_int(pad_token_id, "pad_token_id", maximum=2**63 - 1)
    tok = vocab.tokenizer
    pid = getattr(tok, "pad_token_id", None)
    if pid is None and getattr(tok, "padding", None):
        pid = tok.padding.get("pad_id")
    return int(pid) if pid is not None else 0


def assemble(
    prompts: list[SamplePrompt], *, pad: int, padding_side: str = "right", token_types: bool = False
) -> dict[str, np.ndarray]:
    """``input_ids``/``attention_mask`` ``(B, L)`` and, with MRoPE, ``position_ids`` ``(3, B, L)``
    and ``mrope_position_delta`` ``(B, 1)`` (transformers' layout; padding positions are 0)."""
    if padding_side not in ("right", "left"):
        raise InvalidInputError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    n = max(p.input_ids.size for p in prompts)
    ids = np.full((len(prompts), n), pad, dtype=np.int64)
    mask = np.zeros((len(prompts), n), dtype=np.int64)
    types = np.zeros((len(prompts), n), dtype=np.int64)
    for b, p in enumerate(prompts):
        k = p.input_ids.size
        sl = slice(0, k) if padding_side == "right" else slice(n - k, n)
        ids[b, sl] = p.input_ids
        mask[b, sl] = 1
        if token_types:
            types[b, sl] = token_type_ids(p.expansion)
    out = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        out["mm_token_type_ids"] = types
    if prompts[0].positions is not None:
        out["position_ids"] = batch_positions([p.positions for p in prompts], n, padding_side)
        out["mrope_position_delta"] = np.array([[p.delta] for p in prompts], dtype=np.int64)
    return out


def token_type_ids(exp: Expansion) -> np.ndarray:
    """0 text, 1 image, 2 video, 3 audio for every embedding slot (transformers' mm_token_type_ids)."""
    types = np.zeros(exp.input_ids.size, dtype=np.int64)
    code = {"image": 1, "video": 2, "audio": 3}
    for s in exp.spans:
        seg = slice(s.start, s.start + s.length)
        types[seg] = np.where(exp.feature_mask[seg], code[s.modality], 0)
    return types


def to_tensors(data: dict[str, Any], return_tensors: str) -> dict[str, Any]:
    """numpy arrays -> torch tensors for ``return_tensors="pt"`` (torch imported lazily)."""
    if return_tensors == "np":
        return data
    if return_tensors != "pt":
        raise InvalidInputError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            for k, v in data.items()}


def check_slots(sample: int, modality: str, index: int, slots: int, rows: int, what: str) -> None:
    """Feature slots in the prompt must equal the encoder rows the media will produce."""
    if slots != rows:
        raise InvalidInputError(
            f"sample {sample}: {modality} {index} has {slots} placeholder slots but {what} gives {rows} rows"
        )


def per_sample(items: Sequence[Any], counts: Sequence[int]) -> list[list[Any]]:
    """Split a flat sequence back into consecutive per-sample lists."""
    out, k = [], 0
    for c in counts:
        out.append(list(items[k:k + c]))
        k += c
    return out


# -- what every family's prompt/process shares --------------------------------------------


def image_plan(family, item: Any, index: int) -> ImagePlan:
    """An ImagePlan as is, or ``(height, width)`` px planned by the family."""
    if isinstance(item, ImagePlan):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return family.plan_image(item[0], item[1], index=index)
    raise InvalidInputError(f"image {index}: expected an ImagePlan or (height, width), got {type(item).__name__}")


def video_plan(family, item: Any, index: int) -> VideoPlan:
    """A VideoPlan as is, or VideoMetadata / a source planned by ``family.plan_video``."""
    if isinstance(item, VideoPlan):
        return item
    try:
        return family.plan_video(item)
    except ImportError:
        raise InvalidInputError(f"video {index}: pass a VideoPlan (the video planner is not installed)") from None


def audio_plan(family, item: Any, index: int) -> AudioPlan:
    """An AudioPlan as is, or a sample count (at the spec's rate) / source planned by the family."""
    if isinstance(item, AudioPlan):
        return item
    return family.plan_audio(item, index=index)


def _metadata_plans(family, per: list[dict], plan_images) -> list[dict[str, list]]:
    out = []
    for b, media in enumerate(per):
        plans: dict[str, list] = {}
        if media.get("image"):
            plans["image"] = plan_images(b, media["image"])
        if media.get("video"):
            plans["video"] = [video_plan(family, x, i) for i, x in enumerate(media["video"])]
        if media.get("audio"):
            plans["audio"] = [audio_plan(family, x, i) for i, x in enumerate(media["audio"])]
        out.append(plans)
    return out


def _run(rules: Rules, family, texts, plans, vocab, kw) -> list[SamplePrompt]:
    ids = tokenize(rules, family, texts, vocab, kw.get("add_special_tokens"))
    return [build_sample(rules, family, ids[b], plans[b], vocab, b) for b in range(len(texts))]


def _batch(prompts, vocab, kw, extra: dict, *, token_types=False) -> Batch:
    data = assemble(prompts, pad=pad_id(vocab, kw.get("pad_token_id")),
                    padding_side=kw.get("padding_side", "right"), token_types=token_types)
    data.update(extra)
    plans = {m: [p.plans.get(m, []) for p in prompts] for m in ("image", "video", "audio")}
    plans["spans"] = [p.expansion.spans for p in prompts]
    return Batch(to_tensors(data, kw.get("return_tensors", "np")), plans)


def _grids(plans: list[dict], modality: str) -> np.ndarray:
    rows = [tuple(p.grid) for sample in plans for p in sample.get(modality, [])]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _flat(per: list[dict], modality: str) -> list:
    return [x for media in per for x in media.get(modality, [])]


def _counts(per: list[dict], modality: str) -> list[int]:
    return [len(media.get(modality, [])) for media in per]


_KW = ("return_tensors", "padding_side", "pad_token_id", "add_special_tokens")


def _check_kw(kw: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(kw) - set(_KW) - set(allowed))
    if unknown:
        raise InvalidInputError(f"unknown keyword argument(s) {unknown}")


def _check_rows(pixel_values, expected: int, modality: str) -> None:
    rows = int(pixel_values.shape[0])
    if rows != expected:
        raise InvalidInputError(f"{modality} pixels have {rows} rows but the grids say {expected} patches")


def _check_all(prompts: list[SamplePrompt], checks, what: str) -> None:
    for b, modality, i, rows in checks:
        span = [s for s in prompts[b].expansion.spans if s.modality == modality and s.index == i][0]
        check_slots(b, modality, i, span.num_features, rows, what)
