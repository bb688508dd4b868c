"""The decoder pieces every family's language model shares, and the passes that drive them.

* :class:`Step` -- what one pass over packed tokens hands every layer (rope angles, sequence
  boundaries, the cache and where each token goes in it).
* :class:`DecoderAttention` -- GQA self-attention with optional q/k/v biases, optional per-head
  q/k RMSNorm (Qwen3) and either rope layout; prefill is causal varlen attention, decode reads
  the cache. Weight names: ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``q_norm``, ``k_norm``.
* :func:`run_forward`, :func:`run_prefill`, :func:`run_decode` -- full logits, prefill and one
  decode step for any model that provides ``prepare(batch)``, ``text_forward(embeds, positions,
  step)``, ``embed(ids)``, ``logits(hidden)`` and ``new_cache``; the model classes call them in
  one line each, so every family generates the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InvalidInputError
from .attention import decode_attention, varlen_attention
from .cache import StaticKVCache
from .inputs import PackedTokens, last_token_index, unpack
from .layers import RMSNorm
from .rope import apply_rope_half, apply_rope_interleaved


@dataclass
class Step:
    """What every decoder layer needs for one forward pass over packed tokens."""

    cos: torch.Tensor | None  # (T, rotary_dim) fp32, set by the text model from the positions
    sin: torch.Tensor | None
    cu_seqlens: torch.Tensor  # (segments+1,) int32; decode: one token per row
    max_seqlen: int
    cache: StaticKVCache | None = None
    rows: torch.Tensor | None = None  # cache row of each token
    slots: torch.Tensor | None = None  # cache slot of each token
    decode: bool = False  # True: attend to the cache; False: causal attention among the new tokens


class DecoderAttention(nn.Module):
    """Causal GQA self-attention of decoder layer ``layer`` (its index in the cache)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, layer: int, *,
                 qkv_bias: bool = False, o_bias: bool = False, qk_norm_eps: float | None = None,
                 rope_layout: str = "half"):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"{heads} attention heads are not a multiple of {kv_heads} KV heads")
        self.layer, self.heads, self.kv_heads, self.head_dim = layer, heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=o_bias)
        if qk_norm_eps is not None:  # Qwen3: RMSNorm over each head before the rotation
            self.q_norm = RMSNorm(head_dim, qk_norm_eps)
            self.k_norm = RMSNorm(head_dim, qk_norm_eps)
        self.qk_norm = qk_norm_eps is not None
        self.rotate = {"half": apply_rope_half, "interleaved": apply_rope_interleaved}[rope_layout]

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        T = x.shape[0]
        q = self.q_proj(x).view(T, self.heads, self.head_dim)
        k = self.k_proj(x).view(T, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(T, self.kv_heads, self.head_dim)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.rotate(q, step.cos, step.sin), self.rotate(k, step.cos, step.sin)
        out = attend(q, k, v, self.layer, step)
        return self.o_proj(out.reshape(T, -1))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int, step: Step) -> torch.Tensor:
    """Write ``k``/``v`` to the cache (when there is one) and attend: causal among the packed
    tokens in prefill, against the cache in decode."""
    cache = step.cache
    if cache is not None:
        cache.write(layer, step.rows, step.slots, k, v)
    if step.decode:
        keys, values = cache.layer_kv(layer)
        return decode_attention(q, keys, values, cache.lengths + 1)
    return varlen_attention(q, k, v, step.cu_seqlens, step.max_seqlen, causal=True)


# -- the passes ---------------------------------------------------------------------------------------


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, L, vocab), zeros at padded positions


@dataclass
class Prompt:
    """A batch ready for the decoder: packed tokens and their embeddings with media merged in."""

    tokens: PackedTokens
    embeds: torch.Tensor  # (T, hidden)


def segments(tokens: PackedTokens) -> tuple[torch.Tensor, int]:
    """Attention segments of a prompt: the packed samples when the batch carries them
    (``tokens.segments``), else one per row."""
    if tokens.sample_cu_seqlens is not None:
        cu = tokens.sample_cu_seqlens
        return cu, int((cu[1:] - cu[:-1]).max()) if cu.numel() > 1 else 0
    return tokens.cu_seqlens, tokens.max_seqlen


def run_forward(model: Any, batch: Any) -> ModelOutput:
    """Full logits ``(B, L, vocab)`` of a processor batch (no cache)."""
    prompt = model.prepare(batch)
    t = prompt.tokens
    cu, longest = segments(t)
    hidden = model.text_forward(prompt.embeds, t.positions, Step(None, None, cu, longest))
    return ModelOutput(unpack(model.logits(hidden), t.valid))


def run_prefill(model: Any, prompt: Prompt, cache: StaticKVCache) -> torch.Tensor:
    """Run the prompt, fill the cache; returns each row's last-token logits ``(B, vocab)``."""
    t = prompt.tokens
    if bool((cache.lengths != 0).any()):
        raise InvalidInputError("prefill needs an empty cache")
    if t.sample_cu_seqlens is not None and t.sample_cu_seqlens.numel() != t.cu_seqlens.numel():
        raise InvalidInputError("a packed row (several samples) has no single continuation to generate from")
    rows, slots = cache.slots(t.lengths)
    step = Step(None, None, t.cu_seqlens, t.max_seqlen, cache, rows, slots)
    hidden = model.text_forward(prompt.embeds, t.positions, step)
    cache.advance(t.lengths)
    return model.logits(hidden[last_token_index(t.cu_seqlens)])


def run_decode(model: Any, token_ids: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
    """One new token per row at 1-D rope ``positions (B,)`` (all three MRoPE axes) -> ``(B, vocab)``."""
    B = token_ids.shape[0]
    ones = torch.ones(B, dtype=torch.int64, device=model.device)
    rows, slots = cache.slots(ones)
    cu = torch.arange(B + 1, dtype=torch.int32, device=model.device)
    step = Step(None, None, cu, 1, cache, rows, slots, decode=True)
    embeds = model.embed(token_ids.to(model.device))
    hidden = model.text_forward(embeds, positions.to(model.device)[None].expand(3, B), step)
    cache.advance(ones)
    return model.logits(hidden)
