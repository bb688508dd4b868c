"""The CUDA flash paths of the attention entry point, exercised on the CPU.

No GPU runs in CI, yet the code that feeds the flash kernels (argument names that changed
between torch releases, int32 offsets, GQA, causal windows, decode against a padded cache with
``seqused_k``) is where a first GPU run would fail. These tests register a CPU implementation of
``aten::_flash_attention_forward`` with flash semantics (bottom-right causal alignment,
``seqused_k``, native GQA, input checks) so torch's *real* ``varlen_attn`` wrapper runs on
the CPU, and they stand in for the signatures of older torch releases and for the flash-attn
package. Every route must equal the SDPA route, down to whole-model logits and greedy tokens.
"""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")

from mmprep.models import attention as att  # noqa: E402

varlen_module = pytest.importorskip("torch.nn.attention.varlen")


def _check_flash_inputs(q, k, v, cu_q, cu_k, max_q, max_k, seqused_k=None):
    """The checks the CUDA kernel makes (it would fail or read garbage otherwise)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        assert t.stride(-1) == 1, f"{name} needs a unit last stride"
    assert cu_q.dtype == torch.int32 and cu_k.dtype == torch.int32, (cu_q.dtype, cu_k.dtype)
    assert cu_q.numel() == cu_k.numel() and int(cu_q[-1]) == q.shape[0]
    assert int(cu_k[-1]) == k.shape[0] == v.shape[0]
    assert q.shape[1] % k.shape[1] == 0 and k.shape[1] == v.shape[1]
    assert int((cu_q[1:] - cu_q[:-1]).max()) <= max_q, "max_q below the longest query sequence"
    assert int((cu_k[1:] - cu_k[:-1]).max()) <= max_k, "max_k below the longest key sequence"
    if seqused_k is not None:
        assert seqused_k.dtype == torch.int32 and seqused_k.numel() == cu_q.numel() - 1
        assert bool((seqused_k <= cu_k[1:] - cu_k[:-1]).all())


def flash_reference(q, k, v, cu_q, cu_k, causal, scale, seqused_k=None, window=(-1, -1)):
    """Flash-attention semantics in fp32: per sequence, GQA by head groups, causal aligned bottom-right."""
    _check_flash_inputs(q, k, v, cu_q, cu_k, 10**9, 10**9, seqused_k)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out = torch.zeros(q.shape, dtype=torch.float32)
    groups = q.shape[1] // k.shape[1]
    left, right = window
    for i in range(cu_q.numel() - 1):
        qs, qe, ks = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i])
        ke = ks + int(seqused_k[i]) if seqused_k is not None else int(cu_k[i + 1])
        if qe == qs or ke == ks:
            continue
        qi = q[qs:qe].float()
        ki = k[ks:ke].float().repeat_interleave(groups, dim=1)
        vi = v[ks:ke].float().repeat_interleave(groups, dim=1)
        scores = torch.einsum("qhd,khd->hqk", qi, ki) * scale
        # query row r sits at key position r + (lk - lq): flash's bottom-right alignment
        rel = torch.arange(ke - ks)[None, :] - (torch.arange(qe - qs)[:, None] + (ke - ks) - (qe - qs))
        allowed = torch.ones_like(rel, dtype=torch.bool)
        if causal or right >= 0:
            allowed &= rel <= (0 if causal else right)
        if left >= 0:
            allowed &= rel >= -left
        scores = scores.masked_fill(~allowed, float("-inf"))
        out[qs:qe] = torch.einsum("hqk,khd->qhd", scores.softmax(-1).nan_to_num(), vi)
    return out.to(q.dtype)


def _cpu_flash_forward(query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal,
                       return_debug_mask, *, scale=None, window_size_left=None, window_size_right=None,
                       seqused_k=None, alibi_slopes=None, block_table=None, num_splits=None):
    assert dropout_p == 0.0 and alibi_slopes is None and block_table is None
    _check_flash_inputs(query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, seqused_k)
    window = (-1 if window_size_left is None else window_size_left, -1 if window_size_right is None else window_size_right)
    out = flash_reference(query, key, value, cum_seq_q, cum_seq_k, is_causal, scale, seqused_k, window)
    lse = torch.zeros(query.shape[1], query.shape[0])
    empty = torch.empty(0)
    return out, lse, torch.zeros(2, dtype=torch.int64), empty, empty


@pytest.fixture(scope="module")
def cpu_flash_kernel():
    """Give ``aten::_flash_attention_forward`` a CPU kernel for the duration of this module."""
    lib = torch.library.Library("aten", "IMPL")
    lib.impl("_flash_attention_forward", _cpu_flash_forward, "CPU")
    yield
    lib._destroy()


# Stand-ins for the ``varlen_attn`` signatures of torch 2.10 (is_causal) and 2.11 (window_size, scale).
def varlen_torch_2_10(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, is_causal=False, return_aux=None):
    assert query.shape[1] == key.shape[1], "torch 2.10 has no GQA"
    _check_flash_inputs(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k)
    return flash_reference(query, key, value, cu_seq_q, cu_seq_k, is_causal, None)


def varlen_torch_2_11(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                      window_size=(-1, -1)):
    assert query.shape[1] == key.shape[1], "torch 2.11 stand-in has no GQA"
    assert isinstance(window_size, tuple), "a list window is not recognised as causal"
    _check_flash_inputs(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k)
    return flash_reference(query, key, value, cu_seq_q, cu_seq_k, window_size == (-1, 0), scale)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, **unused):
    """The flash-attn package's entry point (positional order and keyword names of flash-attn 2)."""
    _check_flash_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    return flash_reference(q, k, v, cu_seqlens_q, cu_seqlens_k, causal, softmax_scale)


ROUTES = ["torch_2_13", "torch_2_10", "torch_2_11", "flash_attn"]


@pytest.fixture(params=ROUTES)
def flash_route(request, monkeypatch, cpu_flash_kernel):
    """Route every varlen/decode call through one CUDA code path, with CPU tensors."""
    real = varlen_module.varlen_attn
    fn = {"torch_2_13": real, "torch_2_10": varlen_torch_2_10, "torch_2_11": varlen_torch_2_11,
          "flash_attn": flash_attn_varlen_func}[request.param]
    name = "flash_attn" if request.param == "flash_attn" else "varlen"
    if name == "flash_attn":
        monkeypatch.setattr(att, "_flash_attn_func", lambda: fn)
    else:
        monkeypatch.setattr(att, "_torch_varlen", lambda: fn)
        monkeypatch.setattr(att, "_varlen_params", lambda: frozenset(inspect.signature(fn).parameters))
    monkeypatch.setattr(att, "_resolve", lambda device, dtype, backend: backend or name)
    return name


def _qkv(lengths, heads, kv_heads, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q, k, v = (torch.randn(total, h, dim, generator=g) for h in (heads, kv_heads, kv_heads))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


# torch 2.13's wrapper (GQA, seqused_k, window_size); the GPU machine's torch 2.11 has another
# signature, covered there by the torch_2_11 stand-in route
needs_torch_2_13_wrapper = pytest.mark.skipif(
    not {"enable_gqa", "seqused_k"} <= set(inspect.signature(varlen_module.varlen_attn).parameters),
    reason="this torch's varlen_attn predates enable_gqa/seqused_k")


@needs_torch_2_13_wrapper
def test_cpu_flash_kernel_reaches_torchs_real_wrapper(cpu_flash_kernel):
    q, k, v, cu = _qkv([3, 5], 4, 2, 8)
    out = varlen_module.varlen_attn(q, k, v, cu, cu, 5, 5, enable_gqa=True, window_size=(-1, 0))
    ref = att.varlen_attention_reference(q, k, v, cu, causal=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("custom_scale", [False, True])
def test_flash_routes_equal_the_reference(flash_route, causal, kv_heads, custom_scale):
    q, k, v, cu = _qkv([1, 7, 13, 2], 4, kv_heads, 16)
    scale = 0.3 if custom_scale else None
    # a non-contiguous q (a view into a wider tensor), as the models produce after rope
    q = torch.cat([q, q], dim=-1)[..., :16]
    got = att.varlen_attention(q, k, v, cu, causal=causal, scale=scale)
    ref = att.varlen_attention_reference(q, k, v, cu, causal=causal, scale=scale)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_flash_routes_decode_against_a_padded_cache(flash_route, kv_heads):
    B, S, H, D = 3, 20, 4, 16
    g = torch.Generator().manual_seed(3)
    q = torch.randn(B, H, D, generator=g)
    kc, vc = (torch.randn(B, S, kv_heads, D, generator=g) for _ in range(2))
    lengths = torch.tensor([1, 20, 9])
    got = att.decode_attention(q, kc, vc, lengths)
    ref = att.decode_attention(q, kc, vc, lengths, backend="eager")
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@needs_torch_2_13_wrapper
def test_decode_uses_the_kernel_with_seqused_k_when_torch_has_it(monkeypatch, cpu_flash_kernel):
    calls = []
    real = varlen_module.varlen_attn

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(att, "_torch_varlen", lambda: spy)
    monkeypatch.setattr(att, "_varlen_params", lambda: frozenset(inspect.signature(real).parameters))
    monkeypatch.setattr(att, "_resolve", lambda device, dtype, backend: "varlen")
    q = torch.randn(2, 4, 8)
    kc, vc = torch.randn(2, 6, 2, 8), torch.randn(2, 6, 2, 8)
    att.decode_attention(q, kc, vc, torch.tensor([2, 6]))
    assert calls and calls[0]["seqused_k"].tolist() == [2, 6] and calls[0]["enable_gqa"]


# -- the whole GLM model through each route ----------------------------------------------------------------


@pytest.fixture(scope="module")
def glm_pair(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests._torchvision import import_torchvision

    import_torchvision()
    import mmprep.models as mm
    from tests.test_models_glm4v import random_model, tiny_config
    from tests.tokenizers_fixture import glm_tokenizer

    tok = glm_tokenizer()
    hf = random_model(tiny_config(tok))
    d = tmp_path_factory.mktemp("glm4v_flash_routes")
    hf.save_pretrained(d)
    image = tok.token_to_id("<|image|>")
    grid = torch.tensor([[1, 4, 6], [1, 8, 4]])
    pix = torch.randn(int(grid.prod(-1).sum()), 1176, generator=torch.Generator().manual_seed(0))
    n = [int(x.prod()) // 4 for x in grid]
    row = [20, 21, 6] + [image] * n[0] + [7, 22, 6] + [image] * n[1] + [7, 23, 24]
    ids = torch.tensor([row])
    pos, delta = hf.model.get_rope_index(ids, (ids == image).long(), grid)
    batch = {"input_ids": ids, "pixel_values": pix, "image_grid_thw": grid, "position_ids": pos,
             "mrope_position_delta": delta}
    text_only = {"input_ids": torch.tensor([[20, 21, 22, 23, 24, 25], [30, 31, 32, 0, 0, 0]]),
                 "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])}
    return mm.load(d, device="cpu", dtype="float32"), batch, text_only


def test_whole_model_logits_and_greedy_tokens_are_route_independent(glm_pair, flash_route, monkeypatch):
    model, batch, text_only = glm_pair
    with torch.no_grad():
        got = model(batch).logits
        got_tokens = model.generate(batch, max_new_tokens=6, stop_token_ids=())
        got_text = model.generate(text_only, max_new_tokens=4, stop_token_ids=())
    monkeypatch.setattr(att, "_resolve", lambda device, dtype, backend: backend or "sdpa")
    with torch.no_grad():
        ref = model(batch).logits
        ref_tokens = model.generate(batch, max_new_tokens=6, stop_token_ids=())
        ref_text = model.generate(text_only, max_new_tokens=4, stop_token_ids=())
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(got_tokens, ref_tokens) and torch.equal(got_text, ref_text)
