"""GLM-4.1V/4.6V MRoPE positions (SPEC §6.1): a media block is offset on all three rows; text
after it starts at the block's maximum + 1. A video is one contiguous ``t*h*w`` block starting at
its ``<|begin_of_video|>`` token, as the seed lays it out (SPEC §9 Q1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import InvalidInputError
from ...positions import _grid_pattern, _llm_blocks, _text_rows


def _glm_block(start: int, t: int, h: int, w: int) -> np.ndarray:
    """GLM: the whole grid shifted by ``start`` on all three rows (SPEC §6.1)."""
    return _grid_pattern(t, h, w) + start


def glm_mrope_positions(
    num_tokens: int, features: Sequence, spatial_merge_size: int = 2
) -> tuple[np.ndarray, int]:
    """GLM-4.1V/4.6V positions ``(3, L)`` int64 and the delta, vectorized per block."""
    blocks = _llm_blocks(num_tokens, features, spatial_merge_size, ("image", "video"))
    out = np.empty((3, num_tokens), dtype=np.int64)
    st = nxt = 0  # st: next unwritten token; nxt: the position text continues from
    for offset, t, h, w in blocks:
        out[:, st:offset] = np.arange(nxt, nxt + offset - st)
        start = nxt + offset - st
        n = t * h * w
        out[:, offset:offset + n] = _glm_block(start, t, h, w)
        nxt = start + max(t, h, w)  # max over all rows of the block, + 1
        st = offset + n
    out[:, st:] = np.arange(nxt, nxt + num_tokens - st)
    return out, int(out.max()) + 1 - num_tokens


_PATTERNS: dict[tuple[int, int, int], np.ndarray] = {}  # (t, h, w) -> np.indices pattern (3, t*h*w)
def _pattern(t: int, h: int, w: int) -> np.ndarray:
    key = (t, h, w)
    p = _PATTERNS.get(key)
    if p is None:
        if len(_PATTERNS) > 4096:
            _PATTERNS.clear()
        p = _PATTERNS[key] = _grid_pattern(t, h, w)
        p.flags.writeable = False
    return p


def glm_mrope_positions_many(
    lengths: np.ndarray, features: Sequence[Sequence[tuple]], spatial_merge_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`glm_mrope_positions` of many prompts at once, concatenated: ``(3, sum(lengths))``
    int64 and the deltas ``(B,)``. ``features[b]``: ``(offset, (t, h, w) patches, modality)`` of
    sample ``b`` in offset order (the list form of :func:`glm_mrope_positions_flat`).
    """
    sample = [b for b, feats in enumerate(features) for _ in feats]
    offsets = [f[0] for feats in features for f in feats]
    grids = np.asarray([f[1] for feats in features for f in feats], dtype=np.int64).reshape(-1, 3)
    video = np.asarray([f[2] != "image" for feats in features for f in feats], dtype=bool)
    return glm_mrope_positions_flat(np.asarray(lengths, dtype=np.int64), np.asarray(sample, dtype=np.int64),
                                    np.asarray(offsets, dtype=np.int64), grids, video, spatial_merge_size)


def glm_mrope_positions_flat(
    lengths: np.ndarray, sample: np.ndarray, offsets: np.ndarray, grids: np.ndarray, video: np.ndarray,
    spatial_merge_size: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of many prompts: ``(3, sum(lengths))`` int64 and the deltas ``(B,)``. Item ``q``
    of the whole chunk sits in prompt ``sample[q]`` at token ``offsets[q]`` with patch grid
    ``grids[q]`` (a video if ``video[q]``); items in prompt order.

    Sizes and checks are array work over all items; the values are one ``np.concatenate`` of
    segments (a text run: a cached ``arange``; a media block: its cached ``np.indices`` pattern)
    plus one ``np.repeat`` of where each segment starts: the previous segment's maximum + 1.
    (Measured: cheaper than computing every token's three values by array arithmetic, whose
    divisions and scatters cost more than a few list appends per sample.)
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths <= 0).any():
        raise InvalidInputError(f"a prompt needs at least one token, got num_tokens={int(lengths.min())}")
    t = grids[:, 0]
    lh, lw = grids[:, 1] // spatial_merge_size, grids[:, 2] // spatial_merge_size
    size = t * lh * lw
    end = offsets + size
    prev_end = np.zeros_like(end)
    same = sample[1:] == sample[:-1]
    prev_end[1:][same] = end[:-1][same]
    bad = (offsets < prev_end) | (end > lengths[sample]) | (size <= 0) | (~video & (t != 1))
    if bad.any():
        q = int(np.flatnonzero(bad)[0])
        kind = "video" if video[q] else "image"
        raise InvalidInputError(f"{kind} block at {int(offsets[q])} ({int(t[q])}x{int(lh[q])}x{int(lw[q])}) "
                                f"does not fit the prompt")
    advance = np.maximum(np.maximum(t, lh), lw)  # a block's max over all rows + 1, from its start
    bounds = np.searchsorted(sample, np.arange(lengths.size + 1)).tolist()
    tl, hl, wl, sl, al, ol = (a.tolist() for a in (t, lh, lw, size, advance, offsets))
    parts: list[np.ndarray] = []
    starts: list[int] = []
    sizes: list[int] = []
    deltas: list[int] = []
    for b, n in enumerate(lengths.tolist()):
        st = nxt = 0  # st: next unwritten token; nxt: the position text continues from
        for q in range(bounds[b], bounds[b + 1]):
            if ol[q] > st:
                parts.append(_text_rows(ol[q] - st))
                starts.append(nxt)
                sizes.append(ol[q] - st)
                nxt += ol[q] - st
            parts.append(_pattern(tl[q], hl[q], wl[q]))
            starts.append(nxt)
            sizes.append(sl[q])
            nxt += al[q]
            st = ol[q] + sl[q]
        if n > st:
            parts.append(_text_rows(n - st))
            starts.append(nxt)
            sizes.append(n - st)
            nxt += n - st
        deltas.append(nxt - n)
    out = np.concatenate(parts, axis=1)
    out += np.repeat(np.asarray(starts, dtype=np.int64), sizes)
    return out, np.asarray(deltas, dtype=np.int64)


def glm_mrope_positions_reference(
    num_tokens: int, features: Sequence, spatial_merge_size: int = 2
) -> tuple[np.ndarray, int]:
    """Token-by-token GLM positions: each segment starts at the previous segment's max + 1."""
    blocks = _llm_blocks(num_tokens, features, spatial_merge_size, ("image", "video"))
    rows: list[list[int]] = [[], [], []]
    segments: list[list[tuple[int, int, int]]] = []
    st = 0
    for offset, t, h, w in blocks:
        base = max(max(p) for p in segments[-1]) + 1 if segments else 0
        segments.append([(base + k,) * 3 for k in range(offset - st)])
        base += offset - st
        segments.append([(base + a, base + b, base + c)
                         for a in range(t) for b in range(h) for c in range(w)])
        st = offset + t * h * w
    if st < num_tokens:
        base = max(max(p) for p in segments[-1]) + 1 if segments else 0
        segments.append([(base + k,) * 3 for k in range(num_tokens - st)])
    for seg in segments:
        for p in seg:
            for r in range(3):
                rows[r].append(p[r])
    arr = np.array(rows, dtype=np.int64)
    return arr, int(arr.max()) + 1 - num_tokens
