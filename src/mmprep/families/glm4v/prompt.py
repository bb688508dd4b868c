"""GLM prompts: placeholder pieces (image, video with timestamps), the rules the prompt driver
reads, and ``prompt`` / ``process``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...family import DEFAULT_BACKEND
from ...errors import InvalidInputError
from ...prompt import tokens as tk
from ...prompt.tokens import Piece, is_whole
from ...prompt.fast import fast_batch
from ...prompt.driver import (
    Rules, _batch, _check_all, _check_kw, _check_rows, _counts, _flat, _grids, _metadata_plans, _run,
    check_plans, image_plan, per_sample, split_samples,
)
from ...types import Batch, ImagePlan, VideoPlan
from .positions import glm_mrope_positions, glm_mrope_positions_flat
from .sizing import smart_resize_np


def glm_timestamp_text(version: str, second: float) -> str:
    """``"3"`` for GLM-4.1V, ``"3.0 seconds"`` for 4.6V (the seed's value is whole seconds, T20;
    transformers' ``idx / fps`` prints one decimal: ``"2.5 seconds"``)."""
    if version == "4.1v":
        return "{}".format(int(second))
    if version == "4.6v":
        return "{:.1f} seconds".format(second)
    raise InvalidInputError(f"GLM version must be '4.1v' or '4.6v', got {version!r}")


def glm_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<|image|>`` x tokens; begin/end-of-image come from the user's prompt (T28)."""
    return (Piece(spec.image_token, int(num_tokens), feature=True),)


def glm_video_pieces(spec: Any, timestamps: Sequence[int], grid: Sequence[int]) -> tuple[Piece, ...]:
    """bov, then per temporal group: boi, ``<|video|>`` x h*w/merge², eoi, timestamp text; eov.

    ``grid`` is ``video_grid_thw`` in patches; one timestamp per temporal group is required
    (vLLM does not check it; a mismatch desynchronises placeholders and encoder rows, §3.4).
    """
    if len(grid) != 3 or not all(is_whole(v) and v > 0 for v in grid):
        raise InvalidInputError(f"video grid must be three positive ints (t, h, w), got {list(grid)!r}")
    t, h, w = (int(v) for v in grid)
    for i, second in enumerate(timestamps):
        if isinstance(second, bool) or not isinstance(second, (int, float, np.integer, np.floating)) \
                or not math.isfinite(second) or second < 0:
            raise InvalidInputError(f"temporal group {i}: timestamp must be a non-negative number of seconds, got {second!r}")
    if len(timestamps) != t:
        raise InvalidInputError(
            f"video has {len(timestamps)} timestamps but grid_t = {t} temporal groups; they must be equal"
        )
    if spec.video_merge <= 0:
        raise InvalidInputError(f"merge_size must be positive, got {spec.video_merge}")
    n = h * w // spec.video_merge**2
    slot = spec.image_token if getattr(spec, "video_token_rule", "video") == "image" else spec.video_token
    pieces = [Piece(spec.video_start_token)]
    for ts in timestamps:
        pieces += [
            Piece(spec.image_start_token), Piece(slot, n, feature=True),
            Piece(spec.image_end_token), Piece(glm_timestamp_text(spec.version, ts), kind="text"),
        ]
    pieces.append(Piece(spec.video_end_token))
    return tuple(pieces)


def _glm_targets(family, vocab):
    s = family.spec
    names = (s.video_start_token, s.video_token, s.video_end_token)
    video = tuple(vocab.token_id(t) for t in names)
    targets = [tk.Target("image", (vocab.token_id(s.image_token),)), tk.Target("video", video)]
    return targets, dict(zip(video, names))  # any of the three outside a video placeholder is stray


def _glm_video_pieces(family, plan: VideoPlan):
    stamps = [int(t) if float(t).is_integer() else t for t in plan.timestamps]  # whole seconds (T20)
    return glm_video_pieces(family.spec, stamps, plan.grid)


GLM = Rules(
    modalities=("image", "video"),
    targets=_glm_targets,
    pieces={"image": lambda f, p: glm_image_pieces(f.spec, p.num_tokens), "video": _glm_video_pieces},
    mrope=lambda n, feats, spec: glm_mrope_positions(n, feats, spec.merge_size),
    mrope_many=lambda lengths, sample, offsets, grids, modality, spec: glm_mrope_positions_flat(
        lengths, sample, offsets, grids, modality != "image", spec.merge_size),
    max_items={"video": 1},  # vLLM: get_supported_mm_limits (T36)
)


_EASY = 2**40  # px: sizes the vectorized twin plans in bulk (everything else goes through plan_image)


def glm_size_plans(family, items: Sequence[Any]) -> list[ImagePlan | None]:
    """``family.plan_image(h, w)`` of every ``(h, w)`` item in one vectorized call (the sizing
    twin ``smart_resize_np``, tested equal); None for anything else (a plan, a bad or extreme
    size), which the caller plans one by one so that errors name the item."""
    at = [k for k, x in enumerate(items)
          if type(x) is tuple and len(x) == 2 and type(x[0]) is int and type(x[1]) is int
          and 0 < x[0] and 0 < x[1] and x[0] * x[1] <= _EASY]
    out: list[ImagePlan | None] = [None] * len(items)
    if len(at) < 8:  # a few sizes: the scalar plan_image is cheaper than the vectorized call's setup
        return out
    s = family.spec
    hw = np.array([items[k] for k in at], dtype=np.int64).reshape(-1, 2)
    rh, rw, ok = smart_resize_np(s.temporal_patch_size, hw[:, 0], hw[:, 1], s.temporal_patch_size, s.factor,
                                 s.image_min_pixels, s.image_max_pixels)
    rh, rw = rh.astype(np.int64), rw.astype(np.int64)
    gh, gw = rh // s.patch_size, rw // s.patch_size
    n = gh * gw // s.merge_size**2
    for k, good, h, w, a, b, c, d, t in zip(at, ok.tolist(), hw[:, 0].tolist(), hw[:, 1].tolist(), rh.tolist(),
                                              rw.tolist(), gh.tolist(), gw.tolist(), n.tolist()):
        if good:
            out[k] = ImagePlan(h, w, a, b, (1, c, d), t)
    return out


def _glm_image_plans(family, per: list[dict]):
    """``_metadata_plans``' image planner: every sample's sizes planned in one call up front."""
    flat = [x for media in per for x in media.get("image", ())]
    bulk = glm_size_plans(family, flat)
    first = np.cumsum([0] + [len(media.get("image", ())) for media in per]).tolist()

    def plan(b: int, xs: list) -> list:
        done = bulk[first[b]:first[b] + len(xs)]
        return [p if p is not None else image_plan(family, x, i) for i, (x, p) in enumerate(zip(xs, done))]

    return plan


def glm_prompt(family, text, images=(), videos=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids``, ``position_ids`` and grids from metadata alone (no pixels)."""
    _check_kw(kw, ())
    _, texts, per = split_samples(text, {"image": images, "video": videos})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, _glm_image_plans(family, per))
    check_plans(plans)  # before the grids are read from them
    extra = {"image_grid_thw": _grids(plans, "image"), "video_grid_thw": _grids(plans, "video")}
    fast = fast_batch(GLM, family, texts, plans, vocab, kw, extra, token_types=True)  # None: see why below
    if fast is not None:
        return fast
    prompts = _run(GLM, family, texts, plans, vocab, kw)
    return _batch(prompts, vocab, kw, extra, token_types=True)


def glm_process(family, text=None, images=None, videos=None, tokenizer=None, **kw) -> Batch:
    """Pixels, grids, expanded ids and MRoPE positions, like transformers' Glm4vProcessor."""
    _check_kw(kw, ("backend",))
    _, texts, per = split_samples(text, {"image": images, "video": videos})
    vocab = tk.as_vocab(tokenizer)
    rt, backend = kw.get("return_tensors", "np"), kw.get("backend", DEFAULT_BACKEND)
    plans: list[dict] = [dict() for _ in texts]
    extra: dict[str, Any] = {}
    merge2 = {"image": family.spec.merge_size**2, "video": family.spec.video_merge**2}
    checks = []  # (sample, modality, index, encoder rows)
    for modality, call, pix_key, grid_key in (
        ("image", family.pixels, "pixel_values", "image_grid_thw"),
        ("video", family.video_pixels, "pixel_values_videos", "video_grid_thw"),
    ):
        items = _flat(per, modality)
        if not items:
            continue
        pb = call(items, backend=backend, return_tensors=rt)
        grids = np.asarray(pb.grids, dtype=np.int64).reshape(-1, 3)
        _check_rows(pb.pixel_values, int(grids.prod(axis=1).sum()), modality)
        for b, chunk in enumerate(per_sample(list(pb.plans), _counts(per, modality))):
            plans[b][modality] = chunk
        k = 0
        for b, n in enumerate(_counts(per, modality)):
            checks += [(b, modality, i, int(grids[k + i].prod()) // merge2[modality]) for i in range(n)]
            k += n
        extra[pix_key], extra[grid_key] = pb.pixel_values, grids
    prompts = _run(GLM, family, texts, plans, vocab, kw)
    _check_all(prompts, checks, "the pixel grid")
    return _batch(prompts, vocab, kw, extra, token_types=True)
