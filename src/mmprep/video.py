"""Video plans, pixels and metadata-only token counts for GLM-4.1V / 4.6V and Nemotron Nano VL.

A plan is read from container metadata alone (:func:`mmprep.video_io.probe_video`, or a
:class:`VideoMetadata` you pass): the sampler (:mod:`mmprep.sampling`) picks frame indices and
prompt timestamps, then the family's sizing gives the grid and token counts. Pixels decode only
the planned frames (:func:`mmprep.video_io.read_frames`) and hand them to :mod:`mmprep.pixels`.

The metadata dict a sampler sees is what vLLM's default ``opencv`` loader reports when it keeps
every frame: ``fps`` = container fps, ``total_num_frames``, ``duration = total / fps`` and
``do_sample_frames = True``. Pass ``metadata=`` to plan with another dict (e.g. vLLM's own).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .errors import InvalidInputError, MmprepError, item_prefix
from .evs import retained_count
from .geometry import check_size, smart_resize, smart_resize_np
from .sampling import (
    FrameSample,
    glm41v_sample_frames,
    glm46v_sample_frames,
    opencv_dynamic_sample_frames,
    opencv_sample_frames,
)
from .types import PixelBatch, VideoMetadata, VideoPlan
from .video_count import glm_frame_counts
from .video_io import probe_video, read_frames

__all__ = [
    "probe_video", "read_frames", "glm_plan_video", "glm_video_pixels", "nemotron_plan_video",
    "nemotron_video_pixels", "count_video_tokens", "vllm_metadata",
]

NEMOTRON_LOADERS = ("opencv", "opencv_dynamic")


def vllm_metadata(meta: VideoMetadata) -> dict[str, Any]:
    """The metadata dict vLLM's ``opencv`` loader passes on when it keeps every frame."""
    return {
        "fps": meta.fps, "total_num_frames": meta.total_frames,
        "duration": meta.total_frames / meta.fps, "do_sample_frames": True,
    }


def _meta(source: Any, index: int | None) -> VideoMetadata:
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        frames, fps = source  # already decoded: (T, H, W, 3) and frames/s
        if frames.ndim != 4 or frames.shape[0] == 0:
            raise InvalidInputError(f"{item_prefix(index)}decoded frames must be (T>0, H, W, 3), got {frames.shape}")
        return VideoMetadata(frames.shape[0], float(fps), frames.shape[1], frames.shape[2])
    try:
        return probe_video(source)
    except MmprepError as e:
        raise type(e)(f"{item_prefix(index)}{e}") from None


def _frames(source: Any, indices, index: int | None, transform=None) -> np.ndarray:
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        frames = source[0]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= frames.shape[0]):
            raise InvalidInputError(f"{item_prefix(index)}frame index outside the {frames.shape[0]} decoded frames")
        return frames[idx] if transform is None else np.stack([transform(f) for f in frames[idx]])
    if isinstance(source, VideoMetadata):
        raise InvalidInputError(f"{item_prefix(index)}pixels need a video file, bytes or decoded frames, not metadata")
    try:
        return read_frames(source, indices, transform=transform)
    except MmprepError as e:
        raise type(e)(f"{item_prefix(index)}{e}") from None


# -- GLM -------------------------------------------------------------------------------------


def glm_sample(spec: Any, total_frames: int, metadata: Mapping[str, Any]) -> FrameSample:
    """The spec's sampler: GLM-4.1V (``video_fps``, ``video_max_duration``) or GLM-4.6V."""
    if spec.version == "4.1v":
        return glm41v_sample_frames(total_frames, metadata, fps=spec.video_fps, max_duration=spec.video_max_duration)
    return glm46v_sample_frames(total_frames, metadata, temporal_patch_size=spec.temporal_patch_size)


def glm_plan_video(
    family: Any, source: Any, *, metadata: Mapping[str, Any] | None = None, index: int | None = None
) -> VideoPlan:
    """Frames, int-second timestamps (one per temporal pair), resized size, grid and tokens.

    ``source``: a path, bytes, a binary file, a :class:`VideoMetadata` (with ``height`` and
    ``width``) or ``(frames, fps)`` already decoded. Sizes: ``smart_resize`` with ``num_frames``
    = sampled frames and the spec's ``video_min/max_pixels``; ``grid = (ceil(F/tps), h/p, w/p)``
    patches; ``tokens_per_frame = h*w // merge**2`` per temporal group;
    ``num_tokens = len(timestamps) * tokens_per_frame``.
    """
    s = family.spec
    meta = _meta(source, index)
    pre = item_prefix(index)
    if meta.height is None or meta.width is None:
        raise InvalidInputError(f"{pre}video metadata needs height and width to plan the resize")
    height, width = check_size(meta.height, meta.width, index)
    try:
        sample = glm_sample(s, meta.total_frames, metadata if metadata is not None else vllm_metadata(meta))
    except MmprepError as e:
        raise type(e)(f"{pre}{e}") from None
    return _glm_plan(s, meta, sample, height, width, pre)


def _glm_plan(s: Any, meta: VideoMetadata, sample: FrameSample, height: int, width: int, pre: str) -> VideoPlan:
    n = sample.num_frames
    if n == 0:
        raise InvalidInputError(
            f"{pre}a {meta.total_frames}-frame video at {meta.fps} fps is too short: the GLM-{s.version.upper()} "
            f"sampler picks no frame"
        )
    tps = s.temporal_patch_size
    try:
        rh, rw = smart_resize(n, height, width, temporal_factor=tps, factor=s.factor,
                              min_pixels=s.video_min_pixels, max_pixels=s.video_max_pixels)
    except InvalidInputError as e:
        raise InvalidInputError(f"{pre}video {height}x{width}, {n} frames: {e}") from None
    grid_t = -(-n // tps)
    gh, gw = rh // s.patch_size, rw // s.patch_size
    per_group = gh * gw // s.merge_size**2
    if len(sample.timestamps) != grid_t:
        raise InvalidInputError(
            f"{pre}{len(sample.timestamps)} timestamps but grid_t = {grid_t} temporal groups "
            f"({n} frames / temporal_patch_size {tps}): the placeholder would not match the encoder"
        )
    extra = {k: getattr(sample, k) for k in ("branch", "extract_t", "target_fps", "max_second")
             if getattr(sample, k) is not None}
    return VideoPlan(
        sample.frame_indices, sample.timestamps, rh, rw, (grid_t, gh, gw), per_group,
        len(sample.timestamps) * per_group, (per_group,) * grid_t, None, meta, extra,
    )


def glm_video_pixels(family: Any, videos: Any, *, backend: str = "fast", return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None) -> PixelBatch:
    """``pixel_values_videos`` ``(Σ rows, 3*tps*p*p)`` and ``video_grid_thw`` ``(n, 3)``.

    Each video is planned (:func:`glm_plan_video`), its planned frames decoded sparsely, then
    resized and patchified as ``Glm4vVideoProcessor`` / ``Glm46VVideoProcessor`` with sampling
    off would on those frames.
    """
    from .pixels import glm_video_patches
    from .pixels_batch import check_options, finish

    check_options(backend, return_tensors, dtype)
    s = family.spec
    values, grids, plans = _decode_batch(
        videos, backend, lambda src, i: glm_plan_video(family, src, index=i),
        lambda frames, plan: glm_video_patches(frames, plan.height, plan.width, s, backend=backend,
                                               dtype=dtype, threads=threads),
    )
    return finish(values, grids, plans, s.image_mean, s.image_std, dtype, return_tensors)


def _decode_batch(videos: Any, backend: str, plan_one: Any, pixels_one: Any) -> tuple[np.ndarray, np.ndarray, list]:
    """Plan, sparsely decode and turn into pixels each video; errors name the video's index."""
    plans, parts = [], []
    for i, src in enumerate(_as_videos(videos)):
        plan = plan_one(src, i)
        frames = _frames(src, plan.frame_indices, i, _fast_resize(backend, plan.height, plan.width))
        try:
            parts.append(pixels_one(frames, plan))
        except MmprepError as e:
            raise type(e)(f"{item_prefix(i)}{e}") from None
        plans.append(plan)
    values = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return values, np.asarray([p.grid for p in plans], dtype=np.int64), plans


def _fast_resize(backend: str, height: int, width: int):
    """The fast backend's resize, run in the decoding threads on each frame as it is decoded.

    The pixel functions skip a resize when the size already matches, so the result is the same
    as decoding everything first; only the full-size frames are never gathered.
    """
    if backend != "fast":
        return None
    from .pixels_resize import fast_bicubic_aa

    return lambda frame: fast_bicubic_aa(frame, height, width)


def _as_videos(videos: Any) -> list:
    if isinstance(videos, (list,)):
        items = list(videos)
    else:
        items = [videos]
    if not items:
        raise InvalidInputError("no videos given")
    return items


# -- Nemotron --------------------------------------------------------------------------------


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


def nemotron_plan_video(
    family: Any, source: Any, *, loader: str = "opencv", frame_indices=None, fps: float | None = None,
    index: int | None = None,
) -> VideoPlan:
    """Nemotron frames (one S x S tile each), timestamps, EVS-adjusted token counts.

    Frames come from vLLM's ``loader`` rule on the container metadata, or ``frame_indices``
    (into the original video, with ``fps`` = its frames/s) when you sampled them yourself.
    ``timestamps[i] = int(idx_i) * frame_duration_ms / 1000.0`` s. With
    ``spec.video_pruning_rate`` q > 0, the prompt carries ``R = retained_count(n, T, q)`` tokens,
    all in frame 1's span: ``frame_tokens = (R, 0, ..., 0)`` as the seed builds it.
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
            indices = tuple(int(i) for i in frame_indices)
            if not indices or min(indices) < 0 or max(indices) >= meta.total_frames:
                raise InvalidInputError(f"frame_indices must be non-empty and inside [0, {meta.total_frames})")
            extra = {"loader": None}
        ms = frame_duration_ms(meta.fps if fps is None else fps)
    except MmprepError as e:
        raise type(e)(f"{pre}{e}") from None
    T = len(indices)
    per_frame = s.tokens_per_tile
    side = s.image_size // s.patch_size
    if s.video_pruning_rate and s.video_pruning_rate > 0:
        kept = retained_count(per_frame, T, s.video_pruning_rate)
        frame_tokens = (kept,) + (0,) * (T - 1)
        extra["evs_retained"] = kept
    else:
        frame_tokens = (per_frame,) * T
    return VideoPlan(
        indices, tuple(int(i) * ms / 1000.0 for i in indices), s.image_size, s.image_size,
        (T, side, side), per_frame, sum(frame_tokens), frame_tokens, ms, meta, extra,
    )


def nemotron_video_pixels(family: Any, videos: Any, *, backend: str = "fast", return_tensors: str = "np",
                          dtype: str = "float32", threads: int | None = None, loader: str = "opencv") -> PixelBatch:
    """``pixel_values_flat`` ``(Σ T, 3, S, S)`` (one tile per frame) and grids ``(n, 3)`` =
    ``(T, S/p, S/p)``; ``video_num_patches`` is ``grids[:, 0]``."""
    from .pixels import nemotron_frame_tiles
    from .pixels_batch import check_options, finish

    check_options(backend, return_tensors, dtype)
    s = family.spec
    values, grids, plans = _decode_batch(
        videos, backend, lambda src, i: nemotron_plan_video(family, src, loader=loader, index=i),
        lambda frames, plan: nemotron_frame_tiles(frames, s, backend=backend, dtype=dtype, threads=threads),
    )
    return finish(values, grids, plans, s.norm_mean, s.norm_std, dtype, return_tensors)


# -- metadata-only counting ------------------------------------------------------------------


def _arrays(total_frames, fps, heights, widths):
    total = np.asarray(total_frames)
    rate = np.asarray(fps, dtype=np.float64)
    h, w = np.asarray(heights), np.asarray(widths)
    try:
        total, rate, h, w = np.broadcast_arrays(total, rate, h, w)
    except ValueError:
        raise InvalidInputError(
            f"total_frames, fps, heights and widths must broadcast, got shapes "
            f"{total.shape}, {rate.shape}, {h.shape}, {w.shape}"
        ) from None
    for name, arr in (("total_frames", total), ("heights", h), ("widths", w)):
        if arr.dtype.kind not in "iu" or (arr <= 0).any():
            bad = int(np.flatnonzero(~(arr > 0).ravel())[0]) if arr.dtype.kind in "iuf" and (arr <= 0).any() else 0
            raise InvalidInputError(f"{item_prefix(bad)}{name} must be positive ints")
    bad = ~(np.isfinite(rate) & (rate > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidInputError(f"{item_prefix(i)}fps must be positive and finite, got {rate.ravel()[i]}")
    return total.ravel().astype(np.int64), rate.ravel(), h.ravel().astype(np.int64), w.ravel().astype(np.int64)


def count_video_tokens(family: Any, total_frames, fps, heights, widths, *, loader: str = "opencv") -> np.ndarray:
    """Prompt placeholder tokens of many videos from metadata alone (int64 array).

    Equal to ``plan_video(VideoMetadata(total, fps, h, w)).num_tokens`` for every item. GLM: the
    frame counts come from batched twins of the samplers (:mod:`mmprep.video_count`) and
    ``smart_resize`` is vectorized per distinct frame count. Nemotron (``opencv`` loader): fully vectorized.
    """
    total, rate, h, w = _arrays(total_frames, fps, heights, widths)
    s = family.spec
    if hasattr(s, "version"):
        return _count_glm(s, total, rate, h, w)
    return _count_nemotron(s, total, rate, loader)


def _count_glm(s: Any, total: np.ndarray, rate: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    frames = glm_frame_counts(s, total, rate)  # batched twin of the scalar sampler
    if (frames == 0).any():
        i = int(np.flatnonzero(frames == 0)[0])
        raise InvalidInputError(f"{item_prefix(i)}a {total[i]}-frame video at {rate[i]} fps is too short: no frame sampled")
    stamps = (frames + 1) // 2  # one timestamp per pair of the (even) sampled frames
    grid_t = -(-frames // s.temporal_patch_size)
    if (stamps != grid_t).any():
        i = int(np.flatnonzero(stamps != grid_t)[0])
        raise InvalidInputError(f"{item_prefix(i)}{stamps[i]} timestamps but grid_t = {grid_t[i]}")
    out = np.empty(total.shape, dtype=np.int64)
    for n in np.unique(frames).tolist():
        sel = frames == n
        rh, rw, ok = smart_resize_np(n, h[sel], w[sel], s.temporal_patch_size, s.factor,
                                     s.video_min_pixels, s.video_max_pixels)
        if not ok.all():
            i = int(np.flatnonzero(sel)[np.flatnonzero(~ok)[0]])
            raise InvalidInputError(f"{item_prefix(i)}video {h[i]}x{w[i]} has an aspect ratio over 200")
        out[sel] = stamps[sel] * ((rh // s.patch_size) * (rw // s.patch_size) // s.merge_size**2)
    return out


def _count_nemotron(s: Any, total: np.ndarray, rate: np.ndarray, loader: str) -> np.ndarray:
    if loader != "opencv":
        counts = np.asarray([nemotron_sample(s, VideoMetadata(int(t), float(f)), loader).num_frames
                             for t, f in zip(total, rate)], dtype=np.int64)
    else:
        counts = total.copy()
        if s.video_num_frames > 0:
            counts = np.minimum(counts, s.video_num_frames)
        if s.video_fps > 0:
            counts = np.minimum(counts, np.floor(total / rate * s.video_fps).astype(np.int64))
        counts = np.maximum(counts, 1)
    ms_zero = (1000.0 / rate).astype(np.int64) == 0
    if ms_zero.any():
        i = int(np.flatnonzero(ms_zero)[0])
        raise InvalidInputError(f"{item_prefix(i)}fps {rate[i]} > 1000 gives frame_duration_ms 0")
    per_frame = s.tokens_per_tile
    if s.video_pruning_rate and s.video_pruning_rate > 0:
        return retained_count(np.full(counts.shape, per_frame), counts, s.video_pruning_rate)
    return counts * per_frame
