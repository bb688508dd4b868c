"""Patch layouts and the fused rescale + normalize pass.

Each family's layout is first built on the **uint8** resized pixels (a cheap 1-byte permute);
then one pass maps every byte through a per-channel float32 table ``(v*scale - mean)/std`` and
the result is written into the output buffer exactly once. The same uint8 layout is what
``dtype="uint8"`` returns.

Planar layouts are built channel-major, ``(3, rows, K)``, so the table pass runs on long
contiguous runs (OpenCV ``LUT`` is ~10x slower on 196-byte strided rows) and the only strided
traffic is the final copy into the output's ``(rows, 3, [repeat,] K)`` vectors.

Layouts (SPEC §2, trap T2 — never share one patchify between families):

* GLM ``(c, tp, py, px)`` vectors, rows in merge-window order ``(t, bh, bw, mh, mw)``.
* Isaac ``(py, px, c)`` vectors (channel fastest), rows row-major over the patch grid.
* Nemotron dynamic ``(c, yy, xx)`` vectors, rows row-major over the patch grid.
* Nemotron tiles ``(3, S, S)`` planar crops, tiles row-major.
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


def chw_patch_layout(img: np.ndarray, patch: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> channel-major ``(3, hp*wp, patch*patch)``, ``(c, yy, xx)`` vectors."""
    h, w, _ = img.shape
    hp, wp = h // patch, w // patch
    v = img.reshape(hp, patch, wp, patch, 3).transpose(4, 0, 2, 1, 3)
    return np.ascontiguousarray(v).reshape(3, hp * wp, patch * patch)


def tile_layout(canvas: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(rows*S, cols*S, 3)`` -> channel-major ``(3, rows*cols, S*S)``, tiles row-major."""
    h, w, _ = canvas.shape
    rows, cols = h // size, w // size
    v = canvas.reshape(rows, size, cols, size, 3).transpose(4, 0, 2, 1, 3)
    return np.ascontiguousarray(v).reshape(3, rows * cols, size * size)


def put_planar(u: np.ndarray, table: np.ndarray | None, dst: np.ndarray, repeat: int = 1) -> None:
    """Write channel-major uint8 ``u (3, N, K)`` into ``dst (N, 3, repeat*K)``, normalized.

    ``table=None`` copies the bytes (uint8 output). Each channel goes through the table once
    (contiguous, in cache) and is then copied ``repeat`` times into its strided place.
    """
    import cv2

    n, k = u.shape[1], u.shape[2]
    d4 = dst.reshape(n, 3, repeat, k)
    for c in range(3):
        if table is None:
            vals = u[c]
        else:
            vals = cv2.LUT(u[c], table[c].reshape(1, 256))
            vals = vals.reshape(n, k)
        for t in range(repeat):
            d4[:, c, t] = vals


def put_interleaved(u: np.ndarray, table: np.ndarray | None, dst: np.ndarray) -> None:
    """Write channel-fastest uint8 ``u (N, K*3)`` into ``dst (N, K*3)``, normalized."""
    import cv2

    if table is None:
        dst[...] = u
        return
    n, d = u.shape
    lut3 = np.ascontiguousarray(table.T).reshape(1, 256, 3)
    view = dst.reshape(n, d // 3, 3)
    assert np.shares_memory(view, dst), "dst must be C-contiguous along its rows"
    got = cv2.LUT(np.ascontiguousarray(u).reshape(n, d // 3, 3), lut3, dst=view)
    if got is not view:  # OpenCV could not write in place: copy (never silently drop)
        view[...] = got


def write_banded(img: np.ndarray, band_px: int, layout, dst: np.ndarray, table: np.ndarray | None,
                 threads: int = 1, interleaved: bool = False, repeat: int = 1) -> None:
    """Patchify + normalize ``img`` band by band straight into ``dst`` (written once).

    A band is ``band_px`` pixel rows (one row of merge windows / patches / tiles), which
    ``layout`` turns into a contiguous run of output rows; the uint8 band stays in cache between
    the permute and the table pass. ``table=None`` copies the uint8 layout (``dtype="uint8"``).
    ``repeat``: GLM's temporal copies of an image (planar layouts only). Bands are split across
    ``threads`` (OpenCV and numpy release the GIL).
    """
    bands = img.shape[0] // band_px
    if bands == 0:
        return
    per = dst.shape[0] // bands
    group = max(1, (1 << 18) // max(1, band_px * img.shape[1] * 3))  # ~256 KiB of uint8 per step

    def run(span: tuple[int, int]) -> None:
        for k in range(span[0], span[1], group):
            kk = min(span[1], k + group)
            u = layout(img[k * band_px:kk * band_px])
            d = dst[k * per:kk * per]
            if interleaved:
                put_interleaved(u, table, d)
            else:
                put_planar(u, table, d, repeat)

    run_parallel(run, chunks(bands, threads), threads)


def chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``parts`` contiguous non-empty spans."""
    bounds = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run_parallel(fn, spans, threads: int) -> None:
    if threads <= 1 or len(spans) <= 1:
        for s in spans:
            fn(s)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, spans))
