"""Where GLM-4.1V / 4.6V counts jump, derived from the spec and the samplers' constants
(what :mod:`mmprep.testing` draws around; ``Glm4v.edges()``)."""

from __future__ import annotations

import math
from typing import Any

from ...testing.edges import Edges, ImageEdges, VideoEdges, steps
from .prompt import GLM
from .sampling import GLM46V_FPS_THRESHOLDS, GLM46V_MAX_DURATION, GLM46V_MAX_FRAMES
from .sizing import MAX_RATIO

PIXEL_KEYS = {"image": "pixel_values", "video": "pixel_values_videos"}  # glm_process's batch keys
ITEM_KEYS = {"image_grid_thw": ("image", "grid"), "video_grid_thw": ("video", "grid")}


def _sizes(factor: int, min_area: int, max_area: int, extra_areas: tuple[int, ...] = ()) -> ImageEdges:
    """smart_resize: sides round to multiples of ``factor`` (the step sits at half a factor),
    a side under ``factor`` is upscaled first, areas clamp at min/max, ratios above MAX_RATIO raise."""
    max_side = 2 * math.isqrt(max_area)
    return ImageEdges(
        sides=steps(factor // 2, factor, max_side, also=(factor,)),
        areas=tuple(sorted({min_area, max_area, *extra_areas})),
        ratios=(float(MAX_RATIO), 1.0 / MAX_RATIO),
        min_side=1, max_side=max_side,
    )


def _video_frames(s: Any) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """``(durations, rates, most frames)``: the sampler's thresholds, the container rates where
    its own rate meets the container's, and the largest frame count it returns."""
    tps = s.temporal_patch_size
    if s.version == "4.1v":
        return (float(s.video_max_duration),), (float(s.video_fps),), int(s.video_max_duration * s.video_fps)
    durations = {float(limit) for limit, _ in GLM46V_FPS_THRESHOLDS[:-1]} | {float(GLM46V_MAX_DURATION)}
    lower = 0.0
    for limit, target in GLM46V_FPS_THRESHOLDS:  # where the frame cap starts to bind in each regime
        cap_at = GLM46V_MAX_FRAMES / (target * tps)
        if lower < cap_at <= limit:
            durations.add(float(cap_at))
        lower = limit
    rates = tuple(sorted({float(target * tps) for _, target in GLM46V_FPS_THRESHOLDS}))
    return tuple(sorted(durations)), rates, GLM46V_MAX_FRAMES


def glm_edges(family: Any) -> Edges:
    s = family.spec
    tps = s.temporal_patch_size
    image = _sizes(s.factor, s.image_min_pixels // tps, s.image_max_pixels // tps)
    durations, rates, most = _video_frames(s)
    frame_areas = tuple(s.video_max_pixels // n for n in (tps, most) if n > 0)
    video = VideoEdges(
        durations=durations, frame_counts=(), fps=rates, max_fps=120.0,
        max_seconds=1.25 * max(durations), sizes=_sizes(s.video_factor, s.video_min_pixels // tps,
                                                          s.video_max_pixels // tps, frame_areas),
    )
    return Edges(
        modalities=family.modalities, image=image, video=video,
        placeholders={
            "image": s.image_start_token + s.image_token + s.image_end_token,
            "video": s.video_start_token + s.video_token + s.video_end_token,
        },
        max_items=dict(GLM.max_items), pixel_keys=PIXEL_KEYS, item_keys=ITEM_KEYS,
    )
