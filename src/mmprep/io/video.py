"""Video containers: metadata without decoding, and sparse frame reads that equal a full decode.

:func:`probe_video` reads frame count, fps, size and duration from the container header (PyAV),
and counts packets when the header is missing or disagrees with duration x fps.

:func:`read_frames` returns the frames at given indices, bit-identical to decoding every frame
in order and taking those (frame ``i`` = the ``i``-th frame in presentation order). It is fast
because it decodes only what those frames depend on:

1. one demux pass (no decoding) maps presentation index -> packet, keyframes and, for H.264,
   which packets are non-reference pictures (``nal_ref_idc == 0``);
2. each target needs the packets from its keyframe (the one before, for open-GOP leading
   pictures) up to itself; GOPs without a target are never decoded;
3. non-reference packets that are not targets are never sent to the decoder (nothing depends on
   them, so every other picture decodes to the same bits);
4. only target frames are converted to RGB (``rgb24``, the same conversion a full decode uses);
5. independent keyframe segments decode in parallel threads, each with its own decoder
   (FFmpeg releases the GIL), or one segment uses FFmpeg's frame threads.

PyAV (``av``) is imported lazily. Corrupt or truncated media raise :class:`MediaError`.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidInputError, MediaError
from ..types import VideoMetadata
from . import check_path

MAX_THREADS = 8
# codecs whose packets each carry exactly one shown picture (VP8 alt-ref packets show nothing,
# MPEG-4 part 2 in AVI may pack two): others are read by a sequential decode
ONE_FRAME_PER_PACKET = frozenset({"h264", "hevc", "vp9", "av1", "mjpeg", "prores", "png", "rawvideo"})


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency of the video extra
        raise MediaError("reading video needs PyAV: pip install av") from e
    return av


def _name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"


def _open(source: Any):
    """A fresh PyAV input container; bytes and file objects are re-read from the start."""
    av = _av()
    if isinstance(source, (bytes, bytearray, memoryview)):
        handle: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        check_path(source, "video")
        handle = os.fspath(source)
    elif hasattr(source, "read") and hasattr(source, "seek"):
        source.seek(0)
        handle = source
    else:
        raise InvalidInputError(f"video source must be a path, bytes or a binary file, got {type(source).__name__}")
    try:
        container = av.open(handle, mode="r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(f"{_name(source)}: cannot open video container: {e}") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{_name(source)}: no video stream")
    return container


def _fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


# -- probing ---------------------------------------------------------------------------------


def probe_video(source: Any, *, count_packets: bool | None = None) -> VideoMetadata:
    """Frame count, fps (frames/s), size (px) and duration (s) of the first video stream.

    The header's frame count is used unless it is missing or differs from ``duration * fps`` by
    more than 2 frames and 2 %; then (or with ``count_packets=True``) packets are counted, which
    demuxes the file without decoding. A ``VideoMetadata`` is returned unchanged.
    """
    if isinstance(source, VideoMetadata):
        return source
    name = _name(source)
    av = _av()
    container = _open(source)
    try:
        stream = container.streams.video[0]
        fps = _fps(stream)
        total = int(stream.frames or 0)
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        expected = duration * fps if duration and fps else None
        lies = total <= 0 or (expected is not None and disagree(total, expected))
        counting = bool(count_packets or (count_packets is None and lies))
        if counting:
            total = sum(1 for p in container.demux(stream) if p.size and not p.is_discard)
        height, width = stream.codec_context.height, stream.codec_context.width
        turns = None if counting else _turns_of(container, name)  # the open container, when unread
    except av.FFmpegError as e:
        raise MediaError(f"{name}: corrupt video container: {e}") from None
    finally:
        container.close()
    if turns is None:
        turns = display_turns(source)
    if turns % 2:  # shown a quarter turn round, as OpenCV (vLLM's loader) returns it
        height, width = width, height
    if total <= 0:
        raise MediaError(f"{name}: the video stream has no frames")
    if not fps > 0:
        raise MediaError(f"{name}: the container gives no frame rate (fps {fps})")
    return VideoMetadata(total, fps, height or None, width or None, duration if duration else total / fps,
                         rotation=90 * turns)


def disagree(count: float, other: float) -> bool:
    """Two frame counts of one video disagree: more than 2 frames and 2 % apart (an edit list or
    a rounded duration moves them a frame or two; a truncated file much more)."""
    return abs(count - other) > max(2, 0.02 * count)


def display_turns(source: Any) -> int:
    """Counterclockwise quarter turns the stream's display matrix asks for (0-3).

    Phone videos store their pixels sideways plus a display rotation. vLLM's default loader
    (OpenCV, orientation auto-applied) returns frames turned by it, so a 320x240 stream with a
    90-degree rotation is a 240x320 video there; we do the same (``np.rot90(frame, turns)``).
    Angles that are not a multiple of 90 degrees are ignored, as OpenCV ignores them; flips too.
    The rotation rides on decoded frames, so the first frame is decoded to read it.
    """
    container = _open(source)
    try:
        return _turns_of(container, _name(source))
    finally:
        container.close()


def _turns_of(container, name: str) -> int:
    """:func:`display_turns` of an open container that nothing has read yet (decodes one frame)."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # one frame: no frame-thread pool to start
    try:
        frame = next(container.decode(stream), None)
        degrees = int(round(frame.rotation)) if frame is not None else 0
    except (av.FFmpegError, ValueError) as e:
        raise MediaError(f"{name}: corrupt video stream: {e}") from None
    return (degrees // 90) % 4 if degrees % 90 == 0 else 0


def _turned(turns: int, transform=None):
    """The per-frame step after RGB conversion: the display rotation, then ``transform``."""
    if not turns:
        return transform

    def step(rgb: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
        return transform(rgb) if transform else rgb

    return step


# -- the packet index ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """Packets of the stream in decode order, and the presentation index of each frame."""

    pts: np.ndarray  # per packet, decode order
    keyframe: np.ndarray  # bool per packet
    nonref: np.ndarray  # bool per packet: provably not a reference picture
    order: np.ndarray  # presentation index -> packet position


def _h264_nal_length_size(extradata: bytes | None) -> int | None:
    """NAL length-prefix size of an avcC (MP4/MKV) H.264 stream; None for Annex B or unknown."""
    if extradata and len(extradata) >= 7 and extradata[0] == 1:
        return (extradata[4] & 3) + 1
    return None


def _h264_nonref(data: bytes, size: int) -> bool:
    """True when every slice NAL of the packet has ``nal_ref_idc == 0`` (nothing refers to it)."""
    pos, slices = 0, 0
    while pos + size < len(data):
        n = int.from_bytes(data[pos : pos + size], "big")
        header = data[pos + size]
        if header & 0x1F in (1, 5):  # coded slice (non-IDR / IDR)
            if header >> 5:
                return False
            slices += 1
        pos += size + n
    return slices > 0


def _index(container, name: str) -> _Index:
    av = _av()
    stream = container.streams.video[0]
    cc = stream.codec_context
    if cc.name not in ONE_FRAME_PER_PACKET:
        raise _NoTimestamps
    nal = _h264_nal_length_size(cc.extradata) if cc.name == "h264" else None
    pts, key, nonref, shown = [], [], [], []
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                raise _NoTimestamps
            pts.append(packet.pts)
            key.append(packet.is_keyframe)
            shown.append(not packet.is_discard)  # edit lists: decoded, never output
            nonref.append(nal is not None and not packet.is_discard and _h264_nonref(bytes(packet), nal))
    except av.FFmpegError as e:
        raise MediaError(f"{name}: corrupt video stream: {e}") from None
    pts_arr = np.asarray(pts, dtype=np.int64)
    visible = np.flatnonzero(np.asarray(shown, bool))
    if visible.size == 0:
        raise MediaError(f"{name}: the video stream has no frames")
    if np.unique(pts_arr).size != pts_arr.size or not key[0]:
        # duplicate pts, or a stream that does not start on a keyframe (the decoder may drop
        # or invent its first pictures): only a sequential decode defines frame i there
        raise _NoTimestamps
    order = visible[np.argsort(pts_arr[visible], kind="stable")]
    return _Index(pts_arr, np.asarray(key, bool), np.asarray(nonref, bool), order)


class _NoTimestamps(Exception):
    """Packets whose pts cannot name frames: fall back to a sequential decode."""


# -- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    start: int  # first packet (a keyframe), decode order
    stop: int  # one past the last packet to send
    send: np.ndarray  # packet positions in [start, stop) to send
    targets: dict[int, int]  # pts -> presentation index, frames to convert


def _segment_start(idx: _Index, keys: np.ndarray, pos: int) -> int:
    """The keyframe a packet's decode must start from (the previous one for leading pictures)."""
    j = int(np.searchsorted(keys, pos, side="right")) - 1
    if j < 0:
        return 0
    while j > 0 and idx.pts[pos] < idx.pts[keys[j]]:  # open GOP: refers back past its keyframe
        j -= 1
    return int(keys[j])


def _jobs(idx: _Index, wanted: np.ndarray) -> list[_Job]:
    keys = np.flatnonzero(idx.keyframe)
    by_start: dict[int, list[int]] = {}
    for i in wanted.tolist():
        pos = int(idx.order[i])
        by_start.setdefault(_segment_start(idx, keys, pos), []).append(i)
    jobs = []
    for start, frames in sorted(by_start.items()):
        positions = idx.order[np.asarray(frames)]
        stop = int(positions.max()) + 1
        keep = ~idx.nonref[start:stop]
        keep[positions - start] = True
        send = np.arange(start, stop)[keep]
        targets = {int(idx.pts[p]): i for p, i in zip(positions.tolist(), frames)}
        jobs.append(_Job(start, stop, send, targets))
    return jobs


def _packets_for(container, jobs: list[_Job]) -> list[list]:
    """One demux pass collecting the packets each job sends (decode order)."""
    stream = container.streams.video[0]
    users: dict[int, list[int]] = {}
    for j, job in enumerate(jobs):
        for p in job.send.tolist():
            users.setdefault(p, []).append(j)
    out: list[list] = [[] for _ in jobs]
    last = max(job.stop for job in jobs)
    pos = -1
    for packet in container.demux(stream):
        if not packet.size:
            continue
        pos += 1
        for j in users.get(pos, ()):
            out[j].append(packet)
        if pos + 1 >= last:
            break
    return out


def _decode_job(stream_ctx, packets: list, targets: dict[int, int], threads: int, transform=None) -> dict[int, np.ndarray]:
    av = _av()
    ctx = av.CodecContext.create(stream_ctx.name, "r")
    if stream_ctx.extradata:
        ctx.extradata = stream_ctx.extradata
    ctx.thread_count = threads
    ctx.thread_type = "AUTO" if threads > 1 else "SLICE"
    got: dict[int, np.ndarray] = {}

    def take(frames):
        for frame in frames:
            i = targets.get(frame.pts)
            if i is not None and i not in got:
                rgb = frame.to_ndarray(format="rgb24")
                got[i] = transform(rgb) if transform else rgb

    for packet in packets:
        take(ctx.decode(packet))
    take(ctx.decode(None))
    ctx.close() if hasattr(ctx, "close") else None
    return got


def _read_sequential(source: Any, wanted: np.ndarray, name: str, transform=None) -> dict[int, np.ndarray]:
    """Decode every frame in order (the definition of frame ``i``), converting only targets."""
    av = _av()
    container = _open(source)
    targets = set(wanted.tolist())
    last = max(targets)
    got: dict[int, np.ndarray] = {}
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in targets:
                rgb = frame.to_ndarray(format="rgb24")
                got[i] = transform(rgb) if transform else rgb
            if i >= last:
                break
    except av.FFmpegError as e:
        raise MediaError(f"{name}: corrupt video stream: {e}") from None
    finally:
        container.close()
    return got


def _check_indices(indices: Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name}: frame indices must be a non-empty 1-D list, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{name}: frame indices must be ints, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise InvalidInputError(f"{name}: negative frame index {int(arr.min())}")
    return arr.astype(np.int64)


def read_frames(source: Any, indices: Sequence[int], *, threads: int | None = None, transform=None,
                expect_frames: int | None = None) -> np.ndarray:
    """Frames ``indices`` (presentation order, 0-based, repeats allowed) as ``(T, H, W, 3)`` uint8 RGB.

    Bit-identical to a full sequential decode with ``frame.to_ndarray(format="rgb24")``.
    ``threads``: decoder threads (default: CPU count, at most 8). An index past the last frame
    raises :class:`InvalidInputError`; an undecodable target raises :class:`MediaError`.
    ``transform``: ``(H, W, 3) uint8 -> (h, w, 3) uint8`` applied to each distinct target frame in
    the decoding thread, right after its RGB conversion (e.g. the model's resize): the full-size
    frames are never gathered, and the work overlaps with decoding. Frames come turned by the
    stream's display rotation (:func:`display_turns`), as :func:`probe_video` sizes them.
    ``expect_frames``: the frame count a plan was made for (from :func:`probe_video`); a stream
    holding a number that :func:`disagree` s with it raises :class:`MediaError` (a truncated file,
    or a header that disagrees with its data), naming both numbers, as does an index the header
    promises but the stream lacks.
    """
    name = _name(source)
    arr = _check_indices(indices, name)
    wanted = np.unique(arr)
    threads = max(1, min(threads or os.cpu_count() or 1, MAX_THREADS))
    transform = _turned(display_turns(source), transform)
    av = _av()
    container = _open(source)
    try:
        header = int(container.streams.video[0].frames or 0)
        try:
            idx = _index(container, name)
        except _NoTimestamps:
            idx = None
        if idx is not None:
            held = int(idx.order.size)
            if wanted[-1] >= held and expect_frames is None and header <= held:
                raise InvalidInputError(
                    f"{name}: frame index {int(wanted[-1])} is past the last frame ({held} frames)"
                )
            if expect_frames is not None and disagree(expect_frames, held) or wanted[-1] >= held:
                said = expect_frames if expect_frames is not None else header
                raise MediaError(
                    f"{name}: the video is truncated or its header disagrees with its data: the "
                    f"{'plan' if expect_frames is not None else 'header'} counts {said} frames, the "
                    f"stream holds {held}" + (f"; frame index {int(wanted[-1])} is past the last"
                                                if wanted[-1] >= held else "")
                )
            jobs = _jobs(idx, wanted)
            ctx = container.streams.video[0].codec_context
            second = _open(source)  # a fresh demux from the start (seeking may land elsewhere)
            try:
                packets = _packets_for(second, jobs)
            finally:
                second.close()
    except av.FFmpegError as e:
        raise MediaError(f"{name}: corrupt video stream: {e}") from None
    finally:
        container.close()
    if idx is None:
        got = _read_sequential(source, wanted, name, transform)
    else:
        got = _decode_jobs(ctx, jobs, packets, threads, name, transform)
    missing = [int(i) for i in wanted if int(i) not in got]
    if missing:
        raise MediaError(
            f"{name}: could not decode frame(s) {missing[:10]}: the video is truncated or corrupt "
            f"(its header says {header or 'nothing about its'} frames)"
        )
    shapes = {got[int(i)].shape for i in wanted}
    if len(shapes) != 1:
        raise MediaError(f"{name}: frames change size within the video: {sorted(shapes)}")
    out = np.empty((arr.size, *shapes.pop()), dtype=np.uint8)
    for slot, i in enumerate(arr.tolist()):
        out[slot] = got[i]
    return out


def _decode_jobs(ctx, jobs: list[_Job], packets: list[list], threads: int, name: str, transform=None) -> dict[int, np.ndarray]:
    av = _av()
    # many segments: one single-threaded decoder per segment, in parallel; few: frame threads
    per_job = 1 if len(jobs) >= threads else max(1, threads // len(jobs))
    got: dict[int, np.ndarray] = {}
    try:
        if len(jobs) == 1 or threads == 1:
            for job, pk in zip(jobs, packets):
                got.update(_decode_job(ctx, pk, job.targets, per_job, transform))
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as pool:
                work = lambda a: _decode_job(ctx, a[1], a[0].targets, per_job, transform)  # noqa: E731
                for part in pool.map(work, zip(jobs, packets)):
                    got.update(part)
    except av.FFmpegError as e:
        raise MediaError(f"{name}: corrupt video stream: {e}") from None
    return got
