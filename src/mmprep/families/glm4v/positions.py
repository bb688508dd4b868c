"""GLM-4.1V/4.6V MRoPE positions (SPEC §6.1): a media block is offset on all three rows; text
after it starts at the block's maximum + 1. A video is one contiguous ``t*h*w`` block starting at
its ``<|begin_of_video|>`` token, as the seed lays it out (SPEC §9 Q1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import InvalidInputError
from ...positions import _grid_pattern, _llm_blocks


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
_ARANGE = np.zeros((3, 0), dtype=np.int64)  # rows 0..n-1, grown on demand


def _text_rows(n: int) -> np.ndarray:
    """``(3, n)`` rows ``0..n-1`` (a view of a shared, read-only buffer)."""
    global _ARANGE
    if n > _ARANGE.shape[1]:
        size = max(n, 2 * _ARANGE.shape[1], 4096)
        _ARANGE = np.broadcast_to(np.arange(size, dtype=np.int64), (3, size)).copy()
        _ARANGE.flags.writeable = False
    return _ARANGE[:, :n]


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
    sample ``b`` in offset order. Each segment (a text run or a media block) is a cached pattern
    shifted by where it starts: the previous segment's maximum + 1.
    """
    parts: list[np.ndarray] = []
    starts: list[int] = []
    sizes: list[int] = []
    deltas: list[int] = []
    for n, feats in zip(np.asarray(lengths).tolist(), features):
        if n <= 0:
            raise InvalidInputError(f"a prompt needs at least one token, got num_tokens={n}")
        st = nxt = 0
        for offset, (t, h, w), modality in feats:
            lh, lw = h // spatial_merge_size, w // spatial_merge_size
            size = t * lh * lw
            if offset < st or offset + size > n or size <= 0 or (modality == "image" and t != 1):
                raise InvalidInputError(f"{modality} block at {offset} ({t}x{lh}x{lw}) does not fit the prompt")
            if offset > st:
                parts.append(_text_rows(offset - st))
                starts.append(nxt)
                sizes.append(offset - st)
                nxt += offset - st
            parts.append(_pattern(t, lh, lw))
            starts.append(nxt)
            sizes.append(size)
            nxt += max(t, lh, lw)
            st = offset + size
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
