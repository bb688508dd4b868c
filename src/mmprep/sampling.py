"""Family-neutral pieces of video frame sampling: the sampler result type, argument checks and
two rules more than one sampler uses (:func:`fps_indices`, :func:`linspace_int`).

The samplers themselves live with their family (``families/glm4v/sampling.py``,
``families/nemotron/sampling.py``). ``metadata`` is the dict vLLM hands the processor: ``fps``,
``total_num_frames``, ``duration`` (s), ``do_sample_frames``, ``frames_indices``; a *missing* key
and a key set to a value differ, exactly as ``dict.get`` defaults differ in the reference.

Floats follow SPEC §0.2: every product and quotient is formed in the order the reference writes
it (traps T23, T25, T35).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import InvalidInputError

MAX_SAMPLED = 2**20  # frames one sampler rule may list before de-duplication (GLM-4.1V: 600)


@dataclass(frozen=True)
class FrameSample:
    """A sampler's answer: frame indices into the original video and the prompt timestamps.

    ``timestamps`` are what the sampler itself prints (int seconds, one per temporal group), or
    empty when the family derives them later from the frame indices. ``branch`` and ``num_before_dedupe`` say how the indices came about.
    """

    frame_indices: tuple[int, ...]
    timestamps: tuple[int, ...]
    branch: str
    num_before_dedupe: int
    extract_t: int | None = None  # GLM-4.6V: frames asked for (<= 640)
    target_fps: float | None = None  # GLM-4.6V: 3, 1 or 0.5 frames/s
    max_second: int | None = None  # GLM-4.6V: int(duration)
    do_sample_frames: bool | None = None  # opencv loader: whether every frame was kept

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)


# -- validation ------------------------------------------------------------------------------


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{what} must be a number, got {value!r}")
    return value


def _check_fps(fps: Any, what: str = "fps") -> float:
    _real(fps, what)
    if not math.isfinite(fps) or fps <= 0:
        raise InvalidInputError(f"{what} must be a positive finite number of frames/s, got {fps!r}")
    return fps


def _check_frames(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidInputError(f"{what} must be a positive int (the video has no frames?), got {n!r}")
    return int(n)


def _check_duration(duration: Any) -> float:
    _real(duration, "duration")
    if not math.isfinite(duration) or duration <= 0:
        raise InvalidInputError(f"duration must be a positive finite number of seconds, got {duration!r}")
    return duration


def check_frame_indices(frame_indices: Any, total_frames: int) -> tuple[int, ...]:
    """Caller-chosen frame indices: a non-empty sequence of ints (whole floats accepted) inside
    ``[0, total_frames)``; a fraction, a bool, NaN or a string is refused, never truncated."""
    if isinstance(frame_indices, (str, bytes)) or not hasattr(frame_indices, "__iter__"):
        raise InvalidInputError(f"frame_indices must be a list of ints, got {type(frame_indices).__name__}")
    out = []
    for k, i in enumerate(frame_indices):
        whole = isinstance(i, (float, np.floating)) and math.isfinite(i) and float(i).is_integer()
        if isinstance(i, (bool, np.bool_)) or not (isinstance(i, (int, np.integer)) or whole):
            raise InvalidInputError(f"frame_indices[{k}] must be an int, got {i!r}")
        out.append(int(i))
    if not out:
        raise InvalidInputError("frame_indices must not be empty")
    if min(out) < 0 or max(out) >= total_frames:
        raise InvalidInputError(f"frame_indices must lie inside [0, {total_frames}), got {min(out)}..{max(out)}")
    return tuple(out)


def _passthrough(metadata: Mapping[str, Any], meta_frames: int) -> list[int]:
    if "frames_indices" not in metadata:
        raise InvalidInputError("do_sample_frames is false but metadata has no 'frames_indices'")
    out = []
    for i, idx in enumerate(metadata["frames_indices"]):
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise InvalidInputError(f"frames_indices[{i}] must be an int, got {idx!r}")
        if not 0 <= idx < meta_frames:
            raise InvalidInputError(f"frames_indices[{i}] = {idx} is outside [0, {meta_frames})")
        out.append(int(idx))
    return out


def _common(metadata: Mapping[str, Any], total_frames: int, fps_default: Any) -> tuple[Any, int, Any]:
    """``(video_fps, meta_frames, duration)`` with the reference's ``.get`` defaults, validated."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    video_fps = _check_fps(metadata.get("fps", fps_default), "metadata fps")
    meta_frames = _check_frames(metadata.get("total_num_frames", total_frames), "total_num_frames")
    max_idx = meta_frames - 1
    duration = _check_duration(metadata.get("duration", round(max_idx / video_fps) + 1))
    return video_fps, meta_frames, duration


# -- shared tail -----------------------------------------------------------------------------


def dedupe_keep_first(indices) -> list[int]:
    """Drop repeats, keeping each index's first occurrence and the original order (T35)."""
    arr = np.asarray(indices, dtype=np.int64).ravel()
    if arr.size == 0:
        return []
    _, first = np.unique(arr, return_index=True)
    return arr[np.sort(first)].tolist()


# -- GLM-4.1V --------------------------------------------------------------------------------


# -- GLM-4.6V --------------------------------------------------------------------------------


# -- Nemotron: vLLM's video loaders ------------------------------------------------------------


def fps_indices(duration, video_fps, max_idx: int, fps, max_duration, min_frames: int = 0) -> tuple[list[int], str]:
    """Frames at ``fps`` per second up to ``max_duration`` s, else evenly over it (SPEC §3.2 steps 3-4):
    GLM-4.1V's sampler and vLLM's ``opencv_dynamic`` loader share this rule. ``min_frames``: at
    least this many frames on the short branch (transformers' GLM-4.1V sampler takes 1)."""
    if duration <= max_duration:
        n = max(int(math.floor(duration * fps)), min_frames)
        _check_sampled(n)
        # i * video_fps first, then / fps: the reference's order
        raw = np.ceil((np.arange(n, dtype=np.float64) * video_fps) / fps)
        return np.minimum(max_idx, raw).astype(np.int64).tolist(), "fps"
    num_samples = int(max_duration * fps)
    if num_samples >= max_idx + 1:
        return list(range(max_idx + 1)), "all_frames"
    _check_sampled(num_samples)
    seconds = np.linspace(0, duration, num_samples, endpoint=True)
    return np.minimum(max_idx, np.ceil(seconds * video_fps)).astype(np.int64).tolist(), "linspace_seconds"


def linspace_int(start: int, stop: int, num: int) -> list[int]:
    _check_sampled(num)
    return np.linspace(start, stop, num, dtype=int).tolist()


def _check_sampled(n: int) -> None:
    if n > MAX_SAMPLED:
        raise InvalidInputError(
            f"the sampler would list {n} frames, above the limit of {MAX_SAMPLED} (check the spec's "
            f"video fps / duration / frame settings)"
        )
