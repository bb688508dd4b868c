"""Batched generation for any mmprep model: prefill the prompt once, then decode with the cache.

A model plugs in by providing

* ``prepare(batch) -> prompt`` with ``prompt.tokens`` (:class:`~mmprep.models.inputs.PackedTokens`),
* ``new_cache(batch_size, max_len)``, ``prefill(prompt, cache) -> (B, vocab)`` last-token logits,
* ``decode(token_ids (B,), positions (B,), cache) -> (B, vocab)``,
* ``max_context`` (tokens), ``stop_token_ids`` and ``device``.

Decode positions continue from the MRoPE delta: the ``i``-th new token of row ``b`` sits at
``lengths[b] + deltas[b] + i`` on all three axes (for 1-D rope the delta is 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import BudgetError, InvalidInputError


def sample_next(
    logits: torch.Tensor, *, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of ``logits (B, vocab)``.

    ``temperature == 0`` is greedy (argmax). Otherwise the logits are divided by ``temperature``,
    restricted to the ``top_k`` best (0 = all) and to the smallest set whose probability reaches
    ``top_p`` (the best token always stays), and sampled.
    """
    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise InvalidInputError(f"bad sampling options temperature={temperature}, top_k={top_k}, top_p={top_p}")
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability mass of the better tokens
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.inference_mode()
def generate(
    model: Any,
    batch: Any,
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_token_ids: Iterable[int] | None = None,
    pad_token_id: int | None = None,
    generator: torch.Generator | None = None,
    on_tokens: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """New token ids ``(B, n)``, ``n <= max_new_tokens``.

    A row stops after emitting one of ``stop_token_ids`` (default: the model's end-of-sequence
    ids; the stop token is kept in the output) and is padded with ``pad_token_id`` (default: the
    first stop id, or 0) while other rows continue. ``on_tokens(step, ids (B,))`` is called after
    each step (streaming). Raises :class:`BudgetError` when prompt + new tokens exceed the context.
    """
    if max_new_tokens < 0:
        raise InvalidInputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    stops = tuple(model.stop_token_ids if stop_token_ids is None else stop_token_ids)
    pad = pad_token_id if pad_token_id is not None else (stops[0] if stops else 0)
    prompt = model.prepare(batch)
    tokens = prompt.tokens
    longest = int(tokens.lengths.max())
    if longest + max_new_tokens > model.max_context:
        row = int(tokens.lengths.argmax())
        raise BudgetError(
            f"item {row}: {longest} prompt tokens + {max_new_tokens} new tokens exceed the model's "
            f"context of {model.max_context} tokens"
        )
    B = tokens.batch_size
    out = torch.full((B, max_new_tokens), pad, dtype=torch.int64, device=model.device)
    if max_new_tokens == 0:
        return out
    cache = model.new_cache(B, longest + max_new_tokens)
    logits = model.prefill(prompt, cache)
    next_pos = (tokens.lengths + tokens.deltas).to(model.device)
    stop_ids = torch.tensor(stops, dtype=torch.int64, device=model.device)
    done = torch.zeros(B, dtype=torch.bool, device=model.device)
    for step in range(max_new_tokens):
        ids = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        ids = torch.where(done, torch.full_like(ids, pad), ids)
        out[:, step] = ids
        if on_tokens is not None:
            on_tokens(step, ids)
        done |= torch.isin(ids, stop_ids)
        if bool(done.all()):
            return out[:, : step + 1]
        if step + 1 < max_new_tokens:
            logits = model.decode(ids, next_pos + step, cache)
    return out
