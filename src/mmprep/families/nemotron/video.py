"""Nemotron video plans, pixels and metadata-only counts: loader -> frames -> one tile each -> EVS."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import InvalidInputError, MmprepError, item_prefix
from ...sampling import check_frame_indices
from ...video import _decode_batch, _meta, video_arrays
from ...validate import finish_counts
from ...types import PixelBatch, VideoMetadata, VideoPlan
from ...evs import retained_count
from .sampling import FrameSample, opencv_dynamic_sample_frames, opencv_sample_frames


NEMOTRON_LOADERS = ("opencv", "opencv_dynamic")


def nemotron_sample(spec: Any, meta: VideoMetadata, loader: str) -> FrameSample:
    """vLLM's loader rule with the spec's ``video_num_frames`` / ``video_fps`` (SPEC §3.5)."""
    if loader == "opencv":
        return opencv_sample_frames(meta.total_frames, meta.fps, num_frames=spec.video_num_frames,
                                    target_fps=spec.video_fps)
    if loader == "opencv_dynamic":
        return opencv_dynamic_sample_frames(meta.total_frames, meta.fps)
    raise InvalidInputError(f"loader must be one of {NEMOTRON_LOADERS}, got {loader!r}")


def frame_duration_ms(fps: float) -> int:
    """``int(1000.0 / fps)`` ms (29.97 -> 33, T16); an fps over 1000 would print every
    timestamp as 0.00, so it is rejected."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(fps) or fps <= 0:
        raise InvalidInputError(f"fps must be a positive finite number of frames/s, got {fps!r}")
    ms = int(1000.0 / fps)
    if ms == 0:
        raise InvalidInputError(f"fps {fps} > 1000 gives frame_duration_ms 0: every timestamp would be 0.00")
    return ms


def video_frame_size(spec: Any, height: int | None, width: int | None) -> tuple[int, int]:
    """px ``(height, width)`` each frame is resized to.

    Seed: one ``S x S`` tile. With ``video_target_num_patches`` (current vLLM
    ``get_video_target_size_and_feature_size``, transformers' Omni video processor): a patch grid
    near the target, aspect-preserving when ``video_maintain_aspect_ratio`` (each side rounded,
    then both moved to even: up when the product stays within the target, else down, at least 2);
    else the largest even square within it. An unknown size is taken as square, as vLLM's
    ``num_video_token`` does.
    """
    target = spec.video_target_num_patches
    p = spec.video_patch
    if target is None:
        return spec.image_size, spec.image_size
    ph, pw = video_patch_grid(target, spec.video_maintain_aspect_ratio, round(1 / spec.video_ratio),
                              height or 1, width or 1)
    return ph * p, pw * p


def video_patch_grid(target: int, keep_aspect: bool, divisor: int, height: int, width: int) -> tuple[int, int]:
    """``(patches down, patches across)`` of one frame for a patch target (see :func:`video_frame_size`)."""
    if not keep_aspect:
        side = max(divisor, int(math.sqrt(target)) // divisor * divisor)
        return side, side
    aspect = width / max(height, 1)
    ph = max(round(math.sqrt(target / aspect)), 1)
    pw = max(round(math.sqrt(target * aspect)), 1)
    if divisor > 1:
        rh, rw = ph % divisor, pw % divisor
        up_h, up_w = ph + (divisor - rh if rh else 0), pw + (divisor - rw if rw else 0)
        if up_h * up_w <= target:
            ph, pw = up_h, up_w
        else:
            ph, pw = max(divisor, ph - rh), max(divisor, pw - rw)
    return ph, pw


def video_patch_grid_np(target: int, keep_aspect: bool, divisor: int, heights, widths):
    """Vectorized :func:`video_patch_grid` (float64 maths as Python's; round half to even)."""
    h = np.asarray(heights, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    if not keep_aspect:
        side = max(divisor, int(math.sqrt(target)) // divisor * divisor)
        return np.full(h.shape, side, np.int64), np.full(h.shape, side, np.int64)
    aspect = w / np.maximum(h, 1.0)
    ph = np.maximum(np.round(np.sqrt(target / aspect)), 1).astype(np.int64)
    pw = np.maximum(np.round(np.sqrt(target * aspect)), 1).astype(np.int64)
    if divisor > 1:
        rh, rw = ph % divisor, pw % divisor
        up_h = ph + np.where(rh > 0, divisor - rh, 0)
        up_w = pw + np.where(rw > 0, divisor - rw, 0)
        fits = up_h * up_w <= target
        ph = np.where(fits, up_h, np.maximum(divisor, ph - rh))
        pw = np.where(fits, up_w, np.maximum(divisor, pw - rw))
    return ph, pw


def tubelet_tokens(spec: Any, frame_height: int, frame_width: int) -> int:
    """Tokens of one frame (or tubelet) of ``frame_height x frame_width`` px: the seed's
    :attr:`tokens_per_frame` for S x S tiles, else ``int(h/p * r) * int(w/p * r)`` (current vLLM)."""
    if spec.video_target_num_patches is None:
        return spec.tokens_per_frame
    p, r = spec.video_patch, spec.video_ratio
    return int((frame_height // p) * r) * int((frame_width // p) * r)


def num_tubelets(spec: Any, num_frames):
    """Prompt spans of ``num_frames`` frames: ``ceil(T / video_temporal_patch_size)`` (ints or numpy)."""
    t = spec.video_temporal_patch_size
    return -(-num_frames // t) if t > 1 else num_frames


def evs_frame_tokens(tokens_per_frame: int, num_frames: int, pruning_rate: float) -> tuple[int, ...]:
    """Per-frame placeholder tokens: ``(F,) * T`` without EVS; ``(R, 0, ..., 0)`` with it (T32),
    ``R = retained_count(F, T, q)``: the seed puts every kept token in frame 1's span."""
    if pruning_rate and pruning_rate > 0:
        return (int(retained_count(tokens_per_frame, num_frames, pruning_rate)),) + (0,) * (num_frames - 1)
    return (tokens_per_frame,) * num_frames


def nemotron_plan_video(
    family: Any, source: Any, *, loader: str = "opencv", frame_indices=None, fps: float | None = None,
    frame_tokens=None, index: int | None = None,
) -> VideoPlan:
    """Nemotron frames (one S x S tile each), timestamps, EVS-adjusted token counts.

    Frames come from vLLM's ``loader`` rule on the container metadata, or ``frame_indices``
    (into the original video, with ``fps`` = its frames/s) when you sampled them yourself.
    ``timestamps[i] = int(idx_i) * frame_duration_ms / 1000.0`` s. With
    ``spec.video_pruning_rate`` q > 0, the prompt carries ``R = retained_count(n, T, q)`` tokens,
    all in frame 1's span: ``frame_tokens = (R, 0, ..., 0)`` as the seed builds it.
    ``frame_tokens``: per-frame kept tokens measured by the model's EVS pass (vLLM builds the
    prompt from them when EVS runs in the loop); they replace the formula.
    """
    s = family.spec
    pre = item_prefix(index)
    meta = _meta(source, index)
    try:
        if frame_indices is None:
            sample = nemotron_sample(s, meta, loader)
            indices = sample.frame_indices
            extra: dict[str, Any] = {"loader": loader, "do_sample_frames": sample.do_sample_frames}
        else:
            indices = check_frame_indices(frame_indices, meta.total_frames)
            extra = {"loader": None}
        ms = frame_duration_ms(meta.fps if fps is None else fps)
        fh, fw = video_frame_size(s, meta.height, meta.width)
        if s.video_target_num_patches is not None and (meta.height is None or meta.width is None):
            extra["frame_size_from"] = "square (no video size given)"
        T = len(indices)
        groups = num_tubelets(s, T)
        if s.video_temporal_patch_size > 1:
            extra["tubelet_frames"] = s.video_temporal_patch_size
        per_frame = tubelet_tokens(s, fh, fw)
        if frame_tokens is None:
            frame_tokens = evs_frame_tokens(per_frame, groups, s.video_pruning_rate)
        else:
            frame_tokens = _checked_frame_tokens(frame_tokens, groups, per_frame)
            extra["frame_tokens_from"] = "model"
    except MmprepError as e:
        raise type(e)(f"{pre}{e}") from None
    p = s.video_patch
    return VideoPlan(
        indices, tuple(int(i) * ms / 1000.0 for i in indices), fh, fw,
        (groups, fh // p, fw // p), per_frame, sum(frame_tokens), frame_tokens, ms, meta, extra,
    )


def _checked_frame_tokens(frame_tokens, num_frames: int, per_frame: int) -> tuple[int, ...]:
    out = []
    for i, n in enumerate(frame_tokens):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InvalidInputError(f"frame {i}: token count must be a non-negative int, got {n!r}")
        out.append(int(n))
    if len(out) != num_frames:
        raise InvalidInputError(f"{num_frames} frames but {len(out)} per-frame token counts")
    if sum(out) > per_frame * num_frames:
        raise InvalidInputError(f"{sum(out)} kept tokens exceed the {per_frame * num_frames} the frames hold")
    return tuple(out)


def nemotron_video_pixels(family: Any, videos: Any, *, backend: str = "reference", return_tensors: str = "np",
                          dtype: str = "float32", threads: int | None = None, loader: str = "opencv") -> PixelBatch:
    """``pixel_values_flat`` ``(Σ T, 3, h, w)``: one resized frame per row (S x S tiles, or the
    tubelet rule's frame size); grids ``(n, 3)`` are the plans' ``(spans, h/p, w/p)``."""
    from .pixels import nemotron_frame_tiles
    from ...pixels.batch import check_options, finish

    check_options(backend, return_tensors, dtype, threads)
    s = family.spec
    values, grids, plans = _decode_batch(
        videos, backend, lambda src, i: nemotron_plan_video(family, src, loader=loader, index=i),
        lambda frames, plan: nemotron_frame_tiles(frames, s, backend=backend, dtype=dtype, threads=threads,
                                                  height=plan.height, width=plan.width),
    )
    return finish(values, grids, plans, s.norm_mean, s.norm_std, dtype, return_tensors)


def nemotron_count_video_tokens(s: Any, total_frames, fps, heights=1, widths=1, on_error: str = "raise",
                                loader: str = "opencv") -> np.ndarray:
    """Placeholder tokens per video from metadata alone; equals ``plan_video(...).num_tokens``.

    Sizes do not matter (every frame is one S x S tile). The ``opencv`` loader is vectorized;
    ``opencv_dynamic`` runs the scalar loader per video.
    """
    shape = np.broadcast_shapes(*(np.shape(x) for x in (total_frames, fps, heights, widths))) or (1,)
    total, rate, hh, ww, ok = video_arrays(total_frames, fps, heights, widths, on_error)
    if loader not in NEMOTRON_LOADERS:
        raise InvalidInputError(f"loader must be one of {NEMOTRON_LOADERS}, got {loader!r}")
    ok &= (1000.0 / rate).astype(np.int64) > 0  # frame_duration_ms would be 0
    if loader != "opencv":
        counts = np.ones(total.shape, dtype=np.int64)
        for i in np.flatnonzero(ok):
            try:
                counts[i] = nemotron_sample(s, VideoMetadata(int(total[i]), float(rate[i])), loader).num_frames
            except MmprepError:
                ok[i] = False
    else:
        counts = total.copy()
        if s.video_num_frames > 0:
            counts = np.minimum(counts, s.video_num_frames)
        if s.video_fps > 0:
            counts = np.minimum(counts, np.floor(total / rate * s.video_fps).astype(np.int64))
        counts = np.maximum(counts, 1)
    if s.video_target_num_patches is None:
        per_frame = np.full(counts.shape, s.tokens_per_frame, np.int64)
    else:  # the frame size follows the video's aspect ratio
        ph, pw = video_patch_grid_np(s.video_target_num_patches, s.video_maintain_aspect_ratio,
                                     round(1 / s.video_ratio), hh, ww)
        per_frame = (ph * s.video_ratio).astype(np.int64) * (pw * s.video_ratio).astype(np.int64)
    groups = num_tubelets(s, counts)
    if s.video_pruning_rate and s.video_pruning_rate > 0:
        tokens = retained_count(per_frame, groups, s.video_pruning_rate)
    else:
        tokens = groups * per_frame
    return finish_counts(
        np.asarray(tokens), ok, on_error,
        lambda i: f"a {total[i]}-frame video at {rate[i]} fps cannot be planned (fps above 1000 or no frame sampled)",
    ).reshape(shape)
