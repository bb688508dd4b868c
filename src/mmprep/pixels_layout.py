"""Patch layouts and the fused rescale + normalize pass.

Each family's layout is first built on the **uint8** resized pixels (a cheap 1-byte copy); then
one pass maps every byte through a per-channel float32 table ``(v/255 - mean)/std`` and writes
the output buffer exactly once (OpenCV ``LUT`` straight into strided views of the output).
The same uint8 layout is what ``dtype="uint8"`` returns.

Layouts (SPEC §2, trap T2 — never share one patchify between families):

* GLM ``(c, tp, py, px)`` vectors, rows in merge-window order ``(t, bh, bw, mh, mw)``.
* Isaac ``(py, px, c)`` vectors (channel fastest), rows row-major over the patch grid.
* Nemotron dynamic ``(c, yy, xx)`` vectors, rows row-major over the patch grid.
* Nemotron tiles ``(3, S, S)`` planar crops.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def norm_table(mean: tuple[float, ...], std: tuple[float, ...], scale: float = 1 / 255) -> np.ndarray:
    """(3, 256) float32: value v of channel c -> ``(v*scale - mean[c]) / std[c]`` (float64 maths)."""
    v = np.arange(256, dtype=np.float64)[None, :] * scale
    table = (v - np.asarray(mean, np.float64)[:, None]) / np.asarray(std, np.float64)[:, None]
    table = table.astype(np.float32)
    table.flags.writeable = False
    return table


def glm_layout(frames: np.ndarray, patch: int, merge: int, temporal: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> ``(rows, 3, temporal*patch*patch)`` uint8 in GLM's order.

    T is padded to a multiple of ``temporal`` by repeating the last frame (an image is one frame,
    so it becomes ``temporal`` identical slices, SPEC §2.2 step 4).
    """
    t, h, w, _ = frames.shape
    if t % temporal:
        pad = np.repeat(frames[-1:], temporal - t % temporal, axis=0)
        frames = np.concatenate([frames, pad], axis=0)
        t = frames.shape[0]
    gt, bh, bw = t // temporal, h // (patch * merge), w // (patch * merge)
    v = frames.reshape(gt, temporal, bh, merge, patch, bw, merge, patch, 3)
    v = v.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7)  # gt bh bw mh mw c tp py px
    rows = gt * bh * bw * merge * merge
    return np.ascontiguousarray(v).reshape(rows, 3, temporal * patch * patch)


def isaac_layout(img: np.ndarray, patch: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> ``(hp*wp, patch*patch*3)`` uint8, ``(py, px, c)`` vectors."""
    h, w, _ = img.shape
    hp, wp = h // patch, w // patch
    v = img.reshape(hp, patch, wp, patch, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(v).reshape(hp * wp, patch * patch * 3)


def chw_patch_layout(img: np.ndarray, patch: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> ``(hp*wp, 3, patch*patch)`` uint8, ``(c, yy, xx)`` vectors."""
    h, w, _ = img.shape
    hp, wp = h // patch, w // patch
    v = img.reshape(hp, patch, wp, patch, 3).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(v).reshape(hp * wp, 3, patch * patch)


def tile_layout(canvas: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(rows*S, cols*S, 3)`` -> ``(rows*cols, 3, S*S)`` uint8 crops, row-major tiles."""
    h, w, _ = canvas.shape
    rows, cols = h // size, w // size
    v = canvas.reshape(rows, size, cols, size, 3).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(v).reshape(rows * cols, 3, size * size)


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def normalize_planar(src: np.ndarray, table: np.ndarray, dst: np.ndarray, threads: int = 1) -> None:
    """``dst[n, c, k] = table[c, src[n, c, k]]``: uint8 ``(N, 3, K)`` -> float32 ``(N, 3, K)``.

    ``dst`` may be a strided view (rows of a bigger buffer); each (rows, K) channel slice is a
    2-D view with a contiguous inner axis, which OpenCV's LUT writes in place.
    """
    import cv2

    def run(span: tuple[int, int]) -> None:
        a, b = span
        for c in range(3):
            view = dst[a:b, c]
            got = cv2.LUT(src[a:b, c], table[c].reshape(1, 256), dst=view)
            if got is not view:  # OpenCV could not write in place: copy (never silently drop)
                view[...] = got

    _run(run, _chunks(src.shape[0], threads), threads)


def normalize_interleaved(src: np.ndarray, table: np.ndarray, dst: np.ndarray, threads: int = 1) -> None:
    """Channel-fastest twin of :func:`normalize_planar`: uint8 ``(N, K*3)`` -> float32 ``(N, K*3)``."""
    import cv2

    lut3 = np.ascontiguousarray(table.T).reshape(1, 256, 3)
    n, d = src.shape

    def run(span: tuple[int, int]) -> None:
        a, b = span
        view = dst[a:b].reshape(b - a, d // 3, 3)
        assert np.shares_memory(view, dst), "dst must be C-contiguous along its rows"
        got = cv2.LUT(src[a:b].reshape(b - a, d // 3, 3), lut3, dst=view)
        if got is not view:
            view[...] = got

    _run(run, _chunks(n, threads), threads)


def _run(fn, spans, threads: int) -> None:
    if threads <= 1 or len(spans) <= 1:
        for s in spans:
            fn(s)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, spans))
