"""Pure-int image sizing for every family, with numpy-vectorized twins.

Each scalar function is written to read like the reference (vLLM / transformers) it matches,
operation for operation, because the float order matters for exactness (SPEC §0.2). Each
``*_np`` twin performs the same IEEE-754 operations element-wise, so both agree on every input;
tests check that on random inputs.

Validation (non-positive sizes, ratios, pixel limits) is done here too, before any arithmetic, so
no function returns a size for input the reference would reject or silently mangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import BudgetError, InvalidInputError, item_prefix

# ----------------------------------------------------------------------------------------------
# validation


def check_size(height: object, width: object, index: int | None = None) -> tuple[int, int]:
    """Return ``(height, width)`` as ints, or raise for None, NaN, non-integers and sizes <= 0."""
    out = []
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or value is None:
            raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(value) or value != int(value):
                raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
            value = int(value)
        try:
            as_int = int(value)  # numpy ints, ints
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{item_prefix(index)}{name} must be a positive int, got {value!r}"
            ) from None
        if as_int != value or as_int <= 0:
            raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
        out.append(as_int)
    return out[0], out[1]


def as_size_arrays(heights, widths) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized inputs as int64 arrays of equal shape (sizes are checked by the caller)."""
    h = np.asarray(heights)
    w = np.asarray(widths)
    if h.shape != w.shape:
        raise InvalidInputError(f"heights and widths differ in shape: {h.shape} vs {w.shape}")
    for name, a in (("heights", h), ("widths", w)):
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a) | (a != np.trunc(a))
            if bad.any():
                i = int(np.flatnonzero(bad.ravel())[0])
                raise InvalidInputError(f"item {i}: {name[:-1]} must be a positive int, got {a.ravel()[i]!r}")
        elif a.dtype.kind not in "iu":
            raise InvalidInputError(f"{name} must be numeric, got dtype {a.dtype}")
    return h.astype(np.int64, copy=False), w.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------------------------
# Isaac: get_image_size_for_max_num_patches (SPEC §1.1)


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


# ----------------------------------------------------------------------------------------------
# GLM: transformers smart_resize (SPEC §1.2)

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


# ----------------------------------------------------------------------------------------------
# Nemotron: InternVL-style tiling (SPEC §1.3)


@lru_cache(maxsize=32)
def internvl_target_ratios(min_num: int, max_num: int) -> tuple[tuple[int, int], ...]:
    """``(cols, rows)`` grids, sorted by tile count; ties keep CPython's set order (as vLLM)."""
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


# ----------------------------------------------------------------------------------------------
# Nemotron: DynamicResolutionImageTiler (SPEC §1.4)

MAX_BUDGET_ROUNDS = 10
TEXT_RESERVE = 4  # tokens vLLM keeps free besides the text


def dynamic_grid(
    height: int, width: int, budget: int, patch_size: int, min_num_patches: int, factor_max: float = 1.0
) -> tuple[int, int]:
    """``process_media``: the patch grid ``(tph, tpw)`` of one image for a budget in patches."""
    cph = round(height / patch_size + 0.5)  # half to even, not ceil
    cpw = round(width / patch_size + 0.5)
    factor = min(math.sqrt(budget / (cph * cpw)), factor_max)
    tph = math.floor(factor * cph)
    tpw = math.floor(factor * cpw)
    if budget > min_num_patches and tph * tpw < min_num_patches:
        if tph * tpw == 0:
            raise BudgetError(
                f"image {height}x{width} px collapses to a {tph}x{tpw} patch grid for a budget of "
                f"{budget} patches; vLLM divides by zero here"
            )
        up = math.sqrt(min_num_patches / (tph * tpw))
        tph = math.ceil(up * tph)
        tpw = math.ceil(up * tpw)
    if tph % 2:
        tph = tph + 1 if (tph + 1) * tpw <= budget else max(2, tph - 1)
    if tpw % 2:
        tpw = tpw + 1 if tph * (tpw + 1) <= budget else max(2, tpw - 1)
    return tph, tpw


def dynamic_budgets(
    sizes: list[tuple[int, int]],
    tokens_available: int,
    patch_size: int,
    min_num_patches: int,
    max_num_patches: float,
    factor_max: float = 1.0,
) -> tuple[list[tuple[int, int]], int, list[int], int]:
    """``compute_params``: per-image grids, rounds taken, last budgets and the patch budget."""
    budget = tokens_available * 4  # tokens -> patches (pixel shuffle 2x2, no conv merging)
    budget = max(budget, min_num_patches * len(sizes))
    per_image = [max(min(budget, max_num_patches), min_num_patches) for _ in sizes]
    per_image = [int(b) for b in per_image]
    for round_no in range(1, MAX_BUDGET_ROUNDS + 1):
        grids = [dynamic_grid(h, w, b, patch_size, min_num_patches, factor_max) for (h, w), b in zip(sizes, per_image)]
        counts = [th * tw for th, tw in grids]
        if sum(counts) <= budget:
            return grids, round_no, per_image, budget
        scale = budget / sum(counts)
        shrunk = [max(min_num_patches, int(c * scale)) for c in counts]
        if any(n < b for n, b in zip(shrunk, per_image)):
            per_image = shrunk
        else:
            per_image = [min_num_patches] * len(sizes)
    raise BudgetError(
        f"{len(sizes)} images do not fit {budget} patches after {MAX_BUDGET_ROUNDS} rounds "
        f"(last grids use {sum(counts)} patches); vLLM raises here too"
    )


def dynamic_grid_np(
    heights: np.ndarray,
    widths: np.ndarray,
    budget: int,
    patch_size: int,
    min_num_patches: int,
    factor_max: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized :func:`dynamic_grid` for one budget; returns ``(tph, tpw, ok)``.

    ``ok`` is False where the scalar version raises (a collapsed grid).
    """
    p = float(patch_size)
    cph = np.rint(heights / p + 0.5)
    cpw = np.rint(widths / p + 0.5)
    factor = np.minimum(np.sqrt(budget / (cph * cpw)), factor_max)
    tph = np.floor(factor * cph)
    tpw = np.floor(factor * cpw)
    prod = tph * tpw
    need_up = (budget > min_num_patches) & (prod < min_num_patches)
    ok = ~(need_up & (prod == 0))
    upm = need_up & ok
    if upm.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.sqrt(min_num_patches / prod)
        tph = np.where(upm, np.ceil(up * tph), tph)
        tpw = np.where(upm, np.ceil(up * tpw), tpw)
    odd = (tph % 2) == 1
    tph = np.where(odd, np.where((tph + 1) * tpw <= budget, tph + 1, np.maximum(2, tph - 1)), tph)
    odd = (tpw % 2) == 1
    tpw = np.where(odd, np.where(tph * (tpw + 1) <= budget, tpw + 1, np.maximum(2, tpw - 1)), tpw)
    return tph.astype(np.int64), tpw.astype(np.int64), ok
