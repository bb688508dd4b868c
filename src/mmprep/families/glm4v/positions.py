"""GLM-4.1V/4.6V MRoPE positions (SPEC §6.1): a media block is offset on all three rows; text
after it starts at the block's maximum + 1. A video is one contiguous ``t*h*w`` block starting at
its ``<|begin_of_video|>`` token, as the seed lays it out (SPEC §9 Q1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
