"""GLM video plans, pixels and metadata-only counts: sampler -> smart-resize -> grid -> tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import InvalidInputError, MmprepError, item_prefix
from ...video import _decode_batch, _meta, video_arrays, vllm_metadata
from ...types import PixelBatch, VideoMetadata, VideoPlan
from ...validate import check_size, finish_counts
from .sampling import (
    FRAMES_PER_TIMESTAMP, FrameSample, chosen_frames, frame_seconds, glm41v_sample_frames, glm46v_sample_frames,
)
from .sizing import MAX_RATIO, smart_resize, smart_resize_np
from .frame_counts import glm_frame_counts


def glm_sample(spec: Any, total_frames: int, metadata: Mapping[str, Any]) -> FrameSample:
    """The spec's sampler: GLM-4.1V (``video_fps``, ``video_max_duration``) or GLM-4.6V."""
    if spec.version == "4.1v":
        sample = glm41v_sample_frames(total_frames, metadata, fps=spec.video_fps, max_duration=spec.video_max_duration,
                                      min_frames=int(spec.short_clip_rule == "one_frame"))
    else:
        sample = glm46v_sample_frames(total_frames, metadata, temporal_patch_size=spec.temporal_patch_size)
    if spec.timestamp_rule == "frame_seconds" and sample.frame_indices:
        video_fps = metadata.get("fps") if isinstance(metadata, Mapping) else None
        if video_fps:
            sample = dataclasses.replace(sample, timestamps=frame_seconds(sample.frame_indices, video_fps))
    return sample


def glm_plan_video(
    family: Any, source: Any, *, frame_indices=None, fps: float | None = None,
    metadata: Mapping[str, Any] | None = None, index: int | None = None,
) -> VideoPlan:
    """Frames, int-second timestamps (one per temporal pair), resized size, grid and tokens.

    ``source``: a path, bytes, a binary file, a :class:`VideoMetadata` (with ``height`` and
    ``width``) or ``(frames, fps)`` already decoded. Frames come from the spec's sampler on
    ``metadata`` (default: what vLLM's loader reports for the container), or ``frame_indices``
    into the original video at ``fps`` frames/s (default: the container's) when you chose them:
    they are de-duplicated, padded to pairs and stamped exactly as the sampler finishes its own.
    Sizes: ``smart_resize`` with ``num_frames`` = sampled frames and the spec's
    ``video_min/max_pixels``; ``grid = (ceil(F/tps), h/p, w/p)`` patches;
    ``tokens_per_frame = h*w // merge**2`` per temporal group.
    """
    s = family.spec
    meta = _meta(source, index)
    pre = item_prefix(index)
    if meta.height is None or meta.width is None:
        raise InvalidInputError(f"{pre}video metadata needs height and width to plan the resize")
    height, width = check_size(meta.height, meta.width, index)
    try:
        if frame_indices is not None:
            video_fps = meta.fps if fps is None else fps
            sample = chosen_frames(frame_indices, meta.total_frames, video_fps)
            if s.timestamp_rule == "frame_seconds":
                sample = dataclasses.replace(sample, timestamps=frame_seconds(sample.frame_indices, video_fps))
        else:
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
        rh, rw = smart_resize(n, height, width, temporal_factor=tps, factor=s.video_factor,
                              min_pixels=s.video_min_pixels, max_pixels=s.video_max_pixels)
    except InvalidInputError as e:
        raise InvalidInputError(f"{pre}video {height}x{width}, {n} frames: {e}") from None
    grid = s.video_grid(n, rh, rw)
    per_group = grid[1] * grid[2] // s.video_merge**2
    if len(sample.timestamps) != grid[0]:
        raise InvalidInputError(
            f"{pre}{len(sample.timestamps)} timestamps but grid_t = {grid[0]} temporal groups "
            f"({n} frames / temporal_patch_size {tps}): the placeholder would not match the encoder"
        )
    extra = {k: getattr(sample, k) for k in ("branch", "num_before_dedupe", "extract_t", "target_fps", "max_second")
             if getattr(sample, k) is not None}
    return VideoPlan(
        sample.frame_indices, sample.timestamps, rh, rw, grid, per_group,
        grid[0] * per_group, (per_group,) * grid[0], None, meta, extra,
    )


def glm_video_pixels(family: Any, videos: Any, *, backend: str = "reference", return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None) -> PixelBatch:
    """``pixel_values_videos`` ``(Σ rows, 3*tps*p*p)`` and ``video_grid_thw`` ``(n, 3)``.

    Each video is planned (:func:`glm_plan_video`), its planned frames decoded sparsely, then
    resized and patchified as ``Glm4vVideoProcessor`` / ``Glm46VVideoProcessor`` with sampling
    off would on those frames.
    """
    from .pixels import glm_video_patches
    from ...pixels.batch import check_options, finish

    check_options(backend, return_tensors, dtype, threads)
    s = family.spec
    values, grids, plans = _decode_batch(
        videos, backend, lambda src, i: glm_plan_video(family, src, index=i),
        lambda frames, plan: glm_video_patches(frames, plan.height, plan.width, s, backend=backend,
                                               dtype=dtype, threads=threads),
    )
    return finish(values, grids, plans, s.image_mean, s.image_std, dtype, return_tensors)


def glm_count_video_tokens(s: Any, total_frames, fps, heights, widths, on_error: str = "raise") -> np.ndarray:
    """Placeholder tokens per video from metadata alone; equals ``plan_video(...).num_tokens``.

    The frame counts come from batched twins of the samplers (:mod:`.frame_counts`); smart-resize
    is vectorized per distinct frame count; the grid is the plan's (:meth:`GlmSpec.video_grid`).
    """
    total, rate, h, w, ok = video_arrays(total_frames, fps, heights, widths, on_error)
    shape = np.broadcast_shapes(*(np.shape(x) for x in (total_frames, fps, heights, widths))) or (1,)
    frames = glm_frame_counts(s, total, rate)  # batched twin of the scalar sampler
    ok &= frames > 0
    stamps = frames // FRAMES_PER_TIMESTAMP  # the sampler pads to pairs and stamps each pair
    grid_t = s.video_grid(np.maximum(frames, 1), s.video_factor, s.video_factor)[0]
    ok &= (stamps == grid_t) | (frames == 0)
    counts = np.zeros(total.shape, dtype=np.int64)
    for n in np.unique(frames[ok]).tolist():
        sel = ok & (frames == n)
        rh, rw, ratio_ok = smart_resize_np(n, h[sel], w[sel], s.temporal_patch_size, s.video_factor,
                                           s.video_min_pixels, s.video_max_pixels)
        _, gh, gw = s.video_grid(n, rh, rw)
        counts[sel] = stamps[sel] * (gh * gw // s.video_merge**2)
        ok[np.flatnonzero(sel)[~ratio_ok]] = False

    def why(i: int) -> str:
        if frames[i] == 0:
            return f"a {total[i]}-frame video at {rate[i]} fps is too short: the sampler picks no frame"
        if stamps[i] != grid_t[i]:
            return f"{stamps[i]} timestamps but grid_t = {grid_t[i]}"
        return f"video {h[i]}x{w[i]} has an aspect ratio over {MAX_RATIO}"

    return finish_counts(counts, ok, on_error, why).reshape(shape)
