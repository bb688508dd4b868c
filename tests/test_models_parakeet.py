"""Parakeet sound encoder + projector (Nemotron 3 Nano Omni) parity with transformers (CPU, fp32).

A tiny ``NemotronH_Omni_Reasoning_V3`` (its audio tower is transformers' ``ParakeetEncoder``,
its ``embed_audio`` the sound projector) is saved by transformers, which writes the checkpoint
names ``sound_encoder.encoder.*`` / ``sound_projection.*``; mmprep loads the sound tower alone and
both encode the log-mel features of ``mmprep.load("nemotron-3-nano-omni").audio_features(...)``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import mmprep  # noqa: E402
from mmprep.errors import InvalidInputError, UnknownModelError  # noqa: E402
from mmprep.models import parakeet  # noqa: E402
from mmprep.models.attention import varlen_attention, varlen_attention_reference  # noqa: E402
from tests._torchvision import import_torchvision  # noqa: E402

SOUND = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=48, conv_kernel_size=9,
             subsampling_conv_channels=8, subsampling_conv_kernel_size=3, subsampling_conv_stride=2,
             subsampling_factor=8, num_mel_bins=128, projection_hidden_size=40, projection_bias=False,
             sampling_rate=16000)
SECONDS = (0.55, 1.3, 2.0)  # three clips of different lengths, batch-padded to the longest


def omni_config(sound=SOUND):
    from transformers import NemotronH_Omni_Reasoning_V3_Config

    text = dict(vocab_size=300, hidden_size=64, layers_block_type=["attention", "mlp"], num_attention_heads=2,
                num_key_value_heads=1, head_dim=32, intermediate_size=64, mamba_num_heads=2, mamba_head_dim=16,
                n_groups=1, ssm_state_size=8, num_hidden_layers=2)
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=16, image_size=64,
                  num_cls_tokens=1, num_registers=0, video_temporal_patch_size=2)
    return NemotronH_Omni_Reasoning_V3_Config(llm_config=text, vision_config=vision, audio_config=dict(sound),
                                              sound_context_token_id=27, img_context_token_id=18,
                                              vit_hidden_size=32, projector_hidden_size=48)


def randomize(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point() or "inv_freq" in name:
                continue
            if name.endswith("running_var"):
                p.uniform_(0.5, 1.5)
            elif ("norm" in name and name.endswith("weight")) and p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.ndim > 1 and "bias_" not in name:
                p.normal_(0, 0.7 / p[0].numel() ** 0.5)
            else:
                p.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def omni(tmp_path_factory):
    """(directory, transformers Omni model) with random weights, saved by transformers."""
    import_torchvision()
    from transformers import NemotronH_Omni_Reasoning_V3

    hf = randomize(NemotronH_Omni_Reasoning_V3(omni_config()))
    d = tmp_path_factory.mktemp("omni_tiny")
    hf.save_pretrained(d)
    return d, hf


@pytest.fixture(scope="module")
def tower(omni):
    return parakeet.load_sound_tower(omni[0], device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def clips():
    family = mmprep.load("nemotron-3-nano-omni")
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(s * 16000)).astype(np.float32) * 0.1 for s in SECONDS]
    batch = family.audio_features(waves, return_tensors="pt")
    return family, waves, batch


def hf_encode(hf, batch):
    """transformers' audio tower and projector on the padded batch (its own attention mask)."""
    with torch.no_grad():
        out = hf.audio_tower(input_features=batch.features, attention_mask=batch.attention_mask.long())
        return out.last_hidden_state, hf.embed_audio(out.last_hidden_state)


def test_checkpoint_names_and_config_as_transformers_writes_them(omni, tower):
    from safetensors import safe_open

    with safe_open(str(omni[0] / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "sound_encoder.encoder.layers.1.self_attn.relative_k_proj.weight" in keys
    assert "sound_projection.linear2.weight" in keys
    assert tower.cfg.attention_bias is False and tower.cfg.scale_input is False
    assert tower.cfg.llm_hidden_size == 64 and tower.cfg.projection_hidden_size == 40


def test_hub_sound_config_reads_the_omni_defaults(omni, tower):
    """The Hub config: ``sound_config`` (model_type parakeet) without attention_bias / scale_input."""
    config = json.loads((omni[0] / "config.json").read_text())
    hub = {k: v for k, v in config.items() if k not in ("audio_config", "text_config")}
    hub["sound_config"] = dict(SOUND, model_type="parakeet")
    hub["llm_config"] = config["text_config"]
    assert parakeet.ParakeetConfig.from_hf(hub) == tower.cfg
    explicit = dict(hub, sound_config=dict(SOUND, attention_bias=True, scale_input=True))
    cfg = parakeet.ParakeetConfig.from_hf(explicit)
    assert cfg.attention_bias and cfg.scale_input


def test_encoder_and_projected_features_match_transformers(omni, tower, clips):
    batch = clips[2]
    ref_hidden, ref_proj = hf_encode(omni[1], batch)
    with torch.no_grad():
        hidden, per_clip = tower.encoder(batch.features, batch.lengths)
        proj, per_clip2 = tower.encode_audio(batch.features, batch.lengths)
    assert per_clip == per_clip2
    rows = torch.tensor(per_clip)
    mask = torch.arange(ref_hidden.shape[1])[None] < rows[:, None]
    assert (hidden - ref_hidden[mask]).abs().max().item() <= 1e-4
    assert (proj - ref_proj[mask]).abs().max().item() <= 1e-4
    assert proj.shape == (int(rows.sum()), 64)


def test_tokens_per_clip_equal_the_prompt_count(tower, clips):
    family, waves, batch = clips
    _, per_clip = tower.encode_audio(batch.features, batch.lengths)
    assert per_clip == [int(family.count_audio_tokens(len(w))) for w in waves]
    assert per_clip == [p.num_tokens for p in batch.plans]


def test_padded_batch_equals_single_clip_runs(tower, clips):
    family, waves, batch = clips
    with torch.no_grad():
        packed, _ = tower.encode_audio(batch.features, batch.lengths)
        singles = []
        for w in waves:
            one = family.audio_features([w], return_tensors="pt")
            singles.append(tower.encode_audio(one.features, one.lengths)[0])
    assert torch.allclose(packed, torch.cat(singles), atol=1e-5, rtol=0)


def test_placeholder_count_mismatch_raises_naming_the_clip(tower, clips):
    _, _, batch = clips
    _, per_clip = tower.encode_audio(batch.features, batch.lengths)
    wrong = list(per_clip)
    wrong[1] += 1
    with pytest.raises(InvalidInputError, match=rf"audio clip 1: the encoder gives {per_clip[1]} audio tokens, "
                                                rf"but the prompt has {wrong[1]} placeholders"):
        tower.encode_audio(batch.features, batch.lengths, expected_tokens=wrong)


def test_bad_feature_shapes_and_lengths_raise(tower, clips):
    _, _, batch = clips
    with pytest.raises(InvalidInputError, match="expected \\(clips, frames, 128\\)"):
        tower.encode_audio(batch.features[..., :80], batch.lengths)
    too_long = batch.lengths.clone()
    too_long[0] = batch.features.shape[1] + 1
    with pytest.raises(InvalidInputError, match="audio clip 0"):
        tower.encode_audio(batch.features, too_long)


@pytest.mark.parametrize(("field", "value"), [("model_type", "conformer"), ("subsampling_factor", 6),
                                              ("hidden_act", "swish_fancy")])
def test_unknown_sound_config_raises_naming_the_field(field, value):
    with pytest.raises(UnknownModelError, match=f"sound_config.{field}"):
        parakeet.ParakeetConfig.from_hf({"sound_config": dict(SOUND, **{"model_type": "parakeet", field: value})})


def test_relative_scores_equal_the_pairwise_reference():
    torch.manual_seed(0)
    qv, rel = torch.randn(2, 5, 3, 4), torch.randn(9, 3, 4)
    assert torch.allclose(parakeet.relative_scores(qv, rel, 5), parakeet.relative_scores_reference(qv, rel, 5),
                          atol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "sdpa_mask", "eager", "varlen"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_bias_enters_every_backend(backend, causal):
    torch.manual_seed(1)
    cu = torch.tensor([0, 3, 8, 12], dtype=torch.int32)
    q, k, v = torch.randn(12, 4, 8), torch.randn(12, 2, 8), torch.randn(12, 2, 8)
    bias = torch.randn(3, 4, 5, 5)
    got = varlen_attention(q, k, v, cu, 5, causal=causal, bias=bias, backend=backend)
    ref = varlen_attention_reference(q, k, v, cu, causal=causal, bias=bias)
    assert (got - ref).abs().max().item() <= 1e-5
    plain = varlen_attention(q, k, v, cu, 5, causal=causal, backend=backend)
    zero = varlen_attention(q, k, v, cu, 5, causal=causal, bias=torch.zeros(3, 1, 5, 5), backend=backend)
    assert (plain - zero).abs().max().item() <= 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_sound_tower_on_cuda_keeps_the_flash_error_rule(omni, tower, clips):
    """bf16 mmprep vs fp32: error at most twice transformers' own bf16 error (+ slack)."""
    import copy

    _, _, batch = clips
    ref, _ = tower.encode_audio(batch.features, batch.lengths)
    ours = copy.deepcopy(tower).cuda().bfloat16()
    hf = copy.deepcopy(omni[1]).cuda().bfloat16()
    with torch.no_grad():
        got, per_clip = ours.encode_audio(batch.features.cuda(), batch.lengths.cuda())
        feats = batch.features.cuda().bfloat16()
        out = hf.audio_tower(input_features=feats, attention_mask=batch.attention_mask.long().cuda())
        hf_proj = hf.embed_audio(out.last_hidden_state)
    mask = (torch.arange(hf_proj.shape[1])[None] < torch.tensor(per_clip)[:, None]).cuda()
    base = (hf_proj[mask].float().cpu() - ref).abs().max()
    assert (got.float().cpu() - ref).abs().max() <= 2 * base + 1e-2


def test_relative_table_is_the_interleaved_sinusoid_of_each_distance():
    table = parakeet.relative_table(4, 6, "cpu", torch.float64)
    for m, d in enumerate(range(3, -4, -1)):  # rows: distances 3 .. -3
        for i in range(3):
            angle = d * 10000.0 ** (-2 * i / 6)
            assert table[m, 2 * i].item() == pytest.approx(np.sin(angle), abs=1e-6)
            assert table[m, 2 * i + 1].item() == pytest.approx(np.cos(angle), abs=1e-6)
