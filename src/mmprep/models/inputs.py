"""Turn a processor batch (mmprep ``Batch`` or a plain dict) into packed decoder inputs.

Decoders in mmprep run on *packed* tokens: the valid tokens of every row, one row after the
other, with ``cu_seqlens`` marking the rows. Padding (from ``attention_mask``, either side) is
dropped here and restored only when full ``(B, L, V)`` logits are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BudgetError, InvalidInputError


def as_tensor(value: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """numpy arrays, lists and tensors -> a tensor on ``device`` (no copy when already there)."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(value))
    else:
        t = torch.as_tensor(value)
    return t.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else t


@dataclass
class PackedTokens:
    """Valid tokens of a batch, packed row after row."""

    ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (3, T) int64 MRoPE positions (all rows equal for 1-D rope)
    cu_seqlens: torch.Tensor  # (B+1,) int32 token offsets of the rows
    lengths: torch.Tensor  # (B,) int64 valid tokens per row
    deltas: torch.Tensor  # (B,) int64: next decode position = lengths + deltas
    valid: torch.Tensor  # (B, L) bool, where the packed tokens sit in the padded batch
    sample_cu_seqlens: torch.Tensor | None = None  # packed rows: (samples+1,) int32 offsets of every sample

    @property
    def batch_size(self) -> int:
        return int(self.lengths.numel())

    @property
    def max_seqlen(self) -> int:
        return int(self.lengths.max()) if self.lengths.numel() else 0


def pack_tokens(batch: Any, device: torch.device | str, *, max_context: int, has_media: bool) -> PackedTokens:
    """Read ``input_ids`` ``(L,)``/``(B, L)``, optional ``attention_mask``, ``position_ids``
    ``(3, L)``/``(3, B, L)`` and ``mrope_position_delta``; check lengths against ``max_context``.

    Without ``position_ids`` a text-only batch gets ``0..L-1`` on all three axes; a batch with
    media must carry them (they depend on the media layout), else :class:`InvalidInputError`.
    """
    if "input_ids" not in batch:
        raise InvalidInputError("batch has no input_ids")
    ids = as_tensor(batch["input_ids"], device, torch.int64)
    ids = ids.unsqueeze(0) if ids.ndim == 1 else ids
    if ids.ndim != 2:
        raise InvalidInputError(f"input_ids must be (L,) or (B, L), got shape {tuple(ids.shape)}")
    B, L = ids.shape
    mask = batch.get("attention_mask")
    valid = torch.ones(B, L, dtype=torch.bool, device=ids.device) if mask is None else (
        as_tensor(mask, device).reshape(B, L) != 0)
    lengths = valid.sum(1)
    for b, n in enumerate(lengths.tolist()):
        if n == 0:
            raise InvalidInputError(f"item {b}: no valid tokens")
        if n > max_context:
            raise BudgetError(f"item {b}: {n} tokens exceed the model's context of {max_context} tokens")
    positions = _positions(batch, B, L, valid, device, has_media)
    deltas = batch.get("mrope_position_delta", batch.get("rope_deltas"))
    if batch.get("cu_seqlens") is not None:  # packed rows carry one delta per sample; no row continues
        deltas = None
    if deltas is None:
        top = positions.masked_fill(~valid[None], -1).amax(dim=(0, 2))
        deltas = top + 1 - lengths
    else:
        deltas = as_tensor(deltas, device, torch.int64).reshape(-1).expand(B).clone()
    cu = torch.zeros(B + 1, dtype=torch.int32, device=ids.device)
    cu[1:] = torch.cumsum(lengths, 0)
    samples = _sample_boundaries(batch.get("cu_seqlens"), lengths, cu)
    return PackedTokens(ids[valid], positions[:, valid], cu, lengths, deltas, valid, samples)


def _sample_boundaries(per_row: Any, lengths: torch.Tensor, row_cu: torch.Tensor) -> torch.Tensor | None:
    """Packed rows (several samples in one row, from a packer): every sample's token offsets.

    ``per_row`` is the batch's ``cu_seqlens``: one ``(n+1,)`` array for a single row, or one per
    row, each counting the row's valid tokens from 0 to its length. Attention then stays inside
    each sample, as if each ran alone. ``None`` -> one segment per row.
    """
    if per_row is None:
        return None
    rows = [per_row] if lengths.numel() == 1 and not isinstance(per_row, (list, tuple)) else list(per_row)
    if len(rows) != lengths.numel():
        raise InvalidInputError(f"cu_seqlens has {len(rows)} rows, input_ids has {lengths.numel()}")
    parts = [row_cu[:1].long()]
    for b, r in enumerate(rows):
        c = as_tensor(r, row_cu.device, torch.int64).reshape(-1)
        n = int(lengths[b])
        if c.numel() < 2 or int(c[0]) != 0 or int(c[-1]) != n or bool((c[1:] <= c[:-1]).any()):
            raise InvalidInputError(
                f"item {b}: cu_seqlens {c.tolist()} must rise strictly from 0 to the row's {n} valid tokens")
        parts.append(c[1:] + row_cu[b].long())
    return torch.cat(parts).to(torch.int32)


def _positions(batch, B: int, L: int, valid: torch.Tensor, device, has_media: bool) -> torch.Tensor:
    pos = batch.get("position_ids")
    if pos is None:
        if has_media:
            raise InvalidInputError(
                "batch has images or videos but no position_ids; MRoPE positions depend on the media layout "
                "(mmprep's processor returns them)"
            )
        p = (torch.cumsum(valid.long(), 1) - 1).clamp_min(0)
        return p[None].expand(3, B, L)
    p = as_tensor(pos, device, torch.int64)
    if p.ndim == 2 and p.shape[0] == 3 and B == 1:
        p = p[:, None]
    elif p.ndim == 2 and p.shape == (B, L):  # 1-D positions
        p = p[None].expand(3, B, L)
    elif p.ndim == 3 and p.shape[0] == 4:  # transformers' (text, t, h, w) layout
        p = p[1:]
    if tuple(p.shape) != (3, B, L):
        raise InvalidInputError(f"position_ids shape {tuple(p.shape)} does not fit input_ids ({B}, {L})")
    return p


def unpack(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Packed ``(T, ...)`` -> padded ``(B, L, ...)`` (zeros at padding)."""
    out = values.new_zeros(*valid.shape, *values.shape[1:])
    out[valid] = values
    return out


def last_token_index(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """Index of each row's last token in the packed layout."""
    return cu_seqlens[1:].long() - 1


def check_slot_counts(kind: str, slots_per_row: list[int], tokens_per_item: list[int]) -> None:
    """Media items fill placeholder slots in batch order; each row must take whole items.

    ``slots_per_row``: placeholder tokens of ``kind`` in each row; ``tokens_per_item``: features
    each image/video gives. Raises :class:`InvalidInputError` naming the row and the item.
    """
    item = 0
    for row, want in enumerate(slots_per_row):
        got, first = 0, item
        while got < want and item < len(tokens_per_item):
            got += tokens_per_item[item]
            item += 1
        if got != want:
            span = f"{kind}s {first}..{item - 1}" if item > first else f"no {kind}s"
            raise InvalidInputError(
                f"item {row}: {want} {kind} placeholder tokens, but {span} give {got} features "
                f"(per {kind}: {tokens_per_item[first:item] or tokens_per_item})"
            )
    if item != len(tokens_per_item):
        raise InvalidInputError(
            f"{len(tokens_per_item) - item} {kind}(s) left without placeholder tokens: the prompt has "
            f"{sum(slots_per_row)} {kind} placeholder tokens, the {kind}s give {sum(tokens_per_item)} features"
        )
