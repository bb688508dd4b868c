"""Packed rows: several samples' prompts in one row, each keeping its own positions.

``family.pack_batch(samples, bins)`` (this module's :func:`pack_rows`) takes one single-sample
:class:`~mmprep.types.Batch` per sample (from ``family.process`` or ``family.prompt``) and the
bins of :func:`mmprep.pack`, and returns one :class:`Batch` per bin with:

==================== ============================================================================
``input_ids``        ``(1, L)`` int64, the bin's samples concatenated in bin order (no padding)
``attention_mask``   ``(1, L)`` int64 ones (attention is confined by ``cu_seqlens``, not the mask)
``position_ids``     MRoPE families: ``(3, 1, L)`` int64, each sample's own positions, restarting at
                     0 per sample exactly as the sample alone has them; others: ``(1, L)`` 0..n-1
                     per sample
``cu_seqlens``       ``(n+1,)`` int32, ``[0, l0, l0+l1, ...]``: sample ``k`` is tokens
                     ``cu_seqlens[k]:cu_seqlens[k+1]``
``max_seqlen``       int, the longest sample
``rope_deltas``      ``(n, 1)`` int64 per-sample MRoPE delta (``mrope_position_delta`` of each
                     sample; MRoPE families only)
``sample_index``     ``(n,)`` int64, the bin's sample indices
media keys           every other key (``pixel_values``, ``image_grid_thw``, ``pixel_values_videos``,
                     ``video_grid_thw``, tiles, audio features ...) concatenated along axis 0 in
                     sample order, so encoder rows follow the placeholders left to right
==================== ============================================================================

``mm_token_type_ids`` (when present) is concatenated like ``input_ids``. ``.plans["samples"]``
keeps each sample's plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..types import Batch
from .driver import to_tensors

TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "position_ids", "mrope_position_delta")


def _np(v: Any) -> Any:
    if hasattr(v, "detach"):  # a torch tensor
        return v.detach().cpu().numpy()
    return np.asarray(v) if isinstance(v, (np.ndarray, list)) else v


def _one(sample: Mapping, k: int) -> dict[str, Any]:
    """A single-sample batch without padding: ids/types ``(L,)``, positions ``(3, L)`` or None."""
    ids = _np(sample["input_ids"])
    if ids.ndim == 2 and ids.shape[0] != 1:
        raise InvalidInputError(f"sample {k}: pack_batch takes single-sample batches, got input_ids {ids.shape}")
    ids = ids.reshape(-1)
    mask = _np(sample["attention_mask"]).reshape(-1).astype(bool) if "attention_mask" in sample else np.ones(ids.size, bool)
    if mask.size != ids.size:
        raise InvalidInputError(f"sample {k}: attention_mask has {mask.size} entries, input_ids {ids.size}")
    out = {"ids": ids[mask].astype(np.int64), "types": None, "pos": None, "delta": None}
    if out["ids"].size == 0:
        raise InvalidInputError(f"sample {k}: no tokens")
    if "mm_token_type_ids" in sample:
        out["types"] = _np(sample["mm_token_type_ids"]).reshape(-1)[mask].astype(np.int64)
    if "position_ids" in sample:
        pos = _np(sample["position_ids"])
        pos = pos.reshape(pos.shape[0], -1) if pos.ndim == 3 else pos.reshape(1, -1)
        out["pos"] = pos[:, mask].astype(np.int64)
    if "mrope_position_delta" in sample:
        out["delta"] = int(_np(sample["mrope_position_delta"]).reshape(-1)[0])
    return out


def _concat_media(values: list[np.ndarray], key: str) -> np.ndarray:
    """Concatenate along axis 0; ragged axis 1 (audio frames) is zero-padded to the longest."""
    if len({v.shape[2:] for v in values}) > 1 or len({v.ndim for v in values}) > 1:
        raise InvalidInputError(f"{key}: samples' shapes {[v.shape for v in values]} cannot be concatenated")
    if values[0].ndim >= 2 and len({v.shape[1] for v in values}) > 1:
        n = max(v.shape[1] for v in values)
        values = [np.pad(v, [(0, 0), (0, n - v.shape[1])] + [(0, 0)] * (v.ndim - 2)) for v in values]
    return np.concatenate(values, axis=0)


def pack_rows(samples: Sequence[Mapping], bins: Sequence[Sequence[int]], *,
              return_tensors: str | None = None) -> list[Batch]:
    """One packed :class:`Batch` per bin (keys in the module docstring).

    ``return_tensors``: ``"np"`` or ``"pt"``; default: torch when the samples hold torch tensors.
    """
    if return_tensors is None:
        first = samples[0]["input_ids"] if len(samples) else None
        return_tensors = "pt" if hasattr(first, "detach") else "np"
    cache: dict[int, dict[str, Any]] = {}
    rows = []
    for j, b in enumerate(bins):
        idx = [int(i) for i in b]
        if not idx:
            raise InvalidInputError(f"bin {j} is empty")
        for i in idx:
            if not 0 <= i < len(samples):
                raise InvalidInputError(f"bin {j}: sample index {i} out of range for {len(samples)} samples")
            if i not in cache:
                cache[i] = _one(samples[i], i)
        parts = [cache[i] for i in idx]
        rows.append(Batch(to_tensors(_row(samples, idx, parts), return_tensors),
                          {"samples": [getattr(samples[i], "plans", {}) for i in idx]}))
    return rows


def _row(samples: Sequence[Mapping], idx: list[int], parts: list[dict[str, Any]]) -> dict[str, Any]:
    lens = np.array([p["ids"].size for p in parts], dtype=np.int64)
    total = int(lens.sum())
    data: dict[str, Any] = {
        "input_ids": np.concatenate([p["ids"] for p in parts])[None],
        "attention_mask": np.ones((1, total), dtype=np.int64),
    }
    if any(p["types"] is not None for p in parts):
        data["mm_token_type_ids"] = np.concatenate(
            [p["types"] if p["types"] is not None else np.zeros(p["ids"].size, np.int64) for p in parts])[None]
    if all(p["pos"] is not None and p["pos"].shape[0] == 3 for p in parts):
        data["position_ids"] = np.concatenate([p["pos"] for p in parts], axis=1)[:, None, :]
    elif any(p["pos"] is not None and p["pos"].shape[0] == 3 for p in parts):
        raise InvalidInputError("some samples have MRoPE positions and others not: pack samples of one model")
    else:
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        data["position_ids"] = (np.arange(total, dtype=np.int64) - starts)[None]
    data["cu_seqlens"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    data["max_seqlen"] = int(lens.max())
    if all(p["delta"] is not None for p in parts):
        data["rope_deltas"] = np.array([[p["delta"]] for p in parts], dtype=np.int64)
    data["sample_index"] = np.array(idx, dtype=np.int64)
    keys: list[str] = []
    for i in idx:
        keys += [k for k in samples[i] if k not in TOKEN_KEYS and k not in keys]
    for key in keys:
        values = [_np(samples[i][key]) for i in idx if key in samples[i]]
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        if len(arrays) == len(values):
            data[key] = _concat_media(arrays, key)
        else:
            data[key] = [x for v in values for x in (v if isinstance(v, (list, tuple)) else [v])]
    return data
