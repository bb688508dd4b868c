"""The Nemotron Nano VL model layer against transformers 5's ``NemotronHForCausalLM`` and
``NemotronH_Omni_Reasoning_V3`` (RADIO + NemotronH), on tiny random checkpoints (CPU, fp32).

Both models get the same ``input_ids`` and pixel tensors (mmprep's processor output), so the
preprocessing differences between vLLM's rules (which mmprep follows) and transformers'
processor do not matter. Checkpoints are saved in the released (remote-code) weight layout:
transformers' ``save_pretrained`` writes those names; the transformers-only layer-scale tensors
are dropped.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import InvalidInputError, UnknownModelError, WeightsError  # noqa: E402
from tests._torchvision import import_torchvision  # noqa: E402
from tests.tokenizers_fixture import hf_tokenizer, nemotron_tokenizer  # noqa: E402

TOL = 1e-4
PATTERN = ["linear_attention", "moe", "full_attention", "mlp", "linear_attention"]  # M E * - M


def text_config(vocab: int, **kw) -> dict:
    cfg = dict(vocab_size=vocab, hidden_size=64, layers_block_type=PATTERN, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, intermediate_size=96, mamba_num_heads=4, mamba_head_dim=16,
               ssm_state_size=8, n_groups=2, chunk_size=8, n_routed_experts=4, num_experts_per_tok=2,
               moe_intermediate_size=32, moe_shared_expert_intermediate_size=48, n_group=2, topk_group=1,
               routed_scaling_factor=2.5, eos_token_id=2)
    cfg.update(kw)
    return cfg


VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, max_img_size=128, patch_size=16,
              num_cls_tokens=2, num_registers=3, video_temporal_patch_size=2)


def randomize(model, seed: int = 0):
    """Weights large enough that greedy decoding does not collapse; Mamba A/D/dt in their real ranges
    (some heads' dt below the time_step_min clamp, so the clamp rule is exercised)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_scale" in name:  # transformers-only identity (C-RADIO has no layer scale)
                continue
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand_like(p) * 4 + 0.5))
            elif name.endswith("dt_bias"):
                p.copy_(torch.log(torch.expm1(torch.rand_like(p) * 0.0998 + 0.0002)))  # some below 0.001
            elif name.endswith(".D"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif ("norm" in name or "layer_norm" in name) and p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.ndim > 1 else 0.05)
        for name, b in model.named_buffers():
            if "e_score_correction_bias" in name:
                b.copy_(0.1 * torch.randn_like(b))
    return model.eval()


def save_original(model, d) -> None:
    """save_pretrained, then drop the tensors only transformers has (RADIO layer scales)."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(d)
    f = d / "model.safetensors"
    state = {k: v for k, v in load_file(f).items() if "layer_scale" not in k}
    save_file(state, f, metadata={"format": "pt"})


def hf_greedy(forward, ids: torch.Tensor, tokens: torch.Tensor, **kw) -> list[int]:
    """transformers' greedy choice after the prompt and each of ``tokens`` but the last, in one
    forward (teacher forcing): equal to ``tokens`` iff transformers' own greedy decoding would
    produce them, step by step."""
    with torch.no_grad():
        logits = forward(input_ids=torch.cat([ids, tokens[None, :-1]], 1), use_cache=False, **kw).logits
    return logits[0, -tokens.numel():].argmax(-1).tolist()  # (EVS: transformers drops pruned tokens)


# -- the decoder alone ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    import_torchvision()
    from transformers import NemotronHConfig, NemotronHForCausalLM

    hf = randomize(NemotronHForCausalLM(NemotronHConfig(**text_config(300))))
    d = tmp_path_factory.mktemp("nemotron_h_tiny")
    hf.save_pretrained(d)
    return d, hf, mm.load(d, device="cpu", dtype="float32")


def test_nemotron_h_logits_match_transformers_for_mamba_attention_mlp_moe_layers(text_ckpt):
    _, hf, ours = text_ckpt
    assert ours.cfg.pattern == "ME*-M"
    ids = torch.randint(3, 300, (1, 21), generator=torch.Generator().manual_seed(1))  # 21: chunks of 8 + a tail
    with torch.no_grad():
        ref = hf(input_ids=ids).logits
    assert (ours({"input_ids": ids}).logits - ref).abs().max() < TOL


def test_nemotron_h_greedy_8_tokens_match_transformers(text_ckpt):
    _, hf, ours = text_ckpt
    ids = torch.randint(3, 300, (1, 13), generator=torch.Generator().manual_seed(2))
    got = ours.generate({"input_ids": ids}, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, ids, got)


def test_cached_decode_equals_the_full_forward(text_ckpt):
    """Prefill + one-token decode steps (hybrid KV + conv/SSM cache) give the full forward's logits."""
    ours = text_ckpt[2]
    ids = torch.randint(3, 300, (2, 11), generator=torch.Generator().manual_seed(3))
    extra = torch.randint(3, 300, (2, 6), generator=torch.Generator().manual_seed(4))
    full = ours({"input_ids": torch.cat([ids, extra], 1)}).logits
    with torch.no_grad():
        prompt = ours.prepare({"input_ids": ids})
        cache = ours.new_cache(2, 17)
        steps = [ours.prefill(prompt, cache)]
        for i in range(extra.shape[1]):
            steps.append(ours.decode(extra[:, i], torch.full((2,), 11 + i), cache))
    for i, logits in enumerate(steps):
        assert (logits - full[:, 10 + i]).abs().max() < TOL


def test_padded_batch_generation_equals_single_prompts(text_ckpt):
    ours = text_ckpt[2]
    g = torch.Generator().manual_seed(5)
    a, b = torch.randint(3, 300, (1, 9), generator=g), torch.randint(3, 300, (1, 20), generator=g)
    ids = torch.zeros(2, 20, dtype=torch.int64)
    mask = torch.zeros(2, 20, dtype=torch.int64)
    ids[0, 11:], mask[0, 11:] = a[0], 1  # left padding
    ids[1], mask[1] = b[0], 1
    both = ours.generate({"input_ids": ids, "attention_mask": mask}, max_new_tokens=6, stop_token_ids=[])
    for row, single in enumerate((a, b)):
        assert both[row].tolist() == ours.generate({"input_ids": single}, max_new_tokens=6, stop_token_ids=[])[0].tolist()


def test_chunked_ssd_scan_equals_the_sequential_reference():
    from mmprep.models.mamba import ssd_scan, ssd_scan_reference

    g = torch.Generator().manual_seed(0)
    for L, chunk in ((1, 4), (7, 4), (16, 8), (23, 5)):
        H, P, N = 3, 4, 5
        x, B, C = (torch.randn(L, H, d, generator=g) for d in (P, N, N))
        dt = torch.rand(L, H, generator=g) * 0.5
        A = -torch.rand(H, generator=g) * 3
        h0 = torch.randn(H, P, N, generator=g)
        y, h = ssd_scan(x, dt, A, B, C, chunk, h0)
        y_ref, h_ref = ssd_scan_reference(x, dt, A, B, C, h0)
        assert (y - y_ref).abs().max() < 1e-5 and (h - h_ref).abs().max() < 1e-5


def test_unsupported_layer_type_raises():
    from mmprep.models.nemotron_h import NemotronHConfig as Cfg

    with pytest.raises(UnknownModelError, match="unsupported layer type.*'X'"):
        Cfg.from_hf({"hybrid_override_pattern": "M*X-"})
    with pytest.raises(UnknownModelError, match="sliding"):
        Cfg.from_hf({"layers_block_type": ["mamba", "sliding"]})


# -- the whole model (transformers' Omni as the peer) --------------------------------------------------


def omni_config(tok, **kw):
    from transformers.models.nemotron_h_omni import NemotronH_Omni_Reasoning_V3_Config as OmniConfig

    return OmniConfig(text_config=text_config(tok.get_vocab_size()), vision_config=VISION, vision_hidden_size=32,
                      projector_hidden_size=48, image_token_id=tok.token_to_id("<image>"),
                      video_token_id=tok.token_to_id("<video>"), force_image_size=64, **kw)


@pytest.fixture(scope="module")
def omni(tmp_path_factory):
    """(directory, transformers model, tokenizer, our model) of a tiny Omni checkpoint with EVS off."""
    import_torchvision()
    from transformers.models.nemotron_h_omni import (
        NemotronH_Omni_Reasoning_V3 as Omni, NemotronH_Omni_Reasoning_V3ImageProcessor as ImageProcessor,
        NemotronH_Omni_Reasoning_V3Processor as Processor,
        NemotronH_Omni_Reasoning_V3VideoProcessor as VideoProcessor)

    tok = nemotron_tokenizer()
    hf = randomize(Omni(omni_config(tok, video_pruning_rate=0.0)), seed=1)
    d = tmp_path_factory.mktemp("nemotron_omni_tiny")
    save_original(hf, d)
    from transformers import ParakeetFeatureExtractor

    Processor(image_processor=ImageProcessor(min_num_patches=16, max_num_patches=64, max_model_len=4096),
              video_processor=VideoProcessor(), tokenizer=hf_tokenizer(tok),
              feature_extractor=ParakeetFeatureExtractor()).save_pretrained(d)
    return d, hf, tok, mm.load(d, device="cpu", dtype="float32")


def pictures():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (70, 100, 3), dtype=np.uint8), rng.integers(0, 256, (120, 64, 3), dtype=np.uint8)]


def clip():
    """Four 2 fps frames whose halves change at different rates, so EVS keeps uneven counts."""
    rng = np.random.default_rng(3)
    frames = np.repeat(rng.integers(0, 256, (1, 48, 80, 3), dtype=np.uint8), 4, axis=0)
    frames[1:, :, :40] = rng.integers(0, 256, (3, 48, 40, 3), dtype=np.uint8)
    frames[3, 24:] = rng.integers(0, 256, (24, 80, 3), dtype=np.uint8)
    return frames, 2.0


def image_batch(omni, text="<image> and <image>: what differs?"):
    family = mmprep.load(omni[0])
    return family.process(text, images=pictures(), tokenizer=omni[2], return_tensors="pt")


def hf_image_kwargs(batch):
    return dict(pixel_values=batch["pixel_values_flat"], image_grid_hw=batch["imgs_sizes"] // 16)


def test_image_prompt_logits_and_greedy_tokens_match_transformers(omni):
    d, hf, tok, ours = omni
    batch = image_batch(omni)
    assert batch["pixel_values_flat"].ndim == 2  # the dynamic-resolution path (packed patch rows)
    with torch.no_grad():
        ref = hf(input_ids=batch["input_ids"], **hf_image_kwargs(batch)).logits
    assert (ours(batch).logits - ref).abs().max() < TOL
    got = ours.generate(batch, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, batch["input_ids"], got, **hf_image_kwargs(batch))


def test_packed_images_equal_per_image_vision_runs(omni):
    ours, batch = omni[3], image_batch(omni)
    sizes = batch["imgs_sizes"].tolist()
    grids = [(h // 16, w // 16) for h, w in sizes]
    rows = batch["pixel_values_flat"]
    with torch.no_grad():
        packed = ours.vision_features(rows, grids)
        parts, start = [], 0
        for g in grids:
            parts.append(ours.vision_features(rows[start:start + g[0] * g[1]], [g]))
            start += g[0] * g[1]
    assert (packed - torch.cat(parts)).abs().max() < 1e-5


def test_text_only_prompt_matches_transformers(omni):
    d, hf, tok, ours = omni
    ids = torch.tensor([tok.encode("Describe the video in detail.").ids])
    with torch.no_grad():
        ref = hf(input_ids=ids).logits
    assert (ours({"input_ids": ids}).logits - ref).abs().max() < TOL
    got = ours.generate({"input_ids": ids}, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, ids, got)


def test_uint8_pixels_are_normalised_like_the_processor(omni):
    d, hf, tok, ours = omni
    batch = image_batch(omni)
    raw = mmprep.load(d).pixels(pictures(), dtype="uint8", return_tensors="pt")
    assert raw.pixel_values.dtype == torch.uint8
    as_bytes = {**batch, "pixel_values_flat": raw.pixel_values}
    assert (ours(as_bytes).logits - ours(batch).logits).abs().max() < TOL


def test_image_and_video_in_one_prompt_match_transformers_pieces(omni):
    """transformers' forward cannot mix them (both use the <image> token): its pieces, assembled by hand."""
    d, hf, tok, ours = omni
    family = mmprep.load(d)
    batch = family.process("<video> then <image>?", images=[pictures()[1]], videos=[clip()], tokenizer=tok,
                           return_tensors="pt")
    kw = hf_image_kwargs(batch)
    with torch.no_grad():
        image = torch.cat(hf.get_image_features(kw["pixel_values"], kw["image_grid_hw"]).pooler_output)
        video = torch.cat(hf.get_video_features(**hf_video_kwargs(batch)).pooler_output)
        x = hf.get_input_embeddings()(batch["input_ids"])
        x = x.masked_scatter((batch["input_ids"] == tok.token_to_id("<image>"))[..., None], torch.cat([video, image]))
        ref = hf.language_model(inputs_embeds=x).logits
    assert (ours(batch).logits - ref).abs().max() < TOL
    plain = {k: batch[k] for k in batch}  # no spans: the order of images and videos is unknown
    with pytest.raises(InvalidInputError, match="need the batch's spans"):
        ours(plain)


def test_batched_padded_image_prompts_generate_like_single_prompts(omni):
    d, hf, tok, ours = omni
    family = mmprep.load(d)
    texts = ["<image> a cat?", "Describe <image> and <image> in detail please."]
    imgs = [[pictures()[1]], pictures()]
    both = family.process(texts, images=imgs, tokenizer=tok, return_tensors="pt", padding_side="left")
    got = ours.generate(both, max_new_tokens=5, stop_token_ids=[])
    for row, (text, im) in enumerate(zip(texts, imgs)):
        one = family.process(text, images=im, tokenizer=tok, return_tensors="pt")
        assert got[row].tolist() == ours.generate(one, max_new_tokens=5, stop_token_ids=[])[0].tolist()


def video_batch(omni, rate):
    family = mmprep.load(omni[0], video_pruning_rate=rate)
    return family.process("<video>What happens?", videos=[clip()], tokenizer=omni[2], return_tensors="pt")


def hf_video_kwargs(batch):
    """Frames one at a time through RADIO: tubelets of one 3-channel frame."""
    return dict(pixel_values_videos=batch["pixel_values_flat_video"][None])


def test_video_prompt_without_evs_matches_transformers(omni):
    d, hf, tok, ours = omni
    batch = video_batch(omni, 0.0)
    with torch.no_grad():
        ref = hf(input_ids=batch["input_ids"], **hf_video_kwargs(batch)).logits
    assert (ours(batch).logits - ref).abs().max() < TOL
    got = ours.generate(batch, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, batch["input_ids"], got, **hf_video_kwargs(batch))


@pytest.fixture
def evs_pair(omni):
    """Our model and transformers' with EVS on (q = 0.5), restored afterwards."""
    d, hf, tok, ours = omni
    hf.video_pruning_rate, ours.video_pruning_rate = 0.5, 0.5
    yield hf, ours
    hf.video_pruning_rate, ours.video_pruning_rate = 0.0, 0.0


def test_video_with_evs_matches_transformers_pruning_the_full_prompt(omni, evs_pair):
    """transformers, fed the unpruned prompt, drops the pruned tokens itself and ends with the
    seed's rebuilt sequence; mmprep gets the EVS prompt (all retained tokens in frame 1) and rebuilds."""
    hf, ours = evs_pair
    full, pruned = video_batch(omni, 0.0), video_batch(omni, 0.5)
    ctx = omni[2].token_to_id("<image>")
    assert int((pruned["input_ids"] == ctx).sum()) == 8 == int((full["input_ids"] == ctx).sum()) // 2
    with torch.no_grad():
        ref = hf(input_ids=full["input_ids"], **hf_video_kwargs(full)).logits
        prompt = ours.prepare(pruned)
    assert ref.shape[1] == pruned["input_ids"].shape[1]
    counts = [n for n in _frame_counts(prompt.tokens.ids.tolist(), omni[2])]
    assert sum(counts) == 8 and counts[0] == 4 and counts != [8, 0, 0, 0]  # frame 1 whole, the rest as kept
    assert (ours(pruned).logits - ref).abs().max() < TOL
    got = ours.generate(pruned, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, full["input_ids"], got, **hf_video_kwargs(full))


def _frame_counts(ids, tok):
    img, ctx = tok.token_to_id("<img>"), tok.token_to_id("<image>")
    counts, i = [], 0
    while i < len(ids):
        if ids[i] == img:
            n = 0
            while ids[i + 1 + n] == ctx:
                n += 1
            counts.append(n)
            i += n + 1
        i += 1
    return counts


def test_retention_count_that_disagrees_with_the_placeholders_raises(omni, evs_pair):
    full = video_batch(omni, 0.0)  # placeholders for every token, but the model prunes to half
    with pytest.raises(InvalidInputError, match="16 <image> placeholder tokens.*give 8 features"):
        evs_pair[1](full)


def test_odd_grid_for_the_pixel_shuffle_raises(omni):
    ours = omni[3]
    rows = torch.zeros(3 * 4, 768)
    with pytest.raises(InvalidInputError, match="image 0: a 3x4 patch grid cannot be pixel-shuffled by 2"):
        ours({"input_ids": torch.tensor([[5]]), "pixel_values_flat": rows, "imgs_sizes": torch.tensor([[48, 64]])})


def test_context_overflow_raises_with_the_numbers(omni):
    from mmprep.errors import BudgetError

    with pytest.raises(BudgetError, match="4090 prompt tokens \\+ 10 new tokens exceed the model's context of 4096"):
        omni[3].generate({"input_ids": torch.full((1, 4090), 20)}, max_new_tokens=10)


def test_audio_input_is_refused_without_a_sound_config(omni):
    """This checkpoint has no audio_config (audio end to end: tests/test_models_nemotron_audio.py)."""
    from mmprep.errors import UnsupportedModalityError

    assert omni[3].sound is None
    with pytest.raises(UnsupportedModalityError, match="no audio encoder"):
        omni[3]({"input_ids": torch.tensor([[5]]), "input_audio_features": torch.zeros(1, 10, 128)})


def test_mtp_checkpoint_norms_the_vision_features_and_skips_the_mtp_layers(tmp_path):
    """With num_nextn_predict_layers > 0, transformers (and Megatron) put a LayerNorm on the RADIO
    features (``vision_projector.vision_final_layernorm``); MTP weights are skipped."""
    import_torchvision()
    from safetensors.torch import load_file, save_file
    from transformers.models.nemotron_h_omni import NemotronH_Omni_Reasoning_V3 as Omni

    tok = nemotron_tokenizer()
    cfg = omni_config(tok, video_pruning_rate=0.0)
    cfg.text_config.num_nextn_predict_layers = 1
    hf = randomize(Omni(cfg), seed=2)
    assert hf.vision_final_layernorm is not None
    save_original(hf, tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "vision_projector.vision_final_layernorm.bias" in state
    state["language_model.mtp.layers.0.norm.weight"] = torch.ones(64)
    save_file(state, tmp_path / "model.safetensors")
    ours = mm.load(tmp_path, device="cpu", dtype="float32")
    rows = torch.randn(4 * 6, 768, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[20] + [tok.token_to_id("<image>")] * 6 + [21]])
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=rows, image_grid_hw=torch.tensor([[4, 6]])).logits
    got = ours({"input_ids": ids, "pixel_values": rows, "image_grid_hw": torch.tensor([[4, 6]])}).logits
    assert (got - ref).abs().max() < TOL


# -- the 12B-v2-VL tile path, released config layout ------------------------------------------------------


def released_config(omni_dir, tok) -> dict:
    """The transformers config rewritten in the released key names (llm_config with
    hybrid_override_pattern and mamba_* names, img_context_token_id, vision args, no audio)."""
    cfg = json.loads((omni_dir / "config.json").read_text())
    t = dict(cfg.pop("text_config"))
    t["hybrid_override_pattern"] = "ME*-M"
    del t["layers_block_type"]
    t["mamba_n_groups"], t["mamba_d_conv"], t["mamba_chunk_size"] = t.pop("n_groups"), t.pop("conv_kernel"), t.pop("chunk_size")
    t["time_step_limit"] = [0.0, float("inf")]
    return {"model_type": "NemotronH_Nano_VL_V2", "architectures": ["NemotronH_Nano_VL_V2"], "llm_config": t,
            "vision_config": cfg["vision_config"], "img_context_token_id": cfg["image_token_id"],
            "force_image_size": 64, "patch_size": 16, "downsample_ratio": 0.5, "ps_version": "v2",
            "use_thumbnail": True, "vit_hidden_size": 32, "max_sequence_length": 4096, "projector_hidden_size": 48, "video_pruning_rate": 0.0,
            "norm_mean": list(mm_clip_mean()), "norm_std": [0.26862954, 0.26130258, 0.27577711]}


def mm_clip_mean():
    return (0.48145466, 0.4578275, 0.40821073)


@pytest.fixture(scope="module")
def tiles_ckpt(omni, tmp_path_factory):
    import shutil

    d = tmp_path_factory.mktemp("nemotron_12b_v2_vl_tiny")
    shutil.copy(omni[0] / "model.safetensors", d / "model.safetensors")
    (d / "config.json").write_text(json.dumps(released_config(omni[0], omni[2])))
    (d / "preprocessor_config.json").write_text(json.dumps({"max_num_tiles": 4, "norm_mean": list(mm_clip_mean()),
                                                            "norm_std": [0.26862954, 0.26130258, 0.27577711]}))
    return d, mm.load(d, device="cpu", dtype="float32")


def test_tile_path_of_12b_v2_vl_matches_transformers_radio_and_projector(omni, tiles_ckpt):
    """Tiles (thumbnail included) through transformers' RADIO + pixel shuffle + projector + decoder."""
    d, ours = tiles_ckpt
    hf, tok = omni[1], omni[2]
    family = mmprep.load(d)
    assert not family.spec.dynamic
    wide = np.random.default_rng(4).integers(0, 256, (60, 150, 3), dtype=np.uint8)
    batch = family.process("<image> describe", images=[wide], tokenizer=tok, return_tensors="pt")
    tiles = batch["pixel_values_flat"]
    assert tiles.shape[1:] == (3, 64, 64) and tiles.shape[0] > 1
    with torch.no_grad():
        feats = hf.vision_model(tiles).features
        embeds = hf.project_vision_features(feats, 4, 4).reshape(-1, 64)
        x = hf.get_input_embeddings()(batch["input_ids"])
        mask = batch["input_ids"] == tok.token_to_id("<image>")
        x = x.masked_scatter(mask[..., None], embeds)
        ref = hf.language_model(inputs_embeds=x).logits
    assert (ours(batch).logits - ref).abs().max() < TOL


def test_released_and_transformers_configs_read_the_same(omni, tiles_ckpt):
    a, b = omni[3].cfg, tiles_ckpt[1].cfg
    assert a.text == b.text and a.vision == b.vision and a.image_token_id == b.image_token_id


def test_released_vision_args_name_the_vit():
    from mmprep.models.radio import RadioConfig

    cfg = RadioConfig.from_hf({"args": {"model": "vit_huge_patch16_224", "teachers": [{}, {}, {}],
                                        "cls_token_per_teacher": True, "register_multiple": 8, "cpe_max_size": 2048},
                               "patch_size": 16, "separate_video_embedder": True})
    assert (cfg.hidden_size, cfg.depth, cfg.num_heads, cfg.mlp_hidden) == (1280, 32, 16, 5120)
    assert cfg.num_prefix_tokens == 8 and cfg.max_img_size == 2048 and cfg.video_temporal_patch_size == 2
    with pytest.raises(UnknownModelError, match="vit_giant"):
        RadioConfig.from_hf({"args": {"model": "vit_giant"}})


def test_weight_errors_list_missing_and_unexpected_keys(omni, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(omni[0] / "model.safetensors")
    state.pop("mlp1.1.weight")
    state["language_model.backbone.layers.9.mixer.D"] = torch.zeros(4)
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((omni[0] / "config.json").read_text())
    with pytest.raises(WeightsError, match="1 missing keys: mlp1.1.weight.*1 unexpected keys: language_model"):
        mm.load(tmp_path, device="cpu")


# -- end to end: mmprep generate ------------------------------------------------------------------------


def test_generate_cli_runs_an_image_and_a_video_and_streams_the_models_tokens(omni, tmp_path):
    import io

    from PIL import Image

    from mmprep.cli import main
    from mmprep.models.cli import build_prompt

    pytest.importorskip("av")
    from tests.test_video import write_clip

    d, hf, tok, ours = omni
    (d / "tokenizer.json").write_text(tok.to_str())
    image = tmp_path / "a.png"
    Image.fromarray(pictures()[0]).save(image)
    video = write_clip(tmp_path / "v.mp4", frames=6, fps=30, size=(48, 80), gop=6, bframes=0)
    out = io.StringIO()
    code = main(["generate", "--model", str(d), "--image", str(image), "--video", video, "--prompt", "What is shown?",
                 "--max-new-tokens", "6", "--device", "cpu"], out=out)
    assert code == 0
    family = mmprep.load(d)
    text = build_prompt(family, "What is shown?", 1, 1, directory=d)
    assert text == "<image><video>What is shown?"  # no chat template in this checkpoint
    batch = family.process(text, images=[str(image)], videos=[video], tokenizer=tok, return_tensors="pt")
    ids = ours.generate(batch, max_new_tokens=6)
    assert out.getvalue() == tok.decode(ids[0].tolist(), skip_special_tokens=True) + "\n"


def test_generate_cli_uses_the_checkpoints_chat_template(omni, tmp_path):
    from mmprep.models.cli import build_prompt

    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")}))
    text = build_prompt(mmprep.load(omni[0]), "Hi", 2, 0, directory=tmp_path)
    assert text == "<|im_start|>user\n<image><image>Hi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda_keeps_the_flash_attention_error_rule(omni):
    """bf16 logits' error vs fp32 is at most 2x transformers-bf16's (+ a small floor)."""
    d, hf, tok, _ = omni
    batch = image_batch(omni)
    ref = mm.load(d, device="cpu", dtype="float32")(batch).logits
    ours = mm.load(d, device="cuda", dtype="bf16")(batch.to("cuda")).logits.float().cpu()
    peer = hf.to("cuda", torch.bfloat16)
    with torch.no_grad():
        kw = {k: v.to("cuda") for k, v in hf_image_kwargs(batch).items()}
        theirs = peer(input_ids=batch["input_ids"].cuda(), **kw).logits.float().cpu()
    hf.to("cpu", torch.float32)
    assert (ours - ref).abs().max() <= 2 * (theirs - ref).abs().max() + 1e-2


def test_dt_is_clamped_at_time_step_min_as_transformers_does(text_ckpt):
    """``softplus(dt + dt_bias)`` below ``time_step_min`` (0.001) is raised to it, as transformers 5
    does; ``dt_floor_rule="time_step_limit"`` keeps the released code's / vLLM's floor (0). On
    these weights some heads fall below 0.001 and the logits still match transformers."""
    import dataclasses

    _, hf, ours = text_ckpt
    assert ours.cfg.dt_limit == (0.001, float("inf"))
    assert dataclasses.replace(ours.cfg, dt_floor_rule="time_step_limit").dt_limit == (0.0, float("inf"))
    mixer = next(m for m in ours.modules() if hasattr(m, "_step_sizes"))
    raw = torch.full((3, mixer.heads), -20.0)
    assert torch.equal(mixer._step_sizes(raw), torch.full_like(raw, 0.001))
    ids = torch.randint(3, 300, (1, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours({"input_ids": ids}).logits - hf(input_ids=ids).logits).abs().max() < TOL
