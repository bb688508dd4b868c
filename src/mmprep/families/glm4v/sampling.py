"""GLM video frame samplers, exact to the reference (SPEC §3):

* :func:`glm41v_sample_frames` - vLLM ``_get_video_second_idx_glm4v`` (GLM-4.1V).
* :func:`glm46v_sample_frames` - vLLM ``_get_video_second_idx_glm46v`` (GLM-4.6V).

Floats follow SPEC §0.2: every product and quotient is formed in the order the reference writes
it (traps T23, T25, T35).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ...sampling import FrameSample, check_frame_indices, fps_indices, linspace_int, _check_duration, _check_fps, _common, _passthrough, dedupe_keep_first


GLM46V_FPS_THRESHOLDS = ((30, 3), (300, 1), (2400, 0.5))  # DYNAMIC_FPS_THRES: (max s, fps)


GLM46V_MAX_FRAMES = 640  # MAX_FRAME_COUNT_DYNAMIC


GLM46V_MAX_DURATION = 2400  # s, MAX_DURATION


FRAMES_PER_TIMESTAMP = 2  # the samplers pad to pairs and print one timestamp per pair ([::2])


def _glm_finish(indices, video_fps) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dedupe, pad to pairs by repeating the last index, one ``int(idx / fps)`` per pair."""
    uniq = dedupe_keep_first(indices)
    if len(uniq) % FRAMES_PER_TIMESTAMP:
        uniq.append(uniq[-1])
    # int(idx / fps): a correctly rounded double quotient, then truncation (idx < 2**53)
    secs = np.trunc(np.asarray(uniq, dtype=np.float64) / float(video_fps)).astype(np.int64)
    return tuple(uniq), tuple(secs[::FRAMES_PER_TIMESTAMP].tolist())


def frame_seconds(frame_indices, video_fps) -> tuple[float, ...]:
    """transformers' timestamps: ``idx / fps`` (float s) of every other frame (``[::2]``)."""
    return tuple(int(i) / video_fps for i in frame_indices[::FRAMES_PER_TIMESTAMP])


def chosen_frames(frame_indices, total_frames: int, video_fps) -> FrameSample:
    """Frames the caller chose (indices into the original video at ``video_fps`` frames/s),
    finished as the samplers finish their own: de-duplicated, padded to pairs, stamped."""
    video_fps = _check_fps(video_fps)
    indices = list(check_frame_indices(frame_indices, total_frames))
    frames, stamps = _glm_finish(indices, video_fps)
    return FrameSample(frames, stamps, "chosen", len(indices))


def glm41v_sample_frames(
    total_frames: int, metadata: Mapping[str, Any], *, fps: float = 2, max_duration: float = 300,
    min_frames: int = 0,
) -> FrameSample:
    """GLM-4.1V frames and timestamps (SPEC §3.2).

    ``total_frames``: frames vLLM received (``len(video_array)``), used when metadata has no
    ``total_num_frames``. ``fps``/``max_duration``: the video processor's sampling rate
    (frames/s) and cap (s). ``metadata["do_sample_frames"]`` is required, as in the reference.
    An empty result (a clip shorter than one sampling period) is returned as is; ``min_frames=1``
    samples frame 0 there instead (transformers' ``Glm4vVideoProcessor.sample_frames``).
    """
    fps = _check_fps(fps, "video processor fps")
    _check_duration(max_duration)
    video_fps, meta_frames, duration = _common(metadata, total_frames, fps)
    if "do_sample_frames" not in metadata:
        raise InvalidInputError("GLM-4.1V needs metadata['do_sample_frames'] (vLLM raises KeyError)")
    if not metadata["do_sample_frames"]:
        indices, branch = _passthrough(metadata, meta_frames), "passthrough"
    else:
        indices, branch = fps_indices(duration, video_fps, meta_frames - 1, fps, max_duration, min_frames)
    frames, stamps = _glm_finish(indices, video_fps)
    return FrameSample(frames, stamps, branch, len(indices))


def glm46v_target_fps(duration) -> tuple[Any, Any]:
    """``(effective_duration, target_fps)``: duration capped at 2400 s, then 3 / 1 / 0.5 fps."""
    eff = min(duration, GLM46V_MAX_DURATION)
    for limit, target in GLM46V_FPS_THRESHOLDS[:-1]:
        if eff <= limit:
            return eff, target
    return eff, GLM46V_FPS_THRESHOLDS[-1][1]


def glm46v_loop(meta_frames: int, video_fps, tps: int, target_fps, max_second: int,
                max_picks: int | None = None) -> list[int]:
    """The reference's float-accumulator loop, vectorized with the same doubles (T25).

    Reference: for each frame k (stamp ``k * (1/fps)``), when ``stamp >= cur``: take k, then
    ``cur += 1/(tps*target_fps)`` and stop once ``cur >= max_second``. ``np.cumsum`` adds
    sequentially, so ``cur`` after j picks is bit-equal to the loop's. Pick j is the first frame
    at or after ``cur_j`` that comes after pick j-1: ``k_j = max(k_{j-1} + 1, first_j)``.
    ``max_picks``: stop after that many picks (the caller only needs to know there are more), so
    work and memory never grow with the frame count; ``first_j`` is found arithmetically from
    ``cur_j / dpf`` and settled with the loop's own products ``k * dpf``.
    """
    inv = 1 / (tps * target_fps)
    dpf = 1 / video_fps
    # picks are bounded by the frame count and by the stop rule (cur_j grows by inv per pick)
    n_cur = int(min(meta_frames, math.ceil(max_second / inv) + 2 if inv > 0 else meta_frames))
    if max_picks is not None:
        n_cur = min(n_cur, max_picks)
    cur = np.empty(n_cur + 1)
    cur[0] = 0.0
    np.cumsum(np.full(n_cur, inv), out=cur[1:])
    first = _first_frame_at(cur[:n_cur], dpf, meta_frames)
    j = np.arange(n_cur)
    picks = j + np.maximum.accumulate(first - j) if n_cur else first
    count = int((picks < meta_frames).sum())  # picks strictly increase: a prefix is valid
    stop = np.flatnonzero(cur[1 : count + 1] >= max_second)
    if stop.size:
        count = int(stop[0]) + 1
    elif count == n_cur < meta_frames and (max_picks is None or n_cur < max_picks):
        return glm46v_loop_reference(meta_frames, video_fps, tps, target_fps, max_second)  # never expected
    return picks[:count].tolist()


def _first_frame_at(cur: np.ndarray, dpf: float, meta_frames: int) -> np.ndarray:
    """For each ``c``, the least ``k`` in ``[0, meta_frames]`` with ``k * dpf >= c`` (the loop's
    float stamps; ``meta_frames`` when none): ``searchsorted(arange(n) * dpf, c)`` without the array."""
    k = np.clip(np.floor(cur / dpf) - 2, 0, meta_frames).astype(np.int64)
    for _ in range(6):  # the quotient is within an ulp-sized step of the answer: a few moves settle it
        k = np.where((k < meta_frames) & (k * dpf < cur), k + 1, k)
    back = (k > 0) & ((k - 1) * dpf >= cur)
    while back.any():  # (not expected) step down to the least k
        k = np.where(back, k - 1, k)
        back = (k > 0) & ((k - 1) * dpf >= cur)
    ahead = (k < meta_frames) & (k * dpf < cur)
    while ahead.any():
        k = np.where(ahead, k + 1, k)
        ahead = (k < meta_frames) & (k * dpf < cur)
    return k


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
        indices, branch = linspace_int(0, meta_frames - 1, extract_t), "linspace_all"
    else:
        # only "more than extract_t picks" matters beyond extract_t (the trim re-spaces them all)
        indices = glm46v_loop(meta_frames, video_fps, temporal_patch_size, target_fps, max_second, extract_t + 1)
        branch = "loop"
        if len(indices) < extract_t:
            start, end = (0, max(meta_frames - 1, 0)) if not indices else (indices[0], indices[-1])
            indices, branch = linspace_int(start, end, extract_t), "loop+fill_linspace"
        elif len(indices) > extract_t:
            indices, branch = linspace_int(0, meta_frames - 1, extract_t), "loop+trim_linspace"
    frames, stamps = _glm_finish(indices, video_fps)
    return FrameSample(frames, stamps, branch, len(indices), extract_t, target_fps, max_second)
