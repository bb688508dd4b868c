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
    """Positions of many prompts as array work, no loop per item or token: ``(3, sum(lengths))``
    and the deltas ``(B,)``. Item ``q`` of the whole chunk sits in prompt ``sample[q]`` at token
    ``offsets[q]`` with patch grid ``grids[q]`` (a video if ``video[q]``); items in prompt order.

    Every token sits at its index minus what the blocks before it in its prompt saved
    (``t*h*w - max(t, h, w)`` each); a block token adds its ``(t, h, w)`` index inside the
    block to the position its block starts at.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    B, T = lengths.size, int(lengths.sum())
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
    starts = np.cumsum(lengths) - lengths  # each prompt's first token in the flat output
    saved = size - np.maximum(np.maximum(t, lh), lw)
    per_sample = np.bincount(sample, weights=saved, minlength=B).astype(np.int64)
    # a token's position = its index in its prompt - what the blocks that end before it saved
    step = np.bincount(starts[sample] + end, weights=saved, minlength=T + 1).astype(np.int64)
    step[starts[1:]] -= per_sample[:-1]  # the next prompt starts over
    base = np.arange(T, dtype=np.int64) - np.repeat(starts, lengths) - np.cumsum(step[:T])
    out = np.broadcast_to(base, (3, T)).copy()
    if size.size:
        first = np.cumsum(size) - size
        j = np.arange(int(size.sum()), dtype=np.int64) - np.repeat(first, size)  # index inside the block
        at = np.repeat(starts[sample] + offsets, size) + j
        rw, rhw = np.repeat(lw, size), np.repeat(lh * lw, size)
        block_start = base[at] - j
        out[0, at] = block_start + j // rhw
        out[1, at] = block_start + (j // rw) % np.repeat(lh, size)
        out[2, at] = block_start + j % rw
    return out, -per_sample


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
