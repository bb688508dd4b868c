"""One attention entry point for every mmprep model.

Two shapes of attention cover the vision towers and the decoders of all families:

* :func:`varlen_attention` -- packed variable-length attention. ``q``/``k``/``v`` are
  ``(total_tokens, heads, head_dim)`` and ``cu_seqlens`` ``(n+1,)`` int32 marks where each sequence
  starts; tokens attend only inside their own sequence (bidirectional for vision towers, causal
  for decoder prefill).
* :func:`decode_attention` -- one new query per batch row against a static KV cache
  ``(batch, max_len, kv_heads, head_dim)`` whose first ``lengths[b]`` slots are valid.

The backend is chosen once per device type (:func:`attention_backend` reports it,
:func:`set_attention_backend` overrides it):

``varlen``      ``torch.nn.attention.varlen.varlen_attn`` (flash varlen kernels, CUDA)
``flash_attn``  the ``flash-attn`` package's ``flash_attn_varlen_func`` (CUDA, when installed)
``sdpa``        ``F.scaled_dot_product_attention`` once per sequence (any device; on CUDA it
                picks SDPA's flash / memory-efficient kernels)
``sdpa_mask``   one SDPA call over the packed batch with a block-diagonal mask (small batches)
``eager``       matmul + softmax in fp32, the slow reference used by tests

Grouped-query attention (fewer KV heads than query heads) is handled by every backend.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

BACKENDS = ("varlen", "flash_attn", "sdpa", "sdpa_mask", "eager")
_override: str | None = None


# -- backend choice -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _torch_varlen() -> Callable | None:
    """torch's flash varlen kernel, or None when this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


@functools.lru_cache(maxsize=None)
def _varlen_params() -> frozenset[str]:
    """Keyword names ``varlen_attn`` accepts (they changed between torch 2.10 and 2.13)."""
    fn = _torch_varlen()
    if fn is None:
        return frozenset()
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return frozenset()


@functools.lru_cache(maxsize=None)
def _flash_attn_func() -> Callable | None:
    try:
        from flash_attn import flash_attn_varlen_func  # type: ignore[import-not-found]
    except ImportError:
        return None
    return flash_attn_varlen_func


@functools.lru_cache(maxsize=None)
def _auto_backend(device_type: str) -> str:
    """The fastest backend that works on this device type (decided once per process)."""
    if device_type == "cuda" and torch.cuda.is_available():
        if _torch_varlen() is not None:
            return "varlen"
        if _flash_attn_func() is not None:
            return "flash_attn"
    return "sdpa"


def attention_backend(device: torch.device | str | None = None) -> str:
    """Name of the backend used for tensors on ``device`` (default: CUDA if present, else CPU)."""
    if _override is not None:
        return _override
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return _auto_backend(torch.device(device).type)


def set_attention_backend(name: str | None) -> None:
    """Force one backend for every call (``None`` returns to the automatic choice)."""
    global _override
    if name is not None and name not in BACKENDS:
        raise InvalidInputError(f"unknown attention backend {name!r}; known: {', '.join(BACKENDS)}")
    if name == "varlen" and _torch_varlen() is None:
        raise InvalidInputError("attention backend 'varlen' needs torch.nn.attention.varlen (torch >= 2.10)")
    if name == "flash_attn" and _flash_attn_func() is None:
        raise InvalidInputError("attention backend 'flash_attn' needs the flash-attn package")
    _override = name


def _resolve(device: torch.device, dtype: torch.dtype, backend: str | None) -> str:
    name = backend or attention_backend(device)
    if name in ("varlen", "flash_attn") and (device.type != "cuda" or dtype not in _FLASH_DTYPES):
        return "sdpa"  # flash kernels are CUDA fp16/bf16 only; fp32 and CPU tensors fall back
    return name


_FLASH_DTYPES = (torch.float16, torch.bfloat16)


def activate_hopper_flash(impl: str = "FA3") -> bool:
    """Switch SDPA/varlen to torch's Hopper kernels (``"FA3"`` or ``"FA4"``) when available.

    Returns whether the switch happened; a torch or GPU without them keeps its default kernels.
    """
    try:
        from torch.nn.attention import activate_flash_attention_impl, list_flash_attention_impls
    except ImportError:
        return False
    if not torch.cuda.is_available() or impl not in list_flash_attention_impls():
        return False
    try:
        activate_flash_attention_impl(impl)
    except (ImportError, RuntimeError, ValueError):  # kernel package (flash_attn_interface) missing, not Hopper
        return False
    return True


# -- packed variable-length attention -----------------------------------------------------------------


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    backend: str | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention inside each packed sequence.

    ``q`` is ``(T, H, D)``, ``k``/``v`` ``(T, Hkv, D)`` with ``H % Hkv == 0``; ``cu_seqlens`` holds
    ``n+1`` token offsets starting at 0 and ending at ``T``; ``max_seqlen`` (tokens) is the longest
    sequence (computed when omitted). Returns ``(T, H, D)`` in ``q``'s dtype.

    ``bias`` (optional): ``(n, H, max_seqlen, max_seqlen)`` added to the scaled scores of each
    sequence, its top-left ``L x L`` block for a sequence of ``L`` tokens (relative-position
    attention, Parakeet). Flash kernels take no bias, so a bias runs on SDPA (or the masked /
    eager backend when one of those is chosen).
    """
    total, heads, dim = q.shape
    if k.shape[0] != total or v.shape[0] != total or heads % k.shape[1]:
        raise InvalidInputError(f"varlen_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} disagree")
    scale = dim**-0.5 if scale is None else scale
    cu = cu_seqlens.to(device=q.device, dtype=torch.int32)
    if max_seqlen is None:
        max_seqlen = int((cu[1:] - cu[:-1]).max()) if cu.numel() > 1 else 0
    name = _resolve(q.device, q.dtype, backend)
    if bias is not None:
        _check_bias(bias, cu, heads, max_seqlen)
        if name in ("varlen", "flash_attn"):
            name = "sdpa"
        if name == "sdpa_mask":
            return _varlen_masked(q, k, v, cu, causal, scale, bias)
        if name == "eager":
            return varlen_attention_reference(q, k, v, cu, causal=causal, scale=scale, bias=bias)
        return _varlen_loop(q, k, v, cu, causal, scale, bias)
    if name == "varlen":
        return _varlen_torch(q, k, v, cu, max_seqlen, causal, scale)
    if name == "flash_attn":
        fn = _flash_attn_func()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        return fn(q, k, v, cu, cu, max_seqlen, max_seqlen, softmax_scale=scale, causal=causal)
    if name == "sdpa_mask":
        return _varlen_masked(q, k, v, cu, causal, scale)
    if name == "eager":
        return varlen_attention_reference(q, k, v, cu, causal=causal, scale=scale)
    return _varlen_loop(q, k, v, cu, causal, scale)


def _varlen_torch(q, k, v, cu, max_seqlen, causal, scale):
    """torch's flash varlen kernel; keyword names depend on the torch version."""
    params = _varlen_params()
    kwargs: dict = {}
    if "scale" in params:
        kwargs["scale"] = scale
    elif abs(scale - q.shape[-1] ** -0.5) > 1e-12:
        q = q * (scale * q.shape[-1] ** 0.5)  # old signature: fold a custom scale into q
    if causal:
        if "is_causal" in params:
            kwargs["is_causal"] = True
        else:
            kwargs["window_size"] = (-1, 0)
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            k, v = expand_kv(k, q.shape[1]), expand_kv(v, q.shape[1])
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # flash kernels want dense rows
    out = _torch_varlen()(q, k, v, cu, cu, max_seqlen, max_seqlen, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def expand_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Repeat KV heads ``(..., Hkv, D)`` to ``heads`` query heads (GQA -> MHA layout)."""
    rep = heads // x.shape[-2]
    return x if rep == 1 else x.repeat_interleave(rep, dim=-2)


def _sdpa(q, k, v, mask=None, causal=False, scale=None):
    """SDPA on ``(B, H, L, D)`` tensors with KV heads already expanded."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


def _check_bias(bias: torch.Tensor, cu: torch.Tensor, heads: int, max_seqlen: int) -> None:
    n = cu.numel() - 1
    if bias.ndim != 4 or bias.shape[0] != n or bias.shape[1] not in (1, heads) \
            or min(bias.shape[2], bias.shape[3]) < max_seqlen:
        raise InvalidInputError(
            f"varlen_attention: bias {tuple(bias.shape)} must be (sequences={n}, heads={heads}, >= {max_seqlen}, "
            f">= {max_seqlen})")


def _causal_bias(b: torch.Tensor, causal: bool) -> torch.Tensor:
    """A float bias block with the causal (top-left aligned) mask folded in as ``-inf``."""
    if not causal:
        return b
    L = b.shape[-1]
    upper = torch.ones(L, L, dtype=torch.bool, device=b.device).triu(1)
    return b.masked_fill(upper, float("-inf"))


def _varlen_loop(q, k, v, cu, causal, scale, bias=None):
    """One SDPA call per sequence: exact, and memory stays O(longest sequence^2)."""
    heads = q.shape[1]
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    bounds = cu.tolist()
    out = torch.empty_like(q)
    for i, (s, e) in enumerate(zip(bounds[:-1], bounds[1:])):
        if e == s:
            continue
        qs, ks, vs = (t[s:e].transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        if bias is None:
            out[s:e] = _sdpa(qs, ks, vs, causal=causal, scale=scale)[0].transpose(0, 1)
        else:
            mask = _causal_bias(bias[i, :, : e - s, : e - s], causal).to(q.dtype)[None]
            out[s:e] = _sdpa(qs, ks, vs, mask=mask, scale=scale)[0].transpose(0, 1)
    return out


def packed_bias(bias: torch.Tensor, cu: torch.Tensor, causal: bool) -> torch.Tensor:
    """``(H, T, T)`` float scores bias over the packed tokens: each sequence's block of ``bias``,
    ``-inf`` between sequences (and above the diagonal when causal)."""
    total = int(cu[-1])
    out = torch.full((bias.shape[1], total, total), float("-inf"), dtype=torch.float32, device=bias.device)
    bounds = cu.tolist()
    for i, (s, e) in enumerate(zip(bounds[:-1], bounds[1:])):
        out[:, s:e, s:e] = _causal_bias(bias[i, :, : e - s, : e - s].float(), causal)
    return out


def block_diagonal_mask(cu_seqlens: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """``(T, T)`` bool mask: True where query token i may attend to key token j."""
    total = int(cu_seqlens[-1])
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    seq = torch.repeat_interleave(torch.arange(lengths.numel(), device=cu_seqlens.device), lengths)
    mask = seq[:, None] == seq[None, :]
    if causal:
        idx = torch.arange(total, device=cu_seqlens.device)
        mask &= idx[:, None] >= idx[None, :]
    return mask


def _varlen_masked(q, k, v, cu, causal, scale, bias=None):
    heads = q.shape[1]
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    mask = block_diagonal_mask(cu, causal) if bias is None else packed_bias(bias, cu, causal).to(q.dtype)[None]
    q4, k4, v4 = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
    return _sdpa(q4, k4, v4, mask=mask, scale=scale)[0].transpose(0, 1)


def varlen_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, *,
    causal: bool = False, scale: float | None = None, bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Slow fp32 reference: explicit scores, block-diagonal mask (plus ``bias``), softmax (tests only)."""
    heads, dim = q.shape[1], q.shape[2]
    scale = dim**-0.5 if scale is None else scale
    k, v = expand_kv(k, heads).float(), expand_kv(v, heads).float()
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale
    cu = cu_seqlens.to(q.device)
    if bias is None:
        scores = scores.masked_fill(~block_diagonal_mask(cu, causal), float("-inf"))
    else:
        scores = scores + packed_bias(bias, cu, causal)
    out = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)
    return out.to(q.dtype)


# -- decoding against a static KV cache -----------------------------------------------------------------


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    lengths: torch.Tensor,
    *,
    scale: float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """One query token per row against its cached keys.

    ``q`` is ``(B, H, D)``; ``k_cache``/``v_cache`` ``(B, S, Hkv, D)`` (S = cache slots); row ``b``
    attends to slots ``[0, lengths[b])``, which already include the new token. Returns ``(B, H, D)``.
    """
    batch, heads, dim = q.shape
    slots = k_cache.shape[1]
    scale = dim**-0.5 if scale is None else scale
    name = _resolve(q.device, q.dtype, backend)
    if name == "varlen" and "seqused_k" in _varlen_params() and "enable_gqa" in _varlen_params():
        cu_q = torch.arange(batch + 1, device=q.device, dtype=torch.int32)
        cu_k = cu_q * slots
        out = _torch_varlen()(
            q, k_cache.reshape(batch * slots, *k_cache.shape[2:]),
            v_cache.reshape(batch * slots, *v_cache.shape[2:]), cu_q, cu_k, 1, slots,
            scale=scale, enable_gqa=k_cache.shape[2] != heads, seqused_k=lengths.to(torch.int32),
        )
        return out[0] if isinstance(out, tuple) else out
    used = int(lengths.max())  # attend over the filled prefix only
    k = expand_kv(k_cache[:, :used], heads).transpose(1, 2)
    v = expand_kv(v_cache[:, :used], heads).transpose(1, 2)
    mask = torch.arange(used, device=q.device)[None, :] < lengths.to(q.device)[:, None]
    if name == "eager":
        scores = torch.einsum("bhd,bhsd->bhs", q.float(), k.float()) * scale
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return torch.einsum("bhs,bhsd->bhd", scores.softmax(-1), v.float()).to(q.dtype)
    out = _sdpa(q.unsqueeze(2), k, v, mask=mask[:, None, None, :], scale=scale)
    return out[:, :, 0]
