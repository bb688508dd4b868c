"""Isaac image sizing: the binary search on the scale (SPEC §1.1), scalar and numpy twin.

The vectorized scale-down is an exact lookup in the bisection tree, checked per element with the
loop's own float test, falling back to the real bisection.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# The bisection tolerance (SPEC §1.1; the checkpoint's 1e-5): at least 1e-12, far above the float
# spacing at the upper scale bound 100 (1.4e-14), so the loop ends after <= 47 halvings; below 1,
# so it runs at all.
MIN_EPS = 1e-12
MAX_EPS = 0.5


def isaac_target_size(
    height: int,
    width: int,
    patch_size: int,
    max_num_patches: int,
    min_num_patches: int | None,
    pixel_shuffle_scale: int,
    eps: float = 1e-5,
) -> tuple[int, int]:
    """Target ``(height, width)`` in px: multiples of ``patch_size * pixel_shuffle_scale``.

    A bisection over the scale factor; its iteration count depends only on ``eps``.
    """
    divisor = patch_size * pixel_shuffle_scale

    def scaled(scale: float, length: int) -> int:
        return int(max(divisor, math.ceil((scale * length) / divisor) * divisor))

    adj_h = max(divisor, math.ceil(height / divisor) * divisor)
    adj_w = max(divisor, math.ceil(width / divisor) * divisor)
    num_patches = (adj_h / patch_size) * (adj_w / patch_size)

    if min_num_patches is not None and num_patches < min_num_patches:
        lo, hi = 1.0, 100.0  # scale up; the result may still miss the minimum at scale 100
        while (hi - lo) >= eps:
            mid = (lo + hi) / 2
            n = (scaled(mid, height) / patch_size) * (scaled(mid, width) / patch_size)
            if n >= min_num_patches:
                hi = mid
            else:
                lo = mid
        return scaled(hi, height), scaled(hi, width)
    if num_patches <= max_num_patches:
        return int(adj_h), int(adj_w)
    lo, hi = eps / 10, 1.0  # scale down
    while (hi - lo) >= eps:
        mid = (lo + hi) / 2
        n = (scaled(mid, height) / patch_size) * (scaled(mid, width) / patch_size)
        if n <= max_num_patches:
            lo = mid
        else:
            hi = mid
    return scaled(lo, height), scaled(lo, width)


def isaac_target_size_np(
    heights: np.ndarray,
    widths: np.ndarray,
    patch_size: int,
    max_num_patches: int,
    min_num_patches: int | None,
    pixel_shuffle_scale: int,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized :func:`isaac_target_size` (int64 arrays of positive sizes in, px out)."""
    d = float(patch_size * pixel_shuffle_scale)
    p = float(patch_size)
    hf = heights.astype(np.float64)
    wf = widths.astype(np.float64)
    adj_h = np.maximum(d, np.ceil(hf / d) * d)
    adj_w = np.maximum(d, np.ceil(wf / d) * d)
    n0 = (adj_h / p) * (adj_w / p)
    out_h, out_w = adj_h, adj_w

    up = (n0 < min_num_patches) if min_num_patches is not None else np.zeros(n0.shape, bool)
    down = ~up & (n0 > max_num_patches)
    for mask, lo0, hi0, going_up in ((up, 1.0, 100.0, True), (down, eps / 10, 1.0, False)):
        if not mask.any():
            continue
        h, w = hf[mask], wf[mask]
        limit = min_num_patches if going_up else max_num_patches
        nodes = None if going_up else _bisection_nodes(lo0, hi0, eps)
        if nodes is None or nodes.size < 2:
            final = _isaac_bisect(h, w, lo0, hi0, going_up, d, p, limit, eps)
        else:
            final = _isaac_scale_down_lookup(h, w, nodes, lo0, d, p, limit)
            redo = np.isnan(final)
            if redo.any():  # a tree node within rounding of a step: run the bisection itself
                final[redo] = _isaac_bisect(h[redo], w[redo], lo0, hi0, False, d, p, limit, eps)
        out_h[mask] = np.maximum(d, np.ceil((final * h) / d) * d)
        out_w[mask] = np.maximum(d, np.ceil((final * w) / d) * d)
    return out_h.astype(np.int64), out_w.astype(np.int64)


@lru_cache(maxsize=8)
def _bisection_nodes(lo0: float, hi0: float, eps: float, max_nodes: int = 1 << 18) -> np.ndarray | None:
    """Every midpoint the bisection loop can visit from ``(lo0, hi0)``, sorted (None if huge).

    The loop is a search in a fixed binary tree of midpoints (each computed as the loop does,
    splitting while ``hi - lo >= eps``). With a monotone predicate its result is the largest
    node where the predicate holds (or ``lo0``), which a sorted lookup finds directly.
    """
    lo, hi = np.array([lo0]), np.array([hi0])
    found = []
    total = 0
    while lo.size:
        keep = (hi - lo) >= eps
        lo, hi = lo[keep], hi[keep]
        mid = (lo + hi) / 2
        total += mid.size
        if total > max_nodes:
            return None
        found.append(mid)
        lo, hi = np.concatenate([lo, mid]), np.concatenate([mid, hi])
    return np.sort(np.concatenate(found))


def _isaac_scale_down_lookup(h, w, nodes, lo0, d, p, limit):
    """Scale-down result via the exact step boundary and a sorted node lookup.

    The patch count at scale ``v`` is ``s² * A(v) * B(v)`` with ``A = max(1, ceil(v*H/d))``, so
    the largest admissible scale is ``max_a min(a*d/S, floor(M'/a)*d/L)`` over the short side's
    patch count ``a`` (S, L: short and long side), attained within a few ``a`` of
    ``sqrt(M'*S/L)``. The node found there is then verified with the loop's own float test on
    it and its successor; elements failing that come back as NaN for the real bisection.
    """
    ratio = d / p
    m_prime = np.floor(limit / (ratio * ratio))
    short, long_ = np.minimum(h, w), np.maximum(h, w)
    a0 = np.floor(np.sqrt(m_prime * short / long_))
    best = np.zeros_like(h)
    for k in (-2.0, -1.0, 0.0, 1.0):
        a = np.clip(a0 + k, 1.0, np.maximum(m_prime, 1.0))
        v = np.minimum(a * d / short, np.floor(m_prime / a) * d / long_)
        np.maximum(best, v, out=best)
    # nodes are near-uniform (a complete tree), so the index is arithmetic plus one correction
    # step each way; a random-access searchsorted over the table is ten times slower
    last = len(nodes) - 1
    step = (nodes[-1] - nodes[0]) / last
    idx = np.floor((best - nodes[0]) / step).astype(np.int64)
    np.clip(idx, -1, last, out=idx)
    up = (idx < last) & (nodes[np.clip(idx + 1, 0, last)] <= best)
    idx += up
    down = (idx >= 0) & (nodes[np.clip(idx, 0, last)] > best)
    idx -= down

    def holds(v):
        a = np.maximum(d, np.ceil((v * h) / d) * d) / p
        b = np.maximum(d, np.ceil((v * w) / d) * d) / p
        return (a * b) <= limit

    at = nodes[np.clip(idx, 0, last)]
    after = nodes[np.clip(idx + 1, 0, last)]
    ok = np.where(idx >= 0, holds(at), True) & np.where(idx < last, ~holds(after), True)
    return np.where(ok, np.where(idx >= 0, at, lo0), np.nan)


def _isaac_bisect(h, w, lo0, hi0, going_up, d, p, limit, eps):
    """The bisection of :func:`isaac_target_size` on arrays, in place to keep it memory-light.

    ``scaled(s, L) / p`` equals ``max(1, ceil(s*L/d)) * (d/p)`` exactly (multiples of ``d``
    divided by ``p``), so the patch count is formed from the two ceilings without rescaling.
    """
    lo = np.full(h.shape, lo0)
    hi = np.full(h.shape, hi0)
    mid, a, b = np.empty_like(h), np.empty_like(h), np.empty_like(h)
    ratio = d / p
    active = (hi - lo) >= eps
    while active.any():
        np.add(lo, hi, out=mid)
        mid /= 2
        np.multiply(mid, h, out=a)
        a /= d
        np.ceil(a, out=a)
        np.maximum(a, 1.0, out=a)
        a *= ratio
        np.multiply(mid, w, out=b)
        b /= d
        np.ceil(b, out=b)
        np.maximum(b, 1.0, out=b)
        b *= ratio
        a *= b  # patches at mid
        ok = (a >= limit) if going_up else (a <= limit)
        # each element stops on its own test, exactly as the scalar loop does
        move_hi = ok if going_up else ~ok
        np.copyto(hi, mid, where=active & move_hi)
        np.copyto(lo, mid, where=active & ~move_hi)
        active = (hi - lo) >= eps
    return hi if going_up else lo
