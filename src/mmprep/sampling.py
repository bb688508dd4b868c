"""Video frame samplers: which frames a model sees and the timestamps its prompt prints.

Pure functions of a frame count and a metadata dict (SPEC §3), exact to the reference:

* :func:`glm41v_sample_frames` - vLLM ``_get_video_second_idx_glm4v`` (GLM-4.1V).
* :func:`glm46v_sample_frames` - vLLM ``_get_video_second_idx_glm46v`` (GLM-4.6V).
* :func:`opencv_sample_frames` / :func:`opencv_dynamic_sample_frames` - vLLM's ``opencv`` and
  ``opencv_dynamic`` video loaders, which pick Nemotron's frames before its processor runs.

``metadata`` is the dict vLLM hands the processor: ``fps`` (container frames/s),
``total_num_frames``, ``duration`` (s), ``do_sample_frames``, ``frames_indices``. A *missing* key
and a key set to a value differ, exactly as ``dict.get`` defaults differ in the reference.

Floats follow SPEC §0.2: every product and quotient is formed in the order the reference writes
it (traps T23, T25, T35); numpy is used only where it computes the same doubles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import InvalidInputError

GLM46V_FPS_THRESHOLDS = ((30, 3), (300, 1), (2400, 0.5))  # DYNAMIC_FPS_THRES: (max s, fps)
GLM46V_MAX_FRAMES = 640  # MAX_FRAME_COUNT_DYNAMIC
GLM46V_MAX_DURATION = 2400  # s, MAX_DURATION


@dataclass(frozen=True)
class FrameSample:
    """A sampler's answer: frame indices into the original video and the prompt timestamps.

    GLM: ``timestamps`` are int seconds, one per temporal pair (``[::2]`` after de-duplication
    and even padding). Nemotron loaders: ``timestamps`` is empty (the family computes them from
    ``frame_duration_ms``). ``branch`` and ``num_before_dedupe`` say how the indices came about.
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


def _glm_finish(indices, video_fps) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dedupe, pad to even by repeating the last index, one ``int(idx / fps)`` per pair."""
    uniq = dedupe_keep_first(indices)
    if len(uniq) & 1:
        uniq.append(uniq[-1])
    # int(idx / fps): a correctly rounded double quotient, then truncation (idx < 2**53)
    secs = np.trunc(np.asarray(uniq, dtype=np.float64) / float(video_fps)).astype(np.int64)
    return tuple(uniq), tuple(secs[::2].tolist())


# -- GLM-4.1V --------------------------------------------------------------------------------


def _glm41v_fps_indices(duration, video_fps, max_idx: int, fps, max_duration) -> tuple[list[int], str]:
    """SPEC §3.2 steps 3-4 (shared with vLLM's ``opencv_dynamic`` loader)."""
    if duration <= max_duration:
        n = int(math.floor(duration * fps))
        # i * video_fps first, then / fps: the reference's order
        raw = np.ceil((np.arange(n, dtype=np.float64) * video_fps) / fps)
        return np.minimum(max_idx, raw).astype(np.int64).tolist(), "fps"
    num_samples = int(max_duration * fps)
    if num_samples >= max_idx + 1:
        return list(range(max_idx + 1)), "all_frames"
    seconds = np.linspace(0, duration, num_samples, endpoint=True)
    return np.minimum(max_idx, np.ceil(seconds * video_fps)).astype(np.int64).tolist(), "linspace_seconds"


def glm41v_sample_frames(
    total_frames: int, metadata: Mapping[str, Any], *, fps: float = 2, max_duration: float = 300
) -> FrameSample:
    """GLM-4.1V frames and timestamps (SPEC §3.2).

    ``total_frames``: frames vLLM received (``len(video_array)``), used when metadata has no
    ``total_num_frames``. ``fps``/``max_duration``: the video processor's sampling rate
    (frames/s) and cap (s). ``metadata["do_sample_frames"]`` is required, as in the reference.
    An empty result (a clip shorter than one sampling period) is returned as is.
    """
    fps = _check_fps(fps, "video processor fps")
    _check_duration(max_duration)
    video_fps, meta_frames, duration = _common(metadata, total_frames, fps)
    if "do_sample_frames" not in metadata:
        raise InvalidInputError("GLM-4.1V needs metadata['do_sample_frames'] (vLLM raises KeyError)")
    if not metadata["do_sample_frames"]:
        indices, branch = _passthrough(metadata, meta_frames), "passthrough"
    else:
        indices, branch = _glm41v_fps_indices(duration, video_fps, meta_frames - 1, fps, max_duration)
    frames, stamps = _glm_finish(indices, video_fps)
    return FrameSample(frames, stamps, branch, len(indices))


# -- GLM-4.6V --------------------------------------------------------------------------------


def glm46v_target_fps(duration) -> tuple[Any, Any]:
    """``(effective_duration, target_fps)``: duration capped at 2400 s, then 3 / 1 / 0.5 fps."""
    eff = min(duration, GLM46V_MAX_DURATION)
    for limit, target in GLM46V_FPS_THRESHOLDS[:-1]:
        if eff <= limit:
            return eff, target
    return eff, GLM46V_FPS_THRESHOLDS[-1][1]


def glm46v_loop(meta_frames: int, video_fps, tps: int, target_fps, max_second: int) -> list[int]:
    """The reference's float-accumulator loop, vectorized with the same doubles (T25).

    Reference: for each frame k (stamp ``k * (1/fps)``), when ``stamp >= cur``: take k, then
    ``cur += 1/(tps*target_fps)`` and stop once ``cur >= max_second``. ``np.cumsum`` adds
    sequentially, so ``cur`` after j picks is bit-equal to the loop's. Pick j is the first frame
    at or after ``cur_j`` that comes after pick j-1: ``k_j = max(k_{j-1} + 1, first_j)``.
    """
    inv = 1 / (tps * target_fps)
    dpf = 1 / video_fps
    # picks are bounded by the frame count and by the stop rule (cur_j grows by inv per pick)
    n_cur = int(min(meta_frames, math.ceil(max_second / inv) + 2 if inv > 0 else meta_frames))
    cur = np.empty(n_cur + 1)
    cur[0] = 0.0
    np.cumsum(np.full(n_cur, inv), out=cur[1:])
    stamps = np.arange(meta_frames, dtype=np.float64) * dpf
    first = np.searchsorted(stamps, cur[:n_cur], side="left")
    j = np.arange(n_cur)
    picks = j + np.maximum.accumulate(first - j)
    count = int((picks < meta_frames).sum())  # picks strictly increase: a prefix is valid
    stop = np.flatnonzero(cur[1 : count + 1] >= max_second)
    if stop.size:
        count = int(stop[0]) + 1
    elif count == n_cur < meta_frames:  # the bound was too tight (never expected): be exact
        return glm46v_loop_reference(meta_frames, video_fps, tps, target_fps, max_second)
    return picks[:count].tolist()


def glm46v_loop_reference(meta_frames: int, video_fps, tps: int, target_fps, max_second: int) -> list[int]:
    """Plain-Python twin of :func:`glm46v_loop`, used only in tests."""
    dpf = 1 / video_fps
    stamps = [i * dpf for i in range(meta_frames)]
    out: list[int] = []
    cur = 0.0
    inv = 1 / (tps * target_fps)
    for k in range(meta_frames):
        if stamps[k] >= cur:
            cur += inv
            out.append(k)
            if cur >= max_second:
                break
    return out


def _linspace_int(start: int, stop: int, num: int) -> list[int]:
    return np.linspace(start, stop, num, dtype=int).tolist()


def glm46v_sample_frames(
    total_frames: int, metadata: Mapping[str, Any], *, temporal_patch_size: int = 2
) -> FrameSample:
    """GLM-4.6V frames and timestamps (SPEC §3.3).

    ``metadata["fps"]`` is required; ``do_sample_frames`` defaults to true.
    ``temporal_patch_size``: frames per temporal patch of the video processor (2).
    """
    if not isinstance(metadata, Mapping) or "fps" not in metadata:
        raise InvalidInputError("GLM-4.6V needs metadata['fps'] (vLLM raises KeyError)")
    if isinstance(temporal_patch_size, bool) or not isinstance(temporal_patch_size, int) or temporal_patch_size < 1:
        raise InvalidInputError(f"temporal_patch_size must be a positive int, got {temporal_patch_size!r}")
    video_fps, meta_frames, duration = _common(metadata, total_frames, None)
    if not metadata.get("do_sample_frames", True):
        indices = _passthrough(metadata, meta_frames)
        frames, stamps = _glm_finish(indices, video_fps)
        return FrameSample(frames, stamps, "passthrough", len(indices))
    eff, target_fps = glm46v_target_fps(duration)
    extract_t = min(int(eff * target_fps * temporal_patch_size), GLM46V_MAX_FRAMES)
    max_second = int(duration)
    if meta_frames < extract_t:
        indices, branch = _linspace_int(0, meta_frames - 1, extract_t), "linspace_all"
    else:
        indices = glm46v_loop(meta_frames, video_fps, temporal_patch_size, target_fps, max_second)
        branch = "loop"
        if len(indices) < extract_t:
            start, end = (0, max(meta_frames - 1, 0)) if not indices else (indices[0], indices[-1])
            indices, branch = _linspace_int(start, end, extract_t), "loop+fill_linspace"
        elif len(indices) > extract_t:
            indices, branch = _linspace_int(0, meta_frames - 1, extract_t), "loop+trim_linspace"
    frames, stamps = _glm_finish(indices, video_fps)
    return FrameSample(frames, stamps, branch, len(indices), extract_t, target_fps, max_second)


# -- Nemotron: vLLM's video loaders ------------------------------------------------------------


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
    idx = tuple(_linspace_int(0, total - 1, n))
    return FrameSample(idx, (), "linspace", n, do_sample_frames=False)


def opencv_dynamic_sample_frames(
    total_frames: int, fps: float, *, target_fps: float = 2, max_duration: float = 300
) -> FrameSample:
    """vLLM's ``opencv_dynamic`` loader: the GLM-4.1V rule with ``duration = total / fps``,
    de-duplicated by ``sorted(set(...))`` and never padded (SPEC §3.5)."""
    total = _check_frames(total_frames, "total_frames")
    fps = _check_fps(fps)
    target_fps = _check_fps(target_fps, "target_fps")
    _check_duration(max_duration)
    duration = total / fps
    indices, branch = _glm41v_fps_indices(duration, fps, total - 1, target_fps, max_duration)
    uniq = tuple(sorted(set(indices)))
    if not uniq:
        raise InvalidInputError(
            f"a {total}-frame video at {fps} fps ({duration} s) yields no frame at {target_fps} fps"
        )
    return FrameSample(uniq, (), branch, len(indices), do_sample_frames=False)
