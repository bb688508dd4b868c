"""GLM-4.1V model parity with transformers (CPU, fp32, tiny random checkpoint).

One tiny random ``Glm4vForConditionalGeneration`` is saved with safetensors, a processor and a
small tokenizer; mmprep loads it with ``mmprep.models.load`` and both run the same prompts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import BudgetError, InvalidInputError, MmprepError, WeightsError  # noqa: E402
from tests._torchvision import import_torchvision  # noqa: E402
from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer  # noqa: E402

SPECIAL = {
    "image_token_id": "<|image|>", "video_token_id": "<|video|>",
    "image_start_token_id": "<|begin_of_image|>", "image_end_token_id": "<|end_of_image|>",
    "video_start_token_id": "<|begin_of_video|>", "video_end_token_id": "<|end_of_video|>",
}
IMG = "<|begin_of_image|><|image|><|end_of_image|>"
VID = "<|begin_of_video|><|video|><|end_of_video|>"


def tiny_config(tok, **text_overrides):
    from transformers import Glm4vConfig

    text = dict(vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5,
                                     mrope_section=[2, 3, 3]))
    text.update(text_overrides)
    vision = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=48, out_hidden_size=128,
                  image_size=56, patch_size=14)
    ids = {k: tok.token_to_id(v) for k, v in SPECIAL.items()}
    return Glm4vConfig(text_config=text, vision_config=vision, **ids)


def random_model(config, seed=0):
    """A random model with weights large enough that greedy decoding does not collapse to one token."""
    from transformers import Glm4vForConditionalGeneration

    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.ndim > 1 else 0.05)
    return model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """(directory, transformers model, transformers processor, tokenizer) of the tiny checkpoint."""
    import_torchvision()
    from transformers import Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor

    tok = glm_tokenizer()
    hf = random_model(tiny_config(tok))
    d = tmp_path_factory.mktemp("glm4v_tiny")
    hf.save_pretrained(d)
    proc = Glm4vProcessor(image_processor=Glm4vImageProcessor(), video_processor=Glm4vVideoProcessor(),
                          tokenizer=hf_tokenizer(tok))
    proc.save_pretrained(d)
    return d, hf, proc, tok


@pytest.fixture(scope="module")
def ours(ckpt):
    return mm.load(ckpt[0], device="cpu", dtype="float32")


def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (60, 90, 3), dtype=np.uint8), rng.integers(0, 256, (120, 60, 3), dtype=np.uint8)]


def image_batch(ckpt, text=None, imgs=None):
    family = mmprep.load(ckpt[0])
    text = text or f"{IMG}Describe {IMG} the image."
    return family.process(text, images=imgs or images(), tokenizer=ckpt[3], return_tensors="pt")


def video_inputs(ckpt):
    """A transformers-processed video prompt (frames carry the image token inside the video span)."""
    from transformers.video_utils import VideoMetadata

    hf, proc = ckpt[1], ckpt[2]
    vid = np.random.default_rng(1).integers(0, 256, (4, 56, 84, 3), dtype=np.uint8)
    meta = VideoMetadata(total_num_frames=4, fps=2.0, frames_indices=[0, 1, 2, 3])
    h = proc(text=[f"{VID}What happens?"], videos=[vid], return_tensors="pt",
             videos_kwargs=dict(video_metadata=[meta], do_sample_frames=False))
    pos, delta = hf.model.get_rope_index(h["input_ids"], h["mm_token_type_ids"], None, h["video_grid_thw"])
    batch = {"input_ids": h["input_ids"], "pixel_values_videos": h["pixel_values_videos"],
             "video_grid_thw": h["video_grid_thw"], "position_ids": pos, "mrope_position_delta": delta}
    return batch, h


def hf_kwargs(batch):
    keys = ("input_ids", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
            "mm_token_type_ids", "attention_mask")
    return {k: batch[k] for k in keys if batch.get(k) is not None}


# -- parity with transformers -------------------------------------------------------------------------


def test_input_ids_and_positions_match_transformers_processor(ckpt):
    batch = image_batch(ckpt)
    text = f"{IMG}Describe {IMG} the image."
    h = ckpt[2](text=[text], images=images(), return_tensors="pt")
    assert batch["input_ids"].tolist() == h["input_ids"].tolist()
    pos, delta = ckpt[1].model.get_rope_index(h["input_ids"], h["mm_token_type_ids"], h["image_grid_thw"])
    assert torch.equal(torch.as_tensor(batch["position_ids"]).reshape(3, 1, -1), pos)
    assert int(torch.as_tensor(batch["mrope_position_delta"]).reshape(-1)[0]) == int(delta[0, 0])


def test_image_prompt_logits_match_transformers(ckpt, ours):
    batch = image_batch(ckpt)
    with torch.no_grad():
        ref = ckpt[1](**hf_kwargs(batch)).logits
        got = ours(batch).logits
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-4


def test_video_prompt_logits_match_transformers(ckpt, ours):
    batch, h = video_inputs(ckpt)
    with torch.no_grad():
        ref = ckpt[1](**hf_kwargs(h)).logits
        got = ours(batch).logits
    assert (got - ref).abs().max().item() <= 1e-4


def test_vision_features_match_transformers(ckpt, ours):
    batch = image_batch(ckpt)
    vbatch, _ = video_inputs(ckpt)
    hf = ckpt[1].model
    with torch.no_grad():
        ref_img = torch.cat(hf.get_image_features(batch["pixel_values"], batch["image_grid_thw"]).pooler_output)
        ref_vid = torch.cat(hf.get_video_features(vbatch["pixel_values_videos"], vbatch["video_grid_thw"]).pooler_output)
        got_img = ours.media_features(batch["pixel_values"], batch["image_grid_thw"])
        got_vid = ours.media_features(vbatch["pixel_values_videos"], vbatch["video_grid_thw"])
    assert (got_img - ref_img).abs().max().item() <= 1e-5
    assert (got_vid - ref_vid).abs().max().item() <= 1e-5


def test_greedy_generation_of_20_tokens_matches_transformers(ckpt, ours):
    batch = image_batch(ckpt)
    n = batch["input_ids"].shape[1]
    with torch.no_grad():
        ref = ckpt[1].generate(**hf_kwargs(batch), max_new_tokens=20, do_sample=False)[:, n:]
    got = ours.generate(batch, max_new_tokens=20, stop_token_ids=())
    assert got.tolist() == ref.tolist()
    assert len(set(got[0].tolist())) > 1  # the random model does not collapse to one token


def test_video_greedy_generation_matches_transformers(ckpt, ours):
    batch, h = video_inputs(ckpt)
    n = h["input_ids"].shape[1]
    with torch.no_grad():
        ref = ckpt[1].generate(**hf_kwargs(h), max_new_tokens=12, do_sample=False)[:, n:]
    assert ours.generate(batch, max_new_tokens=12, stop_token_ids=()).tolist() == ref.tolist()


# -- packing, batching, sampling -------------------------------------------------------------------------


def test_packed_multi_image_vision_equals_per_image_runs(ckpt, ours):
    batch = image_batch(ckpt)
    pix, grid = batch["pixel_values"], batch["image_grid_thw"]
    with torch.no_grad():
        packed = ours.media_features(pix, grid)
        rows = grid.prod(-1).tolist()
        singles = [ours.media_features(p, g[None]) for p, g in zip(pix.split(rows), grid)]
    assert torch.allclose(packed, torch.cat(singles), atol=1e-6, rtol=0)


def test_batched_generation_equals_single_prompts(ckpt, ours):
    family = mmprep.load(ckpt[0])
    imgs = images()
    texts = [f"{IMG}Describe the image.", f"What is in this picture? {IMG}"]
    singles = [ours.generate(family.process(t, images=[im], tokenizer=ckpt[3], return_tensors="pt"),
                             max_new_tokens=8, stop_token_ids=()) for t, im in zip(texts, imgs)]
    for side in ("right", "left"):
        both = family.process(texts, images=[[imgs[0]], [imgs[1]]], tokenizer=ckpt[3], return_tensors="pt",
                              padding_side=side)
        got = ours.generate(both, max_new_tokens=8, stop_token_ids=())
        assert got.tolist() == [s[0].tolist() for s in singles]


def test_padded_batch_logits_equal_single_prompt_logits(ckpt, ours):
    family = mmprep.load(ckpt[0])
    short = family.process("Describe the image.", tokenizer=ckpt[3], return_tensors="pt")
    both = family.process(["Describe the image.", "What is in this picture? A cat on a mat."],
                          tokenizer=ckpt[3], return_tensors="pt", padding_side="left")
    with torch.no_grad():
        one, two = ours(short).logits, ours(both).logits
    n = short["input_ids"].shape[1]
    assert torch.allclose(two[0, -n:], one[0], atol=1e-5, rtol=0)


def test_stop_token_ends_a_row_and_pads_it(ckpt, ours):
    batch = image_batch(ckpt)
    free = ours.generate(batch, max_new_tokens=6, stop_token_ids=())
    stop = int(free[0, 2])
    got = ours.generate(batch, max_new_tokens=6, stop_token_ids=[stop], pad_token_id=-1)
    first = free[0].tolist().index(stop)
    assert got[0, : first + 1].tolist() == free[0, : first + 1].tolist()
    assert got.shape[1] == first + 1


def test_sampling_is_seeded_and_top_k_1_is_greedy(ckpt, ours):
    batch = image_batch(ckpt)
    greedy = ours.generate(batch, max_new_tokens=6, stop_token_ids=())
    g = torch.Generator().manual_seed(0)
    top1 = ours.generate(batch, max_new_tokens=6, stop_token_ids=(), temperature=1.0, top_k=1, generator=g)
    assert top1.tolist() == greedy.tolist()
    runs = [ours.generate(batch, max_new_tokens=6, stop_token_ids=(), temperature=1.3, top_p=0.9,
                          generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0].tolist() == runs[1].tolist()


def test_uint8_pixels_are_normalized_like_the_processor(ckpt, ours):
    from mmprep.models.glm4v import CLIP_MEAN, CLIP_STD, normalize_pixels

    raw = torch.randint(0, 256, (8, 1176), dtype=torch.uint8)
    ref = (raw.float().view(8, 3, -1) / 255 - torch.tensor(CLIP_MEAN)[:, None]) / torch.tensor(CLIP_STD)[:, None]
    got = normalize_pixels(raw, None, 3, "cpu", torch.float32)
    assert torch.allclose(got, ref.reshape(8, -1), atol=1e-6)


# -- bad input -------------------------------------------------------------------------------------------


def test_fewer_placeholder_slots_than_features_raises(ckpt, ours):
    batch = dict(image_batch(ckpt))
    ids = batch["input_ids"].clone()
    ids[0, int((ids[0] == ckpt[3].token_to_id("<|image|>")).nonzero()[0])] = 5
    batch["input_ids"] = ids
    with pytest.raises(InvalidInputError, match=r"item 0: 19 image placeholder tokens, but images 0..1 give 20 features"):
        ours(batch)


def test_prompt_longer_than_context_raises(ckpt, ours):
    ids = torch.full((1, 257), 20)
    with pytest.raises(BudgetError, match="257 tokens"):
        ours({"input_ids": ids})
    batch = image_batch(ckpt)
    with pytest.raises(BudgetError, match="context of 256"):
        ours.generate(batch, max_new_tokens=250)


def test_media_without_positions_and_out_of_vocab_ids_raise(ckpt, ours):
    batch = dict(image_batch(ckpt))
    batch.pop("position_ids")
    with pytest.raises(InvalidInputError, match="position_ids"):
        ours(batch)
    with pytest.raises(MmprepError, match="outside the vocabulary"):
        ours({"input_ids": torch.tensor([[1, 5000]])})


def _copy_ckpt(src, dst, edit):
    from safetensors.torch import load_file, save_file

    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(src / "model.safetensors")
    edit(tensors)
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_missing_extra_and_misshaped_weights_raise_listing_them(ckpt, tmp_path):
    src = ckpt[0]
    d = _copy_ckpt(src, tmp_path / "missing", lambda t: t.pop("model.visual.blocks.1.norm2.weight"))
    with pytest.raises(WeightsError, match=r"1 missing keys: model\.visual\.blocks\.1\.norm2\.weight"):
        mm.load(d, device="cpu")
    d = _copy_ckpt(src, tmp_path / "extra", lambda t: t.update({"model.language_model.layers.2.mlp.x": torch.ones(2)}))
    with pytest.raises(WeightsError, match=r"unexpected keys: model\.language_model\.layers\.2\.mlp\.x"):
        mm.load(d, device="cpu")
    d = _copy_ckpt(src, tmp_path / "shape", lambda t: t.update({"lm_head.weight": torch.ones(3, 128)}))
    with pytest.raises(WeightsError, match=r"mis-shaped keys: lm_head\.weight \[3, 128\]"):
        mm.load(d, device="cpu")


def test_sharded_checkpoint_with_index_loads_identically(ckpt, ours, tmp_path):
    ckpt[1].save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]) > 10
    sharded = mm.load(tmp_path, device="cpu")
    for (n1, p1), (n2, p2) in zip(ours.state_dict().items(), sharded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_bf16_load_casts_weights(ckpt):
    model = mm.load(ckpt[0], device="cpu", dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.is_meta for p in model.parameters())


def test_import_mmprep_does_not_import_torch():
    code = "import sys, mmprep; mmprep.load('glm-4.1v'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_generate_cli_streams_the_same_tokens(ckpt, ours, tmp_path):
    import argparse
    import io

    from PIL import Image

    from mmprep.models.cli import add_generate_parser, build_prompt, run_generate

    (ckpt[0] / "tokenizer.json").write_text(ckpt[3].to_str()) if not (ckpt[0] / "tokenizer.json").exists() else None
    path = tmp_path / "a.png"
    Image.fromarray(images()[0]).save(path)
    parser = argparse.ArgumentParser()
    add_generate_parser(parser.add_subparsers())
    args = parser.parse_args(["generate", "--model", str(ckpt[0]), "--image", str(path), "--prompt",
                              "Describe the image.", "--max-new-tokens", "7", "--device", "cpu"])
    out = io.StringIO()
    assert args.func(args, out) == 0
    family = mmprep.load(ckpt[0])
    text = build_prompt(family, "Describe the image.", 1, 0)
    assert text.count("<|image|>") == 1 and text.startswith("[gMASK]<sop><|user|>")
    batch = family.process(text, images=[str(path)], tokenizer=ckpt[3], return_tensors="pt")
    ids = ours.generate(batch, max_new_tokens=7)
    assert out.getvalue() == ckpt[3].decode(ids[0].tolist(), skip_special_tokens=True) + "\n"
    assert len(out.getvalue()) > 3
    bad = parser.parse_args(["generate", "--model", str(tmp_path), "--prompt", "x"])
    assert run_generate(bad, io.StringIO()) == 2


# -- prompt layouts, checkpoint variants ---------------------------------------------------------------


def _hf_embeds_reference(hf, ids, img, vid):
    """transformers' pieces assembled by hand (its own forward cannot mix images and a video)."""
    cfg = hf.config
    emb = hf.model.get_input_embeddings()(ids)
    in_video = torch.cumsum(ids == cfg.video_start_token_id, 1) > torch.cumsum(ids == cfg.video_end_token_id, 1)
    is_img = ids == cfg.image_token_id
    feats_i = torch.cat(hf.model.get_image_features(*img).pooler_output)
    feats_v = torch.cat(hf.model.get_video_features(*vid).pooler_output)
    emb = emb.masked_scatter((is_img & ~in_video)[..., None], feats_i)
    return emb.masked_scatter((is_img & in_video)[..., None], feats_v), (is_img & ~in_video).long() + 2 * (is_img & in_video).long()


def test_image_and_video_in_one_prompt_match_transformers_pieces(ckpt, ours):
    hf, tok = ckpt[1], ckpt[3]
    ib = image_batch(ckpt, text=f"{IMG}Describe", imgs=images()[:1])
    vb, _ = video_inputs(ckpt)
    ids = torch.cat([ib["input_ids"], vb["input_ids"]], 1)
    img = (ib["pixel_values"], ib["image_grid_thw"])
    vid = (vb["pixel_values_videos"], vb["video_grid_thw"])
    with torch.no_grad():
        embeds, types = _hf_embeds_reference(hf, ids, img, vid)
        pos, delta = hf.model.get_rope_index(ids, types, img[1], vid[1])
        ref = hf(inputs_embeds=embeds, position_ids=pos).logits
        batch = {"input_ids": ids, "pixel_values": img[0], "image_grid_thw": img[1], "pixel_values_videos": vid[0],
                 "video_grid_thw": vid[1], "position_ids": pos, "mrope_position_delta": delta}
        got = ours(batch).logits
    assert (got - ref).abs().max().item() <= 1e-4


def test_video_slots_written_with_the_video_token_give_the_same_logits(ckpt, ours):
    batch, _ = video_inputs(ckpt)
    ids = batch["input_ids"].clone()
    image, video = ckpt[3].token_to_id("<|image|>"), ckpt[3].token_to_id("<|video|>")
    vllm_style = dict(batch, input_ids=torch.where(ids == image, video, ids))  # mmprep / vLLM prompts (T29)
    with torch.no_grad():
        assert torch.equal(ours(batch).logits, ours(vllm_style).logits)


def _save_variant(tmp_path, tok, cls_name="Glm4vForConditionalGeneration", **kw):
    import transformers

    cfg = tiny_config(tok, **kw.pop("text", {}))
    for k, v in kw.items():
        setattr(cfg, k, v)
    if cls_name != "Glm4vForConditionalGeneration":
        cfg = transformers.Glm46VConfig(text_config=cfg.text_config.to_dict(), vision_config=cfg.vision_config.to_dict(),
                                        **{k: getattr(cfg, k) for k in SPECIAL})
    torch.manual_seed(1)
    hf = getattr(transformers, cls_name)(cfg).eval()
    hf.save_pretrained(tmp_path)
    return hf


@pytest.mark.parametrize("variant", ["glm-4.6v-flash", "tied"])
def test_checkpoint_variants_match_transformers(ckpt, tmp_path, variant):
    tok = ckpt[3]
    if variant == "tied":
        hf = _save_variant(tmp_path, tok, tie_word_embeddings=True)
        from safetensors import safe_open

        with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
            assert "lm_head.weight" not in f.keys()
    else:  # GLM-4.6V-Flash: the Glm46V class, rope_theta 500000, a longer context
        rope = dict(rope_type="default", rope_theta=500000.0, partial_rotary_factor=0.5, mrope_section=[2, 3, 3])
        hf = _save_variant(tmp_path, tok, "Glm46VForConditionalGeneration",
                           text=dict(rope_parameters=rope, max_position_embeddings=1024))
    model = mm.load(tmp_path, device="cpu")
    batch = image_batch(ckpt)
    with torch.no_grad():
        ref = hf(**hf_kwargs(batch)).logits
        got = model(batch).logits
    assert (got - ref).abs().max().item() <= 1e-4


def test_unknown_checkpoints_raise(tmp_path):
    from mmprep.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="no config.json"):
        mm.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnknownModelError, match="no mmprep model"):
        mm.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm4v", "text_config": {"model_type": "qwen3"}}))
    with pytest.raises(UnknownModelError, match="text_config.model_type"):
        mm.load(tmp_path)


def test_backend_override_changes_nothing_numerically(ckpt, ours):
    from mmprep.models import attention_backend, set_attention_backend

    batch = image_batch(ckpt)
    with torch.no_grad():
        base = ours(batch).logits
        try:
            for name in ("eager", "sdpa_mask"):
                set_attention_backend(name)
                assert attention_backend() == name
                assert (ours(batch).logits - base).abs().max().item() <= 1e-5
        finally:
            set_attention_backend(None)


def test_mmprep_generate_command_runs_end_to_end(ckpt, tmp_path):
    import io

    from PIL import Image

    from mmprep.cli import main

    if not (ckpt[0] / "tokenizer.json").exists():
        (ckpt[0] / "tokenizer.json").write_text(ckpt[3].to_str())
    path = tmp_path / "b.png"
    Image.fromarray(images()[1]).save(path)
    out = io.StringIO()
    code = main(["generate", "--model", str(ckpt[0]), "--image", str(path), "--prompt", "What is it?",
                 "--max-new-tokens", "5", "--device", "cpu"], out=out)
    assert code == 0 and out.getvalue().endswith("\n")
