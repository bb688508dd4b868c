"""A static cache for batched generation: per-layer KV for attention layers, per-layer state
for recurrent (Mamba-style) layers.

KV memory is allocated once: ``(attention layers, batch, max_len, kv_heads, head_dim)`` for keys
and values, so decode steps never reallocate (and CUDA graphs could capture them). Only the
layers listed as attention layers get KV slots (a hybrid decoder lists its few attention
layers); a recurrent layer keeps its fixed-size state in ``states[layer]`` (a dict of tensors it
owns). Each batch row has its own fill level ``lengths[b]`` (tokens), because prompts of one
batch have different lengths and are prefilled packed, without padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import BudgetError


@dataclass
class StaticKVCache:
    """Keys/values of every attention layer plus the number of valid slots per row."""

    keys: torch.Tensor  # (attention layers, B, max_len, kv_heads, head_dim)
    values: torch.Tensor  # same shape as keys
    lengths: torch.Tensor  # (B,) int64 tokens already stored per row
    kv_index: dict[int, int] = field(default_factory=dict)  # decoder layer -> KV slot; empty: identity
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # recurrent layer -> state

    @classmethod
    def allocate(
        cls, layers: int | Sequence[int], batch: int, max_len: int, kv_heads: int, head_dim: int, *,
        dtype: torch.dtype, device: torch.device | str,
    ) -> StaticKVCache:
        """An empty cache; ``max_len`` is in tokens (prompt + new tokens).

        ``layers``: the number of decoder layers (all attention), or the indices of the
        attention layers of a hybrid decoder (only those get KV memory).
        """
        index = {} if isinstance(layers, int) else {int(layer): i for i, layer in enumerate(layers)}
        count = layers if isinstance(layers, int) else len(index)
        shape = (count, batch, max_len, kv_heads, head_dim)
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(batch, dtype=torch.int64, device=device),
            index,
        )

    def _slot(self, layer: int) -> int:
        return self.kv_index[layer] if self.kv_index else layer

    def layer_kv(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, max_len, kv_heads, head_dim)`` of decoder layer ``layer``."""
        i = self._slot(layer)
        return self.keys[i], self.values[i]

    @property
    def max_len(self) -> int:
        return self.keys.shape[2]

    @property
    def batch(self) -> int:
        return self.keys.shape[1]

    def slots(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, slots)`` indices for ``counts[b]`` new tokens per row, packed row after row.

        Raises :class:`BudgetError` when a row would outgrow the cache.
        """
        counts = counts.to(self.lengths.device, torch.int64)
        end = self.lengths + counts
        if bool((end > self.max_len).any()):
            row = int(torch.argmax((end > self.max_len).int()))
            raise BudgetError(
                f"item {row}: {int(end[row])} tokens exceed the KV cache of {self.max_len} tokens"
            )
        rows = torch.repeat_interleave(torch.arange(self.batch, device=counts.device), counts)
        starts = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(int(counts.sum()), device=counts.device) - starts[rows]
        return rows, self.lengths[rows] + offsets

    def write(self, layer: int, rows: torch.Tensor, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store packed ``k``/``v`` ``(T, kv_heads, head_dim)`` at ``(rows[i], slots[i])``."""
        i = self._slot(layer)
        self.keys[i, rows, slots] = k.to(self.keys.dtype)
        self.values[i, rows, slots] = v.to(self.values.dtype)

    def advance(self, counts: torch.Tensor) -> None:
        """Mark ``counts[b]`` more tokens as valid in row ``b`` (after every layer wrote them)."""
        self.lengths += counts.to(self.lengths.device, torch.int64)
