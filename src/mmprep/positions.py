"""MRoPE position ids (GLM-4.1V/4.6V and Isaac) from a prompt length, offsets and grids.

Positions never read token values: they depend only on the prompt length ``L``, each media
item's first placeholder token (``offset``) and its patch grid ``(t, h, w)``. Output is an int64
array ``(3, L)`` with rows t, h, w, plus ``delta = max + 1 - L``: during decoding the token at
absolute index ``i >= L`` sits at position ``i + delta`` on all three rows.

The two families differ (SPEC §6, traps T6-T8):

* GLM offsets **all three** rows of a media block by the position where it starts; any text
  after a block starts at the block's maximum over all rows + 1. A video is one contiguous
  ``t*h*w`` block starting at its ``<|begin_of_video|>`` token, exactly as the seed lays it out
  (its interleaved separators/timestamps land inside the block or count as text; SPEC §9 Q1).
  The rule lives in :func:`_glm_block` so it can be swapped if the reference changes.
* Isaac offsets only the **t row**; h and w stay raw ``0..h-1`` / ``0..w-1``. Text *between*
  images starts at the max over all rows + 1, text *after the last* image at the last t + 1.

Each fast function has a slow ``*_reference`` twin written token by token, used in tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError, item_prefix


@dataclass(frozen=True)
class MediaFeature:
    """One media item as the positions see it.

    ``offset``: index (tokens) of the item's first placeholder token in the prompt.
    ``grid``: ``(t, h, w)`` in *patches* (before the spatial merge / pixel shuffle).
    """

    modality: str
    offset: int
    grid: tuple[int, int, int]


def as_features(features: Iterable) -> list[MediaFeature]:
    """Accept MediaFeature objects or ``{"modality", "offset", "grid_thw"}`` dicts."""
    out = []
    for f in features:
        if isinstance(f, MediaFeature):
            out.append(f)
        elif isinstance(f, Mapping):
            grid = f.get("grid_thw", f.get("grid"))
            out.append(MediaFeature(str(f["modality"]), f["offset"], tuple(grid)))
        else:
            raise InvalidInputError(f"a media feature must be a MediaFeature or a dict, got {type(f).__name__}")
    return out


def _int(x, what: str, index: int | None) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise InvalidInputError(f"{item_prefix(index)}{what} must be an int, got {x!r}")
    return int(x)


def _llm_blocks(
    num_tokens: int, features: Sequence, merge: int, modalities: tuple[str, ...]
) -> list[tuple[int, int, int, int]]:
    """Validate and sort the features; return ``(offset, t, h//merge, w//merge)`` per item.

    Raises where the reference would crash or silently build a wrong-length array: unknown
    modality, an image with ``t != 1``, a grid smaller than the merge, overlapping items,
    an item running past the prompt end, or an empty prompt.
    """
    num_tokens = _int(num_tokens, "num_tokens", None)
    merge = _int(merge, "merge size", None)
    if num_tokens <= 0:
        raise InvalidInputError(f"a prompt needs at least one token, got num_tokens={num_tokens}")
    if merge <= 0:
        raise InvalidInputError(f"the merge size must be positive, got {merge}")
    feats = as_features(features)
    order = sorted(range(len(feats)), key=lambda i: _int(feats[i].offset, "offset", i))
    blocks, end = [], 0
    for i in order:
        f = feats[i]
        if f.modality not in modalities:
            raise InvalidInputError(f"{item_prefix(i)}unsupported modality {f.modality!r}; expected one of {modalities}")
        if len(f.grid) != 3:
            raise InvalidInputError(f"{item_prefix(i)}grid must be (t, h, w), got {f.grid!r}")
        t, h, w = (_int(v, "grid entry", i) for v in f.grid)
        if f.modality == "image" and t != 1:
            raise InvalidInputError(f"{item_prefix(i)}an image must have t == 1, got grid {f.grid!r}")
        lt, lh, lw = t, h // merge, w // merge
        if min(t, h, w) <= 0 or lh == 0 or lw == 0:
            raise InvalidInputError(
                f"{item_prefix(i)}{f.modality} grid {(t, h, w)} gives no tokens with merge size {merge}"
            )
        offset = int(f.offset)
        if offset < end:
            raise InvalidInputError(
                f"{item_prefix(i)}{f.modality} at offset {offset} overlaps the previous item, which ends at {end}"
            )
        end = offset + lt * lh * lw
        if end > num_tokens:
            raise InvalidInputError(
                f"{item_prefix(i)}{f.modality} at offset {offset} needs {lt * lh * lw} tokens and ends at "
                f"{end}, past the prompt length {num_tokens}"
            )
        blocks.append((offset, lt, lh, lw))
    return blocks


def _grid_pattern(t: int, h: int, w: int) -> np.ndarray:
    """``np.indices((t, h, w))`` flattened to (3, t*h*w): t outermost, then h, then w."""
    return np.indices((t, h, w), dtype=np.int64).reshape(3, -1)


_ARANGE = np.zeros((3, 0), dtype=np.int64)  # rows 0..n-1, grown on demand (text runs of the batched twins)


def _text_rows(n: int) -> np.ndarray:
    """``(3, n)`` rows ``0..n-1`` (a view of a shared, read-only buffer)."""
    global _ARANGE
    if n > _ARANGE.shape[1]:
        size = max(n, 2 * _ARANGE.shape[1], 4096)
        _ARANGE = np.broadcast_to(np.arange(size, dtype=np.int64), (3, size)).copy()
        _ARANGE.flags.writeable = False
    return _ARANGE[:, :n]


def decode_positions(delta: int, start: int, count: int) -> np.ndarray:
    """Positions ``(3, count)`` of generated tokens at absolute indices ``start..start+count-1``."""
    return np.broadcast_to(np.arange(start, start + count, dtype=np.int64) + delta, (3, count)).copy()


def batch_positions(
    positions: Sequence[np.ndarray], length: int, padding_side: str = "right"
) -> np.ndarray:
    """Stack per-sample ``(3, L_i)`` positions into ``(3, B, length)``; padding holds 0."""
    out = np.zeros((3, len(positions), length), dtype=np.int64)
    for b, p in enumerate(positions):
        n = p.shape[1]
        if padding_side == "right":
            out[:, b, :n] = p
        else:
            out[:, b, length - n:] = p
    return out


# -- slow references (tests only): the seed algorithms, one token at a time -----------------


