"""A static KV cache for batched generation.

Memory is allocated once: ``(layers, batch, max_len, kv_heads, head_dim)`` for keys and values,
so decode steps never reallocate (and CUDA graphs could capture them). Each batch row has its
own fill level ``lengths[b]`` (tokens), because prompts of one batch have different lengths and
are prefilled packed, without padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import BudgetError


@dataclass
class StaticKVCache:
    """Keys/values of every attention layer plus the number of valid slots per row."""

    keys: torch.Tensor  # (layers, B, max_len, kv_heads, head_dim)
    values: torch.Tensor  # same shape as keys
    lengths: torch.Tensor  # (B,) int64 tokens already stored per row

    @classmethod
    def allocate(
        cls, layers: int, batch: int, max_len: int, kv_heads: int, head_dim: int, *,
        dtype: torch.dtype, device: torch.device | str,
    ) -> StaticKVCache:
        """An empty cache; ``max_len`` is in tokens (prompt + new tokens)."""
        shape = (layers, batch, max_len, kv_heads, head_dim)
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(batch, dtype=torch.int64, device=device),
        )

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
        self.keys[layer, rows, slots] = k.to(self.keys.dtype)
        self.values[layer, rows, slots] = v.to(self.values.dtype)

    def advance(self, counts: torch.Tensor) -> None:
        """Mark ``counts[b]`` more tokens as valid in row ``b`` (after every layer wrote them)."""
        self.lengths += counts.to(self.lengths.device, torch.int64)
