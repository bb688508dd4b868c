"""Nemotron Nano VL 12B: InternVL-style tiling (SPEC §1.3), scalar and numpy twin."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np



MAX_NUM_TILES = 4096  # 1,048,576 tokens of 12B tiles: 8x its 131,072-token context


@lru_cache(maxsize=32)
def internvl_target_ratios(min_num: int, max_num: int) -> tuple[tuple[int, int], ...]:
    """``(cols, rows)`` grids, sorted by tile count; ties keep CPython's set order (as vLLM).

    vLLM builds the set with a triple loop over ``n, i, j <= max_num`` (O(max_num³)). A set's
    iteration order depends only on the order in which distinct keys first arrive (a repeat
    changes nothing), so adding each grid once, in the order of its first appearance there
    (``n = max(min_num, i, j)``, then ``i``, then ``j``), gives the very same set in
    O(max_num log max_num).
    """
    ratios: set[tuple[int, int]] = set()

    def arrive(i: int, js) -> None:
        for j in js:
            if min_num <= i * j <= max_num:
                ratios.add((i, j))

    for i in range(1, min_num + 1):  # n = min_num: every grid with both sides <= min_num
        arrive(i, range(1, min_num + 1))
    for n in range(min_num + 1, max_num + 1):  # then the grids with max(i, j) == n
        for i in range(1, min(n - 1, max_num // n) + 1):
            arrive(i, (n,))
        arrive(n, range(1, min(n, max_num // n) + 1))
    return tuple(sorted(ratios, key=lambda x: x[0] * x[1]))


def internvl_target_ratios_reference(min_num: int, max_num: int) -> tuple[tuple[int, int], ...]:
    """vLLM's triple loop itself (O(max_num³)), used only in tests."""
    ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return tuple(sorted(ratios, key=lambda x: x[0] * x[1]))


def internvl_closest_ratio(
    width: int, height: int, ratios: tuple[tuple[int, int], ...], tile_size: int
) -> tuple[int, int]:
    """``find_closest_aspect_ratio``: an exact float tie moves to a larger grid only if the
    image area exceeds half the grid's area."""
    aspect = width / height
    best_diff = math.inf
    best = (1, 1)
    area = width * height
    for cols, rows in ratios:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff = diff
            best = (cols, rows)
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


@dataclass(frozen=True)
class _RatioTable:
    """Precomputed lookup that makes the closest-ratio search O(log n) per image.

    The sequential scan's outcome is: among the ratios at the minimal distance, the last one
    (in list order) whose area threshold the image exceeds, else the first one. Ratios with
    the same value form a group (members in list order, so thresholds ascend); the minimal
    distance is reached by the group just below or just above the aspect, or by both on an
    exact float tie (handled by the scalar scan).
    """

    values: np.ndarray  # (G,) distinct cols/rows values, ascending
    index: np.ndarray  # (G, K) list positions of each group's members; pad repeats the last
    area_thr: np.ndarray  # (K, G) 0.5*S*S*cols*rows per member; pad +inf
    ratios: tuple[tuple[int, int], ...]  # the list itself
    cols: np.ndarray  # (R,) per list position
    rows: np.ndarray  # (R,)


@lru_cache(maxsize=32)
def _ratio_table(min_num: int, max_num: int, tile_size: int) -> _RatioTable:
    ratios = internvl_target_ratios(min_num, max_num)
    groups: dict[float, list[int]] = {}
    for k, (c, r) in enumerate(ratios):
        groups.setdefault(c / r, []).append(k)
    values = np.array(sorted(groups))
    width = max(len(v) for v in groups.values())
    index = np.zeros((len(values), width), np.int64)
    thr = np.full((width, len(values)), np.inf)
    for g, v in enumerate(values):
        members = groups[float(v)]
        for m in range(width):
            k = members[min(m, len(members) - 1)]
            index[g, m] = k
            if m < len(members):
                c, r = ratios[k]
                thr[m, g] = 0.5 * tile_size * tile_size * c * r
    cols = np.array([c for c, _ in ratios], np.int64)
    rows = np.array([r for _, r in ratios], np.int64)
    return _RatioTable(values, index, thr, ratios, cols, rows)


def internvl_grid_np(
    heights: np.ndarray, widths: np.ndarray, min_num: int, max_num: int, tile_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized :func:`internvl_closest_ratio`: ``(cols, rows)`` arrays for positive sizes."""
    t = _ratio_table(min_num, max_num, tile_size)
    aspect = widths / heights  # float64, the same division as the scalar
    area = widths * heights  # exact ints; compared with float thresholds as Python does
    last = len(t.values) - 1
    upper = np.searchsorted(t.values, aspect)
    np.minimum(upper, last, out=upper)
    lower = np.maximum(upper - 1, 0)
    d_lo = np.abs(aspect - np.take(t.values, lower))
    d_hi = np.abs(aspect - np.take(t.values, upper))
    group = np.where(d_hi < d_lo, upper, lower)
    # members passing the area test form a prefix of the group (thresholds ascend), so the
    # chosen member's position is the number of passes after the first member
    width = t.area_thr.shape[0]
    member = np.zeros(group.shape, np.int64)
    for m in range(1, width):
        member += np.take(t.area_thr[m], group) < area
    chosen = np.take(t.index.ravel(), group * width + member)
    cols, rows = np.take(t.cols, chosen), np.take(t.rows, chosen)
    tie = (d_lo == d_hi) & (lower != upper)
    for i in np.flatnonzero(tie):  # two groups at exactly the same distance: scan like vLLM
        cols[i], rows[i] = internvl_closest_ratio(int(widths[i]), int(heights[i]), t.ratios, tile_size)
    return cols, rows
