"""Family-neutral video plumbing: a video item's metadata and frames, the decode-and-pixels batch
loop, and the metadata arrays of vectorized counting.

A video item is a path, bytes, a binary file, a :class:`VideoMetadata` (plans only) or
``(frames, fps)`` already decoded. Plans are read from container metadata alone
(:func:`mmprep.io.video.probe_video`); pixels decode only the planned frames
(:func:`mmprep.io.video.read_frames`). The metadata dict a sampler sees is what vLLM's default
``opencv`` loader reports when it keeps every frame (:func:`vllm_metadata`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError, MmprepError, item_prefix
from .io.video import probe_video, read_frames
from .types import VideoMetadata
from .validate import (
    MAX_COUNT,
    MAX_SIDE,
    as_size_arrays,
    check_int,
    check_number,
    check_on_error,
    check_size,
)

MAX_FPS = 1e6  # frames/s: high-speed cameras record up to ~1e5
MAX_SECONDS = 1e9  # s of video (~32 years): durations and frame stamps stay exact in float64

__all__ = ["probe_video", "read_frames", "video_arrays", "vllm_metadata"]


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
        try:
            fps = float(check_number(fps, "fps"))
        except InvalidInputError as e:
            raise InvalidInputError(f"{item_prefix(index)}decoded frames: {e}") from None
        meta = VideoMetadata(frames.shape[0], fps, frames.shape[1], frames.shape[2])
    else:
        try:
            meta = probe_video(source)
        except MmprepError as e:
            raise type(e)(f"{item_prefix(index)}{e}") from None
    return check_metadata(meta, index)


def check_metadata(meta: VideoMetadata, index: int | None = None) -> VideoMetadata:
    """A video's metadata as it enters: a frame count in ``[1, MAX_COUNT]``, a finite fps > 0 (a
    number, not ``"30"``), sizes as :func:`~mmprep.validate.check_size` takes them or None, and a
    finite duration > 0 or None. Hand-built :class:`VideoMetadata` is checked here, once."""
    pre = item_prefix(index)
    try:
        total = check_int(meta.total_frames, "total_frames", minimum=1)
        fps = check_number(meta.fps, "fps", maximum=MAX_FPS)
        height, width = meta.height, meta.width
        if height is not None or width is not None:
            height, width = check_size(height, width)
        duration = meta.duration
        if duration is not None:
            duration = check_number(duration, "duration (s)")
        if total / fps > MAX_SECONDS or (duration is not None and duration > MAX_SECONDS):
            raise InvalidInputError(
                f"{total} frames at {fps} fps last {duration or total / fps:.6g} s, above the limit of "
                f"{MAX_SECONDS} s"
            )
    except InvalidInputError as e:
        raise InvalidInputError(f"{pre}video metadata: {e}") from None
    return VideoMetadata(total, fps, height, width, duration, meta.rotation)


def _frames(source: Any, indices, index: int | None, transform=None, expect_frames: int | None = None) -> np.ndarray:
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        frames = source[0]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= frames.shape[0]):
            raise InvalidInputError(f"{item_prefix(index)}frame index outside the {frames.shape[0]} decoded frames")
        return frames[idx] if transform is None else np.stack([transform(f) for f in frames[idx]])
    if isinstance(source, VideoMetadata):
        raise InvalidInputError(f"{item_prefix(index)}pixels need a video file, bytes or decoded frames, not metadata")
    try:
        return read_frames(source, indices, transform=transform, expect_frames=expect_frames)
    except MmprepError as e:
        raise type(e)(f"{item_prefix(index)}{e}") from None


# -- GLM -------------------------------------------------------------------------------------


def _decode_batch(videos: Any, backend: str, plan_one: Any, pixels_one: Any) -> tuple[np.ndarray, np.ndarray, list]:
    """Plan, sparsely decode and turn into pixels each video; errors name the video's index."""
    plans, parts = [], []
    for i, src in enumerate(_as_videos(videos)):
        plan = plan_one(src, i)
        # the decode checks the stream against the frame count the plan was made for
        expect = plan.metadata.total_frames if isinstance(plan.metadata, VideoMetadata) else None
        frames = _frames(src, plan.frame_indices, i, _fast_resize(backend, plan.height, plan.width), expect)
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
    from .pixels.resize import fast_bicubic_aa

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


# -- metadata-only counting ------------------------------------------------------------------


def video_arrays(total_frames, fps, heights, widths, on_error: str = "raise"):
    """Flat int64 frames/heights/widths, float64 fps and a validity mask for metadata-only counts.

    ``on_error="raise"`` raises for the first bad item (naming it); ``"minus_one"`` marks it
    invalid and puts harmless stand-in values (1 frame at 1 fps, 1x1 px) in its place.
    """
    check_on_error(on_error)
    total = np.asarray(total_frames)
    rate = np.asarray(fps)
    h, w = np.asarray(heights), np.asarray(widths)
    try:
        total, rate, h, w = np.broadcast_arrays(total, rate, h, w)
    except ValueError:
        raise InvalidInputError(
            f"total_frames, fps, heights and widths must broadcast, got shapes "
            f"{total.shape}, {rate.shape}, {h.shape}, {w.shape}"
        ) from None
    for name, arr in (("total_frames", total), ("fps", rate), ("heights", h), ("widths", w)):
        if arr.dtype.kind not in "iuf" or arr.dtype == bool:
            raise InvalidInputError(f"{name} must be numbers, got dtype {arr.dtype}")
    given = [a.ravel() for a in (total, rate, h, w)]  # as passed, for the error message
    h, w, size_ok = as_size_arrays(h.ravel(), w.ravel())
    total = total.ravel()
    whole = np.isfinite(total) & (total == np.trunc(total)) if total.dtype.kind == "f" else np.ones(total.shape, bool)
    total = np.where(whole, total, 1)
    ok = whole & (total > 0) & (total <= MAX_COUNT)
    total = np.where(ok, total, 1).astype(np.int64)
    rate = rate.ravel().astype(np.float64)
    ok &= size_ok & np.isfinite(rate) & (rate > 0) & (rate <= MAX_FPS)
    rate = np.where(ok, rate, 1.0)
    ok &= total / rate <= MAX_SECONDS
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        if on_error == "raise":
            given = [a[i] for a in given]
            raise InvalidInputError(
                f"{item_prefix(i)}video metadata must be positive whole frames (at most {MAX_COUNT}), a finite "
                f"fps in (0, {MAX_FPS:g}], at most {MAX_SECONDS:g} s and sizes within {MAX_SIDE} px a side, got "
                f"total_frames={given[0]!r}, fps={given[1]!r}, {given[2]!r}x{given[3]!r} px"
            )
        total, h, w = np.where(ok, total, 1), np.where(ok, h, 1), np.where(ok, w, 1)
        rate = np.where(ok, rate, 1.0)
    return total, rate, h, w, ok
