"""GLM-4.5V / GLM-4.6V MoE decoder parity with transformers (CPU, fp32, tiny random checkpoints).

A tiny ``Glm4vMoeForConditionalGeneration`` (grouped top-k routing, a non-zero correction bias,
``head_dim`` != hidden / heads, one dense layer then MoE layers) is saved by transformers with its
per-expert weight layout, plus a fake multi-token-prediction layer as the Hub checkpoints carry;
mmprep loads the directory with ``mmprep.models.load`` and both run prompts from
``mmprep.load(dir).process(...)``.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import UnknownModelError, WeightsError  # noqa: E402
from mmprep.models import glm4v_moe  # noqa: E402
from tests._torchvision import import_torchvision  # noqa: E402
from tests.test_models_glm4v import IMG, SPECIAL, hf_kwargs, images  # noqa: E402
from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer  # noqa: E402

MTP = "model.language_model.layers.3."  # the checkpoint's extra (multi-token-prediction) layer


def moe_text(vocab: int, **overrides) -> dict:
    text = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=24, moe_intermediate_size=32, n_routed_experts=8,
                num_experts_per_tok=3, n_group=4, topk_group=2, first_k_dense_replace=1, routed_scaling_factor=1.5,
                max_position_embeddings=256,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5,
                                     mrope_section=[2, 2, 2]))
    text.update(overrides)
    return text


VISION = dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=48, out_hidden_size=64, image_size=56,
              patch_size=14)


def randomize(model, seed=0):
    """Weights large enough that greedy decoding does not collapse; a non-zero router correction bias."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if "inv_freq" in name:
                continue
            if "norm" in name and p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "e_score_correction_bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.ndim > 1 else 0.05)
    return model.eval()


def add_mtp_layer(d, hidden=64):
    """Append a fake multi-token-prediction layer under ``layers.{num_hidden_layers}`` (Hub layout)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    for name, shape in (("eh_proj.weight", (hidden, 2 * hidden)), ("enorm.weight", (hidden,)),
                        ("hnorm.weight", (hidden,)), ("shared_head.norm.weight", (hidden,)),
                        ("mlp.experts.0.gate_proj.weight", (32, hidden)), ("self_attn.q_proj.weight", (96, hidden))):
        tensors[MTP + name] = torch.ones(shape)
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """(directory, transformers model, tokenizer) of the tiny GLM-4.5V-style checkpoint."""
    import_torchvision()
    from transformers import (Glm4vImageProcessor, Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, Glm4vProcessor,
                              Glm4vVideoProcessor)

    tok = glm_tokenizer()
    ids = {k: tok.token_to_id(v) for k, v in SPECIAL.items()}
    hf = randomize(Glm4vMoeForConditionalGeneration(
        Glm4vMoeConfig(text_config=moe_text(tok.get_vocab_size()), vision_config=VISION, **ids)))
    d = tmp_path_factory.mktemp("glm4v_moe_tiny")
    hf.save_pretrained(d)
    add_mtp_layer(d)
    Glm4vProcessor(image_processor=Glm4vImageProcessor(), video_processor=Glm4vVideoProcessor(),
                   tokenizer=hf_tokenizer(tok)).save_pretrained(d)
    return d, hf, tok


@pytest.fixture(scope="module")
def ours(ckpt):
    return mm.load(ckpt[0], device="cpu", dtype="float32")


def prompts(ckpt):
    family = mmprep.load(ckpt[0])
    image = family.process(f"{IMG}Describe {IMG} the image.", images=images(), tokenizer=ckpt[2], return_tensors="pt")
    text = family.process("What is in this picture? A cat on a mat.", tokenizer=ckpt[2], return_tensors="pt")
    return {"image": image, "text": text}


# -- parity with transformers -------------------------------------------------------------------------


def test_checkpoint_stores_experts_one_by_one_and_loads_fused(ckpt, ours):
    from safetensors import safe_open

    with safe_open(str(ckpt[0] / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "model.language_model.layers.1.mlp.experts.7.up_proj.weight" in keys
    assert any(k.startswith(MTP) for k in keys)
    hf_experts = ckpt[1].model.language_model.layers[2].mlp.experts
    fused = ours.language_model.layers[2].mlp.experts
    assert torch.equal(fused.gate_up_proj, hf_experts.gate_up_proj)
    assert torch.equal(fused.down_proj, hf_experts.down_proj)
    assert type(ours.language_model.layers[0].mlp).__name__ == "SwiGLU"  # first_k_dense_replace = 1


@pytest.mark.parametrize("kind", ["image", "text"])
def test_moe_logits_match_transformers(ckpt, ours, kind):
    batch = prompts(ckpt)[kind]
    with torch.no_grad():
        ref = ckpt[1](**hf_kwargs(batch)).logits
        got = ours(batch).logits
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("kind", ["image", "text"])
def test_moe_greedy_8_tokens_match_transformers(ckpt, ours, kind):
    batch = prompts(ckpt)[kind]
    n = batch["input_ids"].shape[1]
    with torch.no_grad():
        ref = ckpt[1].generate(**hf_kwargs(batch), max_new_tokens=8, do_sample=False)[:, n:]
    got = ours.generate(batch, max_new_tokens=8, stop_token_ids=())
    assert got.tolist() == ref.tolist()
    assert len(set(got[0].tolist())) > 1


def test_router_picks_the_experts_and_weights_of_transformers(ckpt, ours):
    hf_gate = ckpt[1].model.language_model.layers[1].mlp.gate
    x = torch.randn(64, 64)
    _, ref_w, ref_i = hf_gate(x)
    got_i, got_w = ours.language_model.layers[1].mlp.gate(x)
    ref_order, got_order = ref_i.sort(-1), got_i.sort(-1)
    assert torch.equal(ref_order.values, got_order.values)
    assert torch.allclose(ref_w.gather(1, ref_order.indices), got_w.gather(1, got_order.indices), atol=1e-6)


def test_padded_moe_batch_equals_single_prompts(ckpt, ours):
    family = mmprep.load(ckpt[0])
    texts = ["Describe the image.", "What is in this picture? A cat on a mat."]
    single = family.process(texts[0], tokenizer=ckpt[2], return_tensors="pt")
    both = family.process(texts, tokenizer=ckpt[2], return_tensors="pt", padding_side="left")
    with torch.no_grad():
        one, two = ours(single).logits, ours(both).logits
    n = single["input_ids"].shape[1]
    assert torch.allclose(two[0, -n:], one[0], atol=1e-5, rtol=0)
    assert ours.generate(both, max_new_tokens=4, stop_token_ids=())[0].tolist() == \
        ours.generate(single, max_new_tokens=4, stop_token_ids=())[0].tolist()


def test_glm46v_with_moe_text_config_and_its_token_ids(ckpt, tmp_path):
    """GLM-4.6V: the Glm46V class with a ``glm4v_moe_text`` config and image/video ids 151363/151364."""
    from transformers import Glm46VConfig, Glm46VForConditionalGeneration

    tok = ckpt[2]
    ids = {k: tok.token_to_id(v) for k, v in SPECIAL.items()}
    real = {"image_token_id": 151363, "video_token_id": 151364}
    text = moe_text(151552, model_type="glm4v_moe_text", rope_parameters=dict(
        rope_type="default", rope_theta=500000.0, partial_rotary_factor=0.5, mrope_section=[2, 2, 2]))
    cfg = Glm46VConfig(text_config=text, vision_config=VISION, tie_word_embeddings=True,
                       **{**ids, **real})
    hf = randomize(Glm46VForConditionalGeneration(cfg), seed=3)
    hf.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "glm46v"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:  # transformers writes Glm46V's experts fused
        assert "model.language_model.layers.1.mlp.experts.gate_up_proj" in set(f.keys())
    model = mm.load(tmp_path, device="cpu")
    batch = dict(prompts(ckpt)["image"])
    small = batch["input_ids"]
    batch["input_ids"] = torch.where(small == ids["image_token_id"], 151363, small)  # the checkpoint's real ids
    n = small.shape[1]
    with torch.no_grad():
        ref = hf(**hf_kwargs(batch)).logits
        got = model(batch).logits
        ref_ids = hf.generate(**hf_kwargs(batch), max_new_tokens=8, do_sample=False)[:, n:]
    assert (got - ref).abs().max().item() <= 1e-4
    assert model.generate(batch, max_new_tokens=8, stop_token_ids=()).tolist() == ref_ids.tolist()


def test_bf16_load_keeps_the_router_in_fp32(ckpt):
    model = mm.load(ckpt[0], device="cpu", dtype="bf16")
    dtypes = {n: t.dtype for n, t in model.state_dict().items()}
    assert dtypes["language_model.layers.1.mlp.gate.weight"] == torch.float32
    assert dtypes["language_model.layers.1.mlp.gate.e_score_correction_bias"] == torch.float32
    assert dtypes["language_model.layers.1.mlp.experts.gate_up_proj"] == torch.bfloat16
    batch = prompts(ckpt)["text"]
    assert model.generate(batch, max_new_tokens=2, stop_token_ids=()).shape == (1, 2)


# -- the grouped expert matmuls ----------------------------------------------------------------------


@pytest.mark.parametrize("grouped_mm", [True, False])
def test_grouped_experts_equal_the_per_token_reference(ours, grouped_mm):
    experts = ours.language_model.layers[1].mlp.experts
    torch.manual_seed(0)
    x = torch.randn(13, 64)
    chosen = torch.stack([torch.randperm(6)[:3] for _ in range(13)])  # experts 6 and 7 get no token
    weights = torch.rand(13, 3)
    if grouped_mm and not hasattr(torch, "_grouped_mm"):
        pytest.skip("this torch has no _grouped_mm")
    experts.grouped_mm = grouped_mm
    try:
        with torch.no_grad():
            got = experts(x, chosen, weights)
            ref = glm4v_moe.experts_reference(experts, x, chosen, weights)
    finally:
        experts.grouped_mm = None
    assert (got - ref).abs().max().item() <= 1e-5


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("scoring_func", "softmax"), ("topk_method", "greedy"),
                                              ("n_group", 3), ("hidden_act", "gelu")])
def test_unknown_moe_config_raises_naming_the_field(ckpt, tmp_path, field, value):
    config = json.loads((ckpt[0] / "config.json").read_text())
    config["text_config"][field] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownModelError, match=f"text_config.{field}"):
        mm.load(tmp_path, device="cpu")


def test_unknown_text_model_type_raises(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm46v", "text_config": {"model_type": "llama"}}))
    with pytest.raises(UnknownModelError, match="text_config.model_type = 'llama'"):
        mm.load(tmp_path)


def test_missing_expert_and_unknown_extra_layer_keys_raise(ckpt, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(ckpt[0] / "model.safetensors")
    tensors.pop("model.language_model.layers.2.mlp.experts.5.up_proj.weight")
    tensors["model.language_model.layers.4.mlp.x"] = torch.ones(2)  # not the MTP layer: unexpected
    (tmp_path / "config.json").write_text((ckpt[0] / "config.json").read_text())
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(WeightsError) as err:
        mm.load(tmp_path, device="cpu")
    msg = str(err.value)
    assert "1 missing keys: model.language_model.layers.2.mlp.experts.5.up_proj.weight" in msg
    assert "unexpected keys: model.language_model.layers.4.mlp.x" in msg
    assert "language_model.layers.2.mlp.experts.gate_up_proj[5] rows [(0, 32)] do not tile 0:64" in msg


def test_stacked_table_checks_shapes_and_tiling():
    from mmprep.models.weights import SKIP, Stack, check_table

    params = {"e.w": (2, 4, 3)}
    good = {"a.0": Stack("e.w", 0), "b.0": Stack("e.w", 0, 2), "a.1": Stack("e.w", 1), "b.1": Stack("e.w", 1, 2),
            "mtp.*": SKIP}
    shapes = {k: (2, 3) for k in good if k != "mtp.*"} | {"mtp.x": (7,)}
    check_table(good, shapes, params)
    with pytest.raises(WeightsError, match=r"e\.w\[1\] rows \[\(0, 2\), \(1, 3\)\] do not tile"):
        check_table(dict(good, **{"b.1": Stack("e.w", 1, 1)}), shapes, params)
    with pytest.raises(WeightsError, match=r"mis-shaped keys: a\.0 \[2, 5\]"):
        check_table(good, dict(shapes, **{"a.0": (2, 5)}), params)
    with pytest.raises(WeightsError, match=r"unexpected keys: mtp\.x"):
        check_table({k: v for k, v in good.items() if k != "mtp.*"}, shapes, params)


def test_generate_command_runs_the_moe_checkpoint(ckpt, ours, tmp_path):
    import io

    from PIL import Image

    from mmprep.cli import main
    from mmprep.models.cli import build_prompt

    (ckpt[0] / "tokenizer.json").write_text(ckpt[2].to_str())
    path = tmp_path / "a.png"
    Image.fromarray(images()[0]).save(path)
    out = io.StringIO()
    code = main(["generate", "--model", str(ckpt[0]), "--image", str(path), "--prompt", "Describe the image.",
                 "--max-new-tokens", "6", "--device", "cpu"], out=out)
    family = mmprep.load(ckpt[0])
    batch = family.process(build_prompt(family, "Describe the image.", 1, 0), images=[str(path)], tokenizer=ckpt[2],
                           return_tensors="pt")
    ids = ours.generate(batch, max_new_tokens=6)
    assert code == 0 and out.getvalue() == ckpt[2].decode(ids[0].tolist(), skip_special_tokens=True) + "\n"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_grouped_experts_on_cuda_keep_the_flash_error_rule(ours):
    """bf16 experts (torch._grouped_mm on Hopper, padded bmm elsewhere) vs the fp32 loop: error at
    most twice that of the plain bf16 bmm path (the flash-attention tolerance rule)."""
    import copy

    torch.manual_seed(0)
    x, chosen, weights = torch.randn(512, 64), torch.randint(0, 8, (512, 3)), torch.rand(512, 3)
    with torch.no_grad():
        ref = glm4v_moe.experts_reference(ours.language_model.layers[1].mlp.experts, x, chosen, weights)
        experts = copy.deepcopy(ours.language_model.layers[1].mlp.experts).cuda().bfloat16()
        x, chosen, weights = x.cuda(), chosen.cuda(), weights.cuda()
        experts.grouped_mm = False
        base = (experts(x.bfloat16(), chosen, weights).float().cpu() - ref).abs().max()
        experts.grouped_mm = None  # the automatic choice
        got = experts(x.bfloat16(), chosen, weights).float().cpu()
    assert (got - ref).abs().max() <= 2 * base + 1e-3


def test_sharded_moe_checkpoint_fills_fused_experts_across_files(ckpt, ours, tmp_path):
    ckpt[1].save_pretrained(tmp_path, max_shard_size="60KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
    gate_up = {index[f"model.language_model.layers.2.mlp.experts.{e}.{p}_proj.weight"] for e in range(8) for p in ("gate", "up")}
    assert len(gate_up) > 1  # one fused tensor is filled from several files
    sharded = mm.load(tmp_path, device="cpu")
    for (n1, p1), (n2, p2) in zip(ours.state_dict().items(), sharded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
