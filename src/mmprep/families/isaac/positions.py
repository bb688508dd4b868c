"""Isaac MRoPE positions (SPEC §6, traps T6-T8): only the t row is offset; h and w stay raw.

Two rules for where text (or the next image) continues after an image, named by
``IsaacSpec.mrope_rule``:

* ``"vllm"`` (default, the seed's ``get_mrope_input_positions``): text between images starts at
  the max over all three rows of the image + 1, i.e. ``max(t, h-1, w-1) + 1``; text after the
  last image at the image's t + 1.
* ``"perceptron"`` (the released model's own code, HF Isaac / TensorStream): the running position
  advances by 1 after every image, so whatever follows starts at the image's t + 1.

They differ only when an image is followed by another image later in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import InvalidInputError
from ...positions import _grid_pattern, _llm_blocks, _text_rows


MROPE_RULES = ("vllm", "perceptron")


def isaac_mrope_positions(
    num_tokens: int, features: Sequence, pixel_shuffle_scale: int = 2, rule: str = "vllm"
) -> tuple[np.ndarray, int]:
    """Isaac positions ``(3, L)`` int64 and the delta: offset on the t row only (T6, T7)."""
    if rule not in MROPE_RULES:
        raise ValueError(f"unknown Isaac mrope_rule {rule!r}; use one of {MROPE_RULES}")
    blocks = _llm_blocks(num_tokens, features, pixel_shuffle_scale, ("image",))
    out = np.empty((3, num_tokens), dtype=np.int64)
    st = nxt = 0
    last_t = None
    for offset, _, h, w in blocks:
        out[:, st:offset] = np.arange(nxt, nxt + offset - st)
        start = nxt + offset - st
        n = h * w
        block = _grid_pattern(1, h, w)
        block[0] += start
        out[:, offset:offset + n] = block
        # vllm: text between images at max over all rows + 1; perceptron: t + 1
        nxt = max(start, h - 1, w - 1) + 1 if rule == "vllm" else start + 1
        last_t = start
        st = offset + n
    if st < num_tokens:
        tail = nxt if last_t is None else last_t + 1  # text after the last image: t + 1
        out[:, st:] = np.arange(tail, tail + num_tokens - st)
    return out, int(out.max()) + 1 - num_tokens


def isaac_mrope_positions_flat(
    lengths: np.ndarray, sample: np.ndarray, offsets: np.ndarray, grids: np.ndarray,
    pixel_shuffle_scale: int = 2, rule: str = "vllm",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`isaac_mrope_positions` of many prompts, concatenated: ``(3, sum(lengths))`` int64
    and the deltas ``(B,)``. Image ``q`` of the chunk sits in prompt ``sample[q]`` at token
    ``offsets[q]`` with patch grid ``grids[q]``; images in prompt order. Checks are array work;
    values are cached segments (a text run, an image's raw ``(h, w)`` pattern) plus one
    ``np.repeat`` of where each segment starts (on the t row only for an image).
    """
    if rule not in MROPE_RULES:
        raise ValueError(f"unknown Isaac mrope_rule {rule!r}; use one of {MROPE_RULES}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths <= 0).any():
        raise InvalidInputError(f"a prompt needs at least one token, got num_tokens={int(lengths.min())}")
    t = grids[:, 0]
    lh, lw = grids[:, 1] // pixel_shuffle_scale, grids[:, 2] // pixel_shuffle_scale
    size = lh * lw
    end = offsets + size
    prev_end = np.zeros_like(end)
    same = sample[1:] == sample[:-1]
    prev_end[1:][same] = end[:-1][same]
    bad = (offsets < prev_end) | (end > lengths[sample]) | (size <= 0) | (t != 1)
    if bad.any():
        q = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"image at {int(offsets[q])} ({int(t[q])}x{int(lh[q])}x{int(lw[q])}) does not fit the prompt")
    bounds = np.searchsorted(sample, np.arange(lengths.size + 1)).tolist()
    hl, wl, sl, ol = (a.tolist() for a in (lh, lw, size, offsets))
    parts: list[np.ndarray] = []
    starts: list[tuple[int, int, int]] = []
    sizes: list[int] = []
    deltas: list[int] = []
    for b, n in enumerate(lengths.tolist()):
        st = nxt = 0
        top = -1  # the largest position written so far
        last_t = None
        for q in range(bounds[b], bounds[b + 1]):
            if ol[q] > st:
                parts.append(_text_rows(ol[q] - st))
                starts.append((nxt, nxt, nxt))
                sizes.append(ol[q] - st)
                nxt += ol[q] - st
            parts.append(_image_rows(hl[q], wl[q]))
            starts.append((nxt, 0, 0))  # the t row only (T6, T7)
            sizes.append(sl[q])
            top = max(top, nxt, hl[q] - 1, wl[q] - 1)
            last_t = nxt
            nxt = max(nxt, hl[q] - 1, wl[q] - 1) + 1 if rule == "vllm" else nxt + 1
            st = ol[q] + sl[q]
        if n > st:
            tail = nxt if last_t is None else last_t + 1  # text after the last image: t + 1
            parts.append(_text_rows(n - st))
            starts.append((tail, tail, tail))
            sizes.append(n - st)
            top = max(top, tail + n - st - 1)
        deltas.append(top + 1 - n)
    out = np.concatenate(parts, axis=1)
    out += np.repeat(np.asarray(starts, dtype=np.int64).T.reshape(3, -1), sizes, axis=1)
    return out, np.asarray(deltas, dtype=np.int64)


_IMAGES: dict[tuple[int, int], np.ndarray] = {}


def _image_rows(h: int, w: int) -> np.ndarray:
    """``(3, h*w)``: t row 0, then the raw h and w indices (cached, read-only)."""
    p = _IMAGES.get((h, w))
    if p is None:
        if len(_IMAGES) > 4096:
            _IMAGES.clear()
        p = _IMAGES[(h, w)] = _grid_pattern(1, h, w)
        p.flags.writeable = False
    return p


def isaac_mrope_positions_reference(
    num_tokens: int, features: Sequence, pixel_shuffle_scale: int = 2, rule: str = "vllm"
) -> tuple[np.ndarray, int]:
    """Token-by-token Isaac positions (offset on t only; trailing text from the last t + 1)."""
    blocks = _llm_blocks(num_tokens, features, pixel_shuffle_scale, ("image",))
    cols: list[tuple[int, int, int]] = []
    seg_max = None  # max over all rows of the last segment written
    last_t = None
    st = 0
    for offset, _, h, w in blocks:
        base = seg_max + 1 if seg_max is not None else 0
        text = [(base + k,) * 3 for k in range(offset - st)]
        cols += text
        start = base + len(text)
        image = [(start, y, x) for y in range(h) for x in range(w)]
        cols += image
        seg_max = max(max(c) for c in image) if rule == "vllm" else start
        last_t = image[-1][0]
        st = offset + h * w
    if st < num_tokens:
        base = last_t + 1 if last_t is not None else 0
        cols += [(base + k,) * 3 for k in range(num_tokens - st)]
    arr = np.array(cols, dtype=np.int64).T.reshape(3, -1)
    return arr, int(arr.max()) + 1 - num_tokens
