"""GPU checks: flash attention paths and bf16 parity (skipped without CUDA).

Tolerance rule (flash-attention's tests): a bf16 result is correct when its error against the
fp32 reference is at most twice the error of transformers' own bf16 run on the same inputs.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

import mmprep.models as mm  # noqa: E402
from mmprep.models import attention as att  # noqa: E402

SLACK = 1e-3  # absolute slack for errors that are both ~0


def _qkv(lengths, heads, kv_heads, dim, dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    total = sum(lengths)
    q, k, v = (torch.randn(total, h, dim, device="cuda", generator=g, dtype=dtype) for h in (heads, kv_heads, kv_heads))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    return q, k, v, cu


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kv_heads", [8, 2])
def test_flash_backends_match_the_fp32_reference(causal, kv_heads):
    lengths = [1, 77, 300, 1024, 5]
    q, k, v, cu = _qkv(lengths, 8, kv_heads, 128, torch.bfloat16)
    ref = att.varlen_attention_reference(q.float(), k.float(), v.float(), cu, causal=causal)
    base = (att.varlen_attention(q, k, v, cu, causal=causal, backend="sdpa").float() - ref).abs().max()
    backends = [b for b in ("varlen", "flash_attn") if (b == "varlen" and att._torch_varlen()) or
                (b == "flash_attn" and att._flash_attn_func())]
    for backend in backends:
        got = att.varlen_attention(q, k, v, cu, causal=causal, backend=backend)
        assert got.dtype == torch.bfloat16
        assert (got.float() - ref).abs().max() <= 2 * base + SLACK, backend


def test_cuda_picks_a_flash_backend_when_torch_has_one():
    name = att.attention_backend("cuda")
    assert name in ("varlen", "flash_attn", "sdpa")
    if att._torch_varlen() is not None:
        assert name == "varlen"


def test_decode_attention_on_cuda_matches_reference():
    B, S, H, KV, D = 3, 64, 8, 2, 128
    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(B, H, D, device="cuda", generator=g, dtype=torch.bfloat16)
    kc = torch.randn(B, S, KV, D, device="cuda", generator=g, dtype=torch.bfloat16)
    vc = torch.randn(B, S, KV, D, device="cuda", generator=g, dtype=torch.bfloat16)
    lengths = torch.tensor([5, 64, 17], device="cuda")
    ref = att.decode_attention(q.float(), kc.float(), vc.float(), lengths, backend="eager")
    base = (att.decode_attention(q, kc, vc, lengths, backend="sdpa").float() - ref).abs().max()
    got = att.decode_attention(q, kc, vc, lengths)
    assert (got.float() - ref).abs().max() <= 2 * base + SLACK


@pytest.fixture(scope="module")
def gpu_ckpt(tmp_path_factory):
    from tests._torchvision import import_torchvision

    import_torchvision()
    from tests.test_models_glm4v import random_model, tiny_config
    from tests.tokenizers_fixture import glm_tokenizer

    tok = glm_tokenizer()
    # head_dim 64 in both towers: sizes the flash kernels accept
    cfg = tiny_config(tok, hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
                      rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5,
                                           mrope_section=[4, 6, 6]))
    cfg.vision_config.hidden_size, cfg.vision_config.num_heads, cfg.vision_config.out_hidden_size = 128, 2, 256
    hf = random_model(cfg)
    d = tmp_path_factory.mktemp("glm4v_gpu")
    hf.save_pretrained(d)
    return d, hf, tok


def _inputs(hf, tok):
    image = tok.token_to_id("<|image|>")
    grid = torch.tensor([[1, 8, 12], [1, 16, 8]])
    pix = torch.randn(int(grid.prod(-1).sum()), 1176, generator=torch.Generator().manual_seed(0))
    n = [int(g.prod()) // 4 for g in grid]
    ids = torch.tensor([[20, 21, 6] + [image] * n[0] + [7, 22, 6] + [image] * n[1] + [7, 23, 24]])
    types = (ids == image).long()
    pos, delta = hf.model.get_rope_index(ids, types, grid)
    ours = {"input_ids": ids, "pixel_values": pix, "image_grid_thw": grid, "position_ids": pos,
            "mrope_position_delta": delta}
    theirs = {"input_ids": ids, "pixel_values": pix, "image_grid_thw": grid, "mm_token_type_ids": types}
    return ours, theirs


def _cuda(batch, dtype=None):
    return {k: (v.to("cuda", dtype) if v.is_floating_point() and dtype else v.to("cuda")) for k, v in batch.items()}


def test_bf16_flash_logits_within_twice_transformers_bf16_error(gpu_ckpt):
    d, hf, tok = gpu_ckpt
    ours_in, hf_in = _inputs(hf, tok)
    with torch.no_grad():
        ref = hf.to("cuda", torch.float32)(**_cuda(hf_in)).logits.float()
        hf_bf16 = hf.to("cuda", torch.bfloat16)(**_cuda(hf_in, torch.bfloat16)).logits.float()
        ours = mm.load(d, device="cuda", dtype="bf16")
        got = ours(_cuda(ours_in)).logits.float()
    hf.to("cpu", torch.float32)
    err_hf, err_ours = (hf_bf16 - ref).abs().max(), (got - ref).abs().max()
    assert err_ours <= 2 * err_hf + SLACK, (float(err_ours), float(err_hf))


def test_bf16_vision_features_within_twice_transformers_bf16_error(gpu_ckpt):
    d, hf, tok = gpu_ckpt
    ours_in, _ = _inputs(hf, tok)
    pix, grid = ours_in["pixel_values"].cuda(), ours_in["image_grid_thw"].cuda()
    with torch.no_grad():
        ref = torch.cat(hf.to("cuda", torch.float32).model.get_image_features(pix, grid).pooler_output).float()
        hf_bf16 = torch.cat(hf.to("cuda", torch.bfloat16).model.get_image_features(pix, grid).pooler_output).float()
        got = mm.load(d, device="cuda", dtype="bf16").media_features(pix, grid).float()
    hf.to("cpu", torch.float32)
    assert (got - ref).abs().max() <= 2 * (hf_bf16 - ref).abs().max() + SLACK


def test_bf16_greedy_generation_runs_on_cuda(gpu_ckpt):
    d, hf, tok = gpu_ckpt
    ours_in, _ = _inputs(hf, tok)
    model = mm.load(d, device="cuda", dtype="bf16")
    out = model.generate(_cuda(ours_in), max_new_tokens=8, stop_token_ids=())
    assert out.shape == (1, 8) and out.device.type == "cuda"


def test_isaac_bf16_flash_tower_within_twice_transformers_bf16_error():
    """Isaac's packed tower (flash varlen) vs transformers' padded Siglip2 in bf16, both against fp32."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_model import build_isaac

    hf, ours, v = build_isaac(True, torch.device("cuda"), torch.float32)
    grids = [(8, 12), (16, 8), (4, 4)]
    sizes = [h * w for h, w in grids]
    packed = torch.randn(sum(sizes), v.patch_dim, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    padded = torch.zeros(len(grids), max(sizes), v.patch_dim, device="cuda")
    mask = torch.zeros(len(grids), max(sizes), dtype=torch.int64, device="cuda")
    for b, rows in enumerate(packed.split(sizes)):
        padded[b, : len(rows)], mask[b, : len(rows)] = rows, 1
    shapes = torch.tensor(grids, device="cuda")
    with torch.no_grad():
        ref = ours.encode(packed, grids).float()
        hf_bf16 = hf.to(torch.bfloat16)(pixel_values=padded.bfloat16(), pixel_attention_mask=mask,
                                         spatial_shapes=shapes).last_hidden_state[mask.bool()].float()
        got = ours.to(torch.bfloat16).encode(packed.bfloat16(), grids).float()
    assert (got - ref).abs().max() <= 2 * (hf_bf16 - ref).abs().max() + SLACK


def test_isaac_golden_checkpoint_bf16_generation_runs_on_cuda():
    from pathlib import Path

    import mmprep

    ckpt = Path(__file__).parent / "golden" / "models" / "isaac-tiny"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    batch = mmprep.load(ckpt).process("<image>Describe.", images=[str(ckpt / "images" / "one_image_0.png")],
                                      tokenizer=tok, return_tensors="pt")
    model = mm.load(ckpt, device="cuda", dtype="bf16")
    out = model.generate(batch, max_new_tokens=8, stop_token_ids=())
    assert out.shape == (1, 8) and out.device.type == "cuda"
