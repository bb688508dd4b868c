"""vLLM's ``opencv`` and ``opencv_dynamic`` video loaders, which pick Nemotron's frames before
its processor runs (SPEC §3.5)."""

from __future__ import annotations

import math


from ...errors import InvalidInputError
from ...sampling import FrameSample, fps_indices, linspace_int, _check_duration, _check_fps, _check_frames, _real

# vLLM's opencv_dynamic loader defaults (its --media-io-kwargs may change them)
DYNAMIC_TARGET_FPS = 2.0  # frames/s sampled while the video is at most DYNAMIC_MAX_DURATION long
DYNAMIC_MAX_DURATION = 300.0  # s; longer videos get DYNAMIC_MAX_DURATION * DYNAMIC_TARGET_FPS frames spread evenly


def opencv_sample_frames(total_frames: int, fps: float, *, num_frames: int = 32, target_fps: float = 0.0) -> FrameSample:
    """vLLM's default ``opencv`` loader (SPEC §3.5).

    ``total_frames``/``fps``: the container's count and frames/s. ``num_frames`` (> 0: at most
    this many frames; vLLM's default 32) and ``target_fps`` (> 0: at most ``floor(duration *
    target_fps)`` frames). The count is at least 1; all frames are kept when it equals the total,
    otherwise ``linspace(0, total-1, n)`` truncated to ints.
    """
    total = _check_frames(total_frames, "total_frames")
    fps = _check_fps(fps)
    for what, v in (("num_frames", num_frames), ("target_fps", target_fps)):
        _real(v, what)
        if not math.isfinite(v):
            raise InvalidInputError(f"{what} must be finite, got {v!r}")
    duration = total / fps
    n = total
    if num_frames > 0:
        n = min(num_frames, total)
    if target_fps > 0:
        n = min(n, math.floor(duration * target_fps))
    n = max(1, n)
    if n == total:
        return FrameSample(tuple(range(total)), (), "all_frames", total, do_sample_frames=True)
    idx = tuple(linspace_int(0, total - 1, n))
    return FrameSample(idx, (), "linspace", n, do_sample_frames=False)


def opencv_dynamic_sample_frames(
    total_frames: int, fps: float, *, target_fps: float = DYNAMIC_TARGET_FPS, max_duration: float = DYNAMIC_MAX_DURATION
) -> FrameSample:
    """vLLM's ``opencv_dynamic`` loader: the GLM-4.1V rule with ``duration = total / fps``,
    de-duplicated by ``sorted(set(...))`` and never padded (SPEC §3.5)."""
    total = _check_frames(total_frames, "total_frames")
    fps = _check_fps(fps)
    target_fps = _check_fps(target_fps, "target_fps")
    _check_duration(max_duration)
    duration = total / fps
    indices, branch = fps_indices(duration, fps, total - 1, target_fps, max_duration)
    uniq = tuple(sorted(set(indices)))
    if not uniq:
        raise InvalidInputError(
            f"a {total}-frame video at {fps} fps ({duration} s) yields no frame at {target_fps} fps"
        )
    return FrameSample(uniq, (), branch, len(indices), do_sample_frames=False)
