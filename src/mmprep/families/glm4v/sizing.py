"""GLM image/video sizing: transformers' ``smart_resize`` (SPEC §1.2), scalar and numpy twin.

The scalar function reads like the reference operation for operation (float order matters,
SPEC §0.2); the ``_np`` twin performs the same IEEE-754 operations element-wise.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import InvalidInputError


MAX_RATIO = 200


def smart_resize(
    num_frames: int,
    height: int,
    width: int,
    temporal_factor: int = 2,
    factor: int = 28,
    min_pixels: int = 112 * 112,
    max_pixels: int = 14 * 14 * 2 * 2 * 2 * 6144,
) -> tuple[int, int]:
    """GLM's resize rule: ``(h_bar, w_bar)`` in px, multiples of ``factor``.

    ``max_pixels``/``min_pixels`` bound ``t_bar * h_bar * w_bar``. Raises
    :class:`InvalidInputError` where transformers raises ``ValueError``.
    """
    if num_frames < temporal_factor:
        raise InvalidInputError(f"t:{num_frames} must be larger than temporal_factor:{temporal_factor}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    ratio = max(height, width) / min(height, width) if min(height, width) > 0 else math.inf
    if ratio > MAX_RATIO:
        raise InvalidInputError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, got {ratio} "
            f"(size {height}x{width} after the small-side upscale)"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_np(
    num_frames: int,
    heights: np.ndarray,
    widths: np.ndarray,
    temporal_factor: int,
    factor: int,
    min_pixels: int,
    max_pixels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized :func:`smart_resize`; returns ``(h_bar, w_bar, ratio_ok)`` as float64 arrays
    of whole numbers (and a bool mask).

    ``ratio_ok`` is False where the scalar version raises for the aspect ratio (the caller
    decides how to report it). Products are formed in float64 exactly as Python would with ints
    (all values stay far below 2**53).
    """
    if num_frames < temporal_factor:
        raise InvalidInputError(f"t:{num_frames} must be larger than temporal_factor:{temporal_factor}")
    f = float(factor)
    h = heights.astype(np.float64)
    w = widths.astype(np.float64)
    small = (h < f) | (w < f)
    if small.any():
        hs, ws = h[small], w[small]
        scale = np.maximum(f / hs, f / ws)
        h[small] = np.trunc(hs * scale)
        w[small] = np.trunc(ws * scale)
    lo = np.minimum(h, w)
    # max/min > 200 exactly as the float division decides it: both are whole numbers far below
    # 2**40, where the quotient's rounding cannot cross 200
    ratio_ok = (np.maximum(h, w) <= MAX_RATIO * lo) & (lo > 0)
    h_bar = h / f
    np.rint(h_bar, out=h_bar)
    h_bar *= f
    w_bar = w / f
    np.rint(w_bar, out=w_bar)
    w_bar *= f
    t_bar = float(round(num_frames / temporal_factor) * temporal_factor)
    vol = h_bar * w_bar
    vol *= t_bar
    big = vol > max_pixels
    tiny = vol < min_pixels
    for mask, is_big in ((big, True), (tiny & ~big, False)):
        if not mask.any():
            continue
        hm, wm = h[mask], w[mask]
        with np.errstate(divide="ignore", invalid="ignore"):
            if is_big:
                beta = np.sqrt((num_frames * (hm * wm)) / max_pixels)
                h_bar[mask] = np.maximum(f, np.floor(hm / beta / f) * f)
                w_bar[mask] = np.maximum(f, np.floor(wm / beta / f) * f)
            else:
                beta = np.sqrt(min_pixels / (num_frames * (hm * wm)))
                h_bar[mask] = np.ceil(hm * beta / f) * f
                w_bar[mask] = np.ceil(wm * beta / f) * f
    return h_bar, w_bar, ratio_ok
