"""Nemotron 3 Nano Omni with audio, end to end, against transformers 5's ``NemotronH_Omni_Reasoning_V3``
(tiny random checkpoint with a Parakeet ``audio_config``, CPU, fp32).

Both models get the same ``input_ids`` (mmprep's ``process(..., audios=...)``: one
``<so_start> <so_embedding>×N <so_end>`` run per clip, N = ``count_audio_tokens``) and the same
log-mel features (``input_audio_features``; transformers takes them as ``input_features`` with
``input_features_mask`` = our ``feature_attention_mask``).

transformers keeps ``subsampled(valid frames + 1)`` rows per clip, mmprep (and vLLM) keep
``subsampled(valid frames)``; they differ when the valid frames are a multiple of 8. The full
forward comparisons use clips whose counts agree (0.55 s and 1.3 s: 55 and 130 frames), so
transformers' own forward takes our ids as they are. The 2.0 s clip (200 frames: 25 tokens for
us, 26 rows for transformers) is compared against transformers' pieces: its audio features cut to
each clip's first rows (ours are the first rows of its), merged into the embeddings by hand, then
its language model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import InvalidInputError, MmprepError, UnsupportedModalityError, WeightsError  # noqa: E402
from tests._torchvision import import_torchvision  # noqa: E402
from tests.test_models_nemotron import hf_greedy, omni_config, pictures, randomize, save_original  # noqa: E402
from tests.tokenizers_fixture import hf_tokenizer, nemotron_tokenizer  # noqa: E402

TOL = 1e-4
SOUND = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=48, conv_kernel_size=9,
             subsampling_conv_channels=8, subsampling_conv_kernel_size=3, subsampling_conv_stride=2,
             subsampling_factor=8, num_mel_bins=128, projection_hidden_size=40, projection_bias=False,
             sampling_rate=16000)


def wave(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def omni(tmp_path_factory):
    """(directory, transformers model, tokenizer, our model) of a tiny Omni checkpoint with audio, EVS off."""
    import_torchvision()
    from transformers import ParakeetFeatureExtractor
    from transformers.models.nemotron_h_omni import (
        NemotronH_Omni_Reasoning_V3 as Omni, NemotronH_Omni_Reasoning_V3ImageProcessor as ImageProcessor,
        NemotronH_Omni_Reasoning_V3Processor as Processor,
        NemotronH_Omni_Reasoning_V3VideoProcessor as VideoProcessor)

    tok = nemotron_tokenizer()
    cfg = omni_config(tok, video_pruning_rate=0.0, audio_config=dict(SOUND),
                      audio_token_id=tok.token_to_id("<so_embedding>"))
    hf = randomize(Omni(cfg), seed=3)
    with torch.no_grad():  # BatchNorm running statistics away from the identity
        g = torch.Generator().manual_seed(4)
        for name, b in hf.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    d = tmp_path_factory.mktemp("nemotron_omni_audio_tiny")
    save_original(hf, d)
    Processor(image_processor=ImageProcessor(min_num_patches=16, max_num_patches=64, max_model_len=4096),
              video_processor=VideoProcessor(), tokenizer=hf_tokenizer(tok),
              feature_extractor=ParakeetFeatureExtractor()).save_pretrained(d)
    (d / "tokenizer.json").write_text(tok.to_str())
    return d, hf, tok, mm.load(d, device="cpu", dtype="float32")


def hf_audio_kwargs(batch):
    return dict(input_features=batch["input_audio_features"], input_features_mask=batch["feature_attention_mask"])


def hf_image_kwargs(batch):
    return dict(pixel_values=batch["pixel_values_flat"], image_grid_hw=batch["imgs_sizes"] // 16)


def test_omni_config_reads_the_sound_tower_and_loads_its_weights_by_their_names(omni):
    from safetensors.torch import load_file

    d, hf, tok, ours = omni
    assert ours.cfg.sound.attention_bias is False and ours.cfg.sound.scale_input is False  # injected by the Omni config
    assert ours.cfg.audio_token_id == tok.token_to_id("<so_embedding>")
    state = load_file(d / "model.safetensors")
    for key in ("sound_encoder.encoder.layers.1.self_attn.bias_u", "sound_projection.linear2.weight",
                "sound_encoder.encoder.layers.0.conv.norm.running_var"):
        target = ours.get_parameter if "running" not in key else ours.get_buffer
        name = key.replace("sound_encoder.encoder.", "sound.encoder.").replace("sound_projection.", "sound.projection.")
        assert torch.equal(target(name), state[key])


def test_missing_sound_weights_raise(omni, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(omni[0] / "model.safetensors")
    state.pop("sound_projection.linear1.weight")
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((omni[0] / "config.json").read_text())
    with pytest.raises(WeightsError, match="1 missing keys: sound_projection.linear1.weight"):
        mm.load(tmp_path, device="cpu")


def test_audio_only_prompt_encoder_logits_and_greedy_tokens_match_transformers(omni):
    d, hf, tok, ours = omni
    batch = mmprep.load(d).process("<so_embedding>\nWhat is said?", audios=[wave(1.3, 0)], tokenizer=tok,
                                   return_tensors="pt")
    assert int((batch["input_ids"] == ours.cfg.audio_token_id).sum()) == 17
    with torch.no_grad():
        rows, per_clip = ours.sound.encoder(batch["input_audio_features"], batch["audio_feature_lengths"])
        ref_rows = hf.audio_tower(input_features=batch["input_audio_features"],
                                  attention_mask=batch["feature_attention_mask"]).last_hidden_state
        ref = hf(input_ids=batch["input_ids"], **hf_audio_kwargs(batch)).logits
    assert per_clip == [17] and (rows - ref_rows[0, :17]).abs().max() < TOL
    assert (ours(batch).logits - ref).abs().max() < TOL
    got = ours.generate(batch, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, batch["input_ids"], got, **hf_audio_kwargs(batch))


def test_audio_and_image_prompt_logits_and_greedy_tokens_match_transformers(omni):
    d, hf, tok, ours = omni
    batch = mmprep.load(d).process("<image> and <so_embedding>: same thing?", images=[pictures()[0]],
                                   audios=[wave(0.55, 1)], tokenizer=tok, return_tensors="pt")
    kw = {**hf_image_kwargs(batch), **hf_audio_kwargs(batch)}
    with torch.no_grad():
        ref = hf(input_ids=batch["input_ids"], **kw).logits
    assert (ours(batch).logits - ref).abs().max() < TOL
    got = ours.generate(batch, max_new_tokens=8, stop_token_ids=[])[0]
    assert got.tolist() == hf_greedy(hf, batch["input_ids"], got, **kw)


def test_clip_where_transformers_keeps_one_more_row_matches_its_pieces(omni):
    """2.0 s: 200 valid frames; we (and vLLM, and the prompt) keep 25 rows, transformers 26. Its
    audio features cut to our 25 rows (the first of its 26), merged by hand, then its language model."""
    d, hf, tok, ours = omni
    batch = mmprep.load(d).process("Hear <so_embedding> then <so_embedding>.", audios=[wave(2.0, 2), wave(0.55, 3)],
                                   tokenizer=tok, return_tensors="pt")
    ctx = batch["input_ids"] == ours.cfg.audio_token_id
    assert int(ctx.sum()) == 25 + 7
    with torch.no_grad():
        feats = hf.get_audio_features(batch["input_audio_features"], batch["feature_attention_mask"]).pooler_output
        assert feats.shape[0] == 26 + 7  # transformers' own count: one row more for the 2.0 s clip
        mine = torch.cat([feats[:25], feats[26:]])
        x = hf.get_input_embeddings()(batch["input_ids"]).masked_scatter(ctx[..., None], mine)
        ref = hf.language_model(inputs_embeds=x).logits
    assert (ours(batch).logits - ref).abs().max() < TOL


def test_padded_audio_batch_equals_single_prompts(omni):
    d, hf, tok, ours = omni
    family = mmprep.load(d)
    texts = ["<so_embedding> hi", "Say <so_embedding> and <so_embedding> again?"]
    audios = [[wave(2.0, 4)], [wave(0.55, 5), wave(1.3, 6)]]
    both = family.process(texts, audios=audios, tokenizer=tok, return_tensors="pt", padding_side="left")
    logits = ours(both).logits
    gen = ours.generate(both, max_new_tokens=5, stop_token_ids=[])
    for row, (text, clips) in enumerate(zip(texts, audios)):
        one = family.process(text, audios=clips, tokenizer=tok, return_tensors="pt")
        valid = both["attention_mask"][row].bool()
        assert (logits[row, valid] - ours(one).logits[0]).abs().max() < TOL
        assert gen[row].tolist() == ours.generate(one, max_new_tokens=5, stop_token_ids=[])[0].tolist()


def test_placeholder_count_that_disagrees_with_the_encoder_raises_naming_the_clip(omni):
    d, hf, tok, ours = omni
    batch = mmprep.load(d).process("<so_embedding><so_embedding>", audios=[wave(0.55, 7), wave(1.3, 8)],
                                   tokenizer=tok, return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    drop = len(ids) - 1 - ids[::-1].index(ours.cfg.audio_token_id)  # one placeholder of clip 1 removed
    short = {"input_ids": torch.tensor([ids[:drop] + ids[drop + 1:]]), **{k: batch[k] for k in (
        "input_audio_features", "feature_attention_mask", "audio_feature_lengths")}}
    with pytest.raises(MmprepError, match="audio clip 1: the encoder gives 17 audio tokens, but the prompt has 16"):
        ours(short)
    merged = [t for t in ids if t not in (tok.token_to_id("<so_start>"), tok.token_to_id("<so_end>"))]
    with pytest.raises(InvalidInputError, match="item 0: 23 audio placeholder tokens, but audios 0..1 give 24"):
        ours({**short, "input_ids": torch.tensor([merged[:-1]])})  # one run for two clips: the row count is checked


def test_placeholder_runs_are_one_per_clip_and_never_cross_rows():
    from mmprep.models.nemotron_vl import placeholder_runs

    slots = torch.tensor([0, 1, 1, 0, 1, 1, 1, 1, 0, 1], dtype=torch.bool)  # rows: [0, 6) [6, 10)
    assert placeholder_runs(slots, torch.tensor([0, 6, 10])) == [2, 2, 2, 1]
    assert placeholder_runs(slots, torch.tensor([0, 10])) == [2, 4, 1]
    assert placeholder_runs(torch.zeros(3, dtype=torch.bool), torch.tensor([0, 3])) == []


def test_model_without_a_sound_config_refuses_audio(omni, tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = json.loads((omni[0] / "config.json").read_text())
    cfg["audio_config"] = None
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    state = {k: v for k, v in load_file(omni[0] / "model.safetensors").items() if not k.startswith("sound_")}
    save_file(state, tmp_path / "model.safetensors")
    ours = mm.load(tmp_path, device="cpu")
    assert ours.sound is None
    with pytest.raises(UnsupportedModalityError, match="no audio encoder"):
        ours({"input_ids": torch.tensor([[5]]), "input_audio_features": torch.zeros(1, 10, 128)})


def test_generate_cli_runs_an_audio_file(omni, tmp_path):
    import io

    import soundfile

    from mmprep.cli import main
    from mmprep.models.cli import build_prompt

    d, hf, tok, ours = omni
    path = tmp_path / "a.wav"
    soundfile.write(path, wave(1.3, 9), 16000, subtype="FLOAT")
    out = io.StringIO()
    code = main(["generate", "--model", str(d), "--audio", str(path), "--prompt", "What is said?",
                 "--max-new-tokens", "6", "--device", "cpu"], out=out)
    assert code == 0
    family = mmprep.load(d)
    text = build_prompt(family, "What is said?", 0, 0, directory=d, n_audios=1)
    assert text == "<so_embedding>What is said?"  # no chat template in this checkpoint
    batch = family.process(text, audios=[str(path)], tokenizer=tok, return_tensors="pt")
    assert int((batch["input_ids"] == ours.cfg.audio_token_id).sum()) == 17
    ids = ours.generate(batch, max_new_tokens=6)
    assert out.getvalue() == tok.decode(ids[0].tolist(), skip_special_tokens=True) + "\n"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_audio_and_image_prompt_on_cuda_keeps_the_flash_attention_error_rule(omni):
    """bf16 logits' error vs our fp32 is at most 2x transformers-bf16's (+ a small floor)."""
    import copy

    d, hf, tok, _ = omni
    batch = mmprep.load(d).process("<image> and <so_embedding>: same thing?", images=[pictures()[0]],
                                   audios=[wave(0.55, 1)], tokenizer=tok, return_tensors="pt")
    ref = mm.load(d, device="cpu", dtype="float32")(batch).logits
    ours = mm.load(d, device="cuda", dtype="bf16")(batch.to("cuda")).logits.float().cpu()
    peer = copy.deepcopy(hf).to("cuda", torch.bfloat16)
    kw = {k: v.to("cuda") for k, v in {**hf_image_kwargs(batch), **hf_audio_kwargs(batch)}.items()}
    with torch.no_grad():
        theirs = peer(input_ids=batch["input_ids"].cuda(), **kw).logits.float().cpu()
    assert (ours - ref).abs().max() <= 2 * (theirs - ref).abs().max() + 1e-2
