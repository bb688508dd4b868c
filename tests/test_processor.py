"""Processor calls: ``process`` (pixels) == ``prompt`` (metadata), parity with transformers'
Glm4vProcessor on a tiny checkpoint, the reference's text-level expansion, batching and errors."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import MmprepError
from mmprep.families.glm4v.positions import glm_mrope_positions_reference
from mmprep.families.isaac.positions import isaac_mrope_positions_reference
from mmprep.families.glm4v.prompt import glm_timestamp_text
from mmprep.types import AudioPlan, VideoPlan
from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer, isaac_tokenizer, nemotron_tokenizer

GLM_IMG = "<|begin_of_image|><|image|><|end_of_image|>"
GLM_VID = "<|begin_of_video|><|video|><|end_of_video|>"


def rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def token_runs(ids, token_id):
    """``(start, length)`` of each maximal run of ``token_id`` in ``ids``: where the media blocks sit."""
    runs: list[list[int]] = []
    for i, t in enumerate(np.asarray(ids).tolist()):
        if t != token_id:
            continue
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    return [tuple(r) for r in runs]


# Independent expectations: SPEC formulas written out by hand, and the golden vectors.


def glm_image_grid(h, w, min_pixels=112 * 112, max_pixels=28 * 28 * 15000):
    """SPEC §1.2 smart_resize for an image (num_frames 2, factor 28, HF image processor defaults),
    then the patch grid ``(1, h'/14, w'/14)``; tokens are ``h'/14 * w'/14 // 4``."""
    if h < 28 or w < 28:
        scale = max(28 / h, 28 / w)
        h, w = int(h * scale), int(w * scale)
    hb, wb = round(h / 28) * 28, round(w / 28) * 28
    if 2 * hb * wb > max_pixels:
        beta = math.sqrt(2 * h * w / max_pixels)
        hb, wb = max(28, math.floor(h / beta / 28) * 28), max(28, math.floor(w / beta / 28) * 28)
    elif 2 * hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (2 * h * w))
        hb, wb = math.ceil(h * beta / 28) * 28, math.ceil(w * beta / 28) * 28
    return (1, hb // 14, wb // 14)


def glm_image_tokens(h, w):
    _, gh, gw = glm_image_grid(h, w)
    return gh * gw // 4


def nemotron_audio_tokens(n):
    """SPEC §7: ``n // 160`` frames, then three stride-2 convs (k 3): ``L -> (L + 1) // 2``, at least 1."""
    frames = n // 160
    for _ in range(3):
        frames = (frames + 1) // 2
    return max(1, frames)


GOLDEN = pathlib.Path(__file__).parent / "golden"
# Isaac sizes with the default processor (p 16, scale 2, 256..6144 patches): (h, w) -> (grid_h, grid_w, tokens)
ISAAC_GOLDEN = {
    (r["args"]["height"], r["args"]["width"]): (r["expected"]["grid_h"], r["expected"]["grid_w"],
                                                r["expected"]["num_tokens"])
    for r in map(json.loads, (GOLDEN / "image_isaac_image_size.jsonl").read_text().splitlines())
    if "num_tokens" in r["expected"] and r["args"]["patch_size"] == 16 and r["args"]["pixel_shuffle_scale"] == 2
    and r["args"]["max_num_patches"] == 6144 and r["args"]["min_num_patches"] == 256
    and r["args"]["height"] * r["args"]["width"] <= 640 * 480
}


def test_the_hand_written_glm_grid_reproduces_the_golden_rows_and_spec_examples():
    rows = [json.loads(x) for x in (GOLDEN / "image_glm4v_image_size.jsonl").read_text().splitlines()]
    checked = 0
    for r in rows:
        a, e = r["args"], r["expected"]
        if "grid_thw" not in e or a["patch_size"] != 14 or a["merge_size"] != 2 or a["temporal_patch_size"] != 2:
            continue
        assert list(glm_image_grid(a["height"], a["width"], a["min_pixels"], a["max_pixels"])) == e["grid_thw"], r["case"]
        checked += 1
    assert checked >= 20
    assert [glm_image_tokens(*hw) for hw in [(1080, 1920), (480, 640), (20, 1000), (100, 100), (28, 28)]] == [
        2691, 391, 50, 16, 9]  # SPEC §1.2 worked examples


# -- GLM -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["4.1v", "4.6v"])
def glm_checkpoint(request, tmp_path_factory):
    """A tiny checkpoint directory written by transformers' own Glm4vProcessor / Glm46VProcessor."""
    from tests._torchvision import import_torchvision

    import_torchvision()
    import transformers as tf

    prefix = "Glm4v" if request.param == "4.1v" else "Glm46V"
    parts = [getattr(tf, prefix + n) for n in ("Processor", "ImageProcessor", "VideoProcessor", "Config")]
    tok = hf_tokenizer(glm_tokenizer(), pad_token="<|endoftext|>")
    proc = parts[0](image_processor=parts[1](), tokenizer=tok, video_processor=parts[2]())
    d = tmp_path_factory.mktemp("glm_ckpt")
    proc.save_pretrained(d)
    parts[3]().save_pretrained(d)
    return d, proc, request.param


def test_glm_process_matches_transformers_processor(glm_checkpoint):
    d, proc, version = glm_checkpoint
    glm = mmprep.load(d)
    assert glm.spec.version == version
    imgs = [rand_image(60, 90, 1), rand_image(300, 200, 2), rand_image(33, 700, 3)]
    text = [f"hi {GLM_IMG} there", f"x{GLM_IMG}y and {GLM_IMG}"]
    ref = proc(text=text, images=imgs, return_tensors="np", padding=True)
    ours = glm.process(text, images=[imgs[:1], imgs[1:]], tokenizer=d, backend="reference")
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
        assert (ours[key] == ref[key]).all(), key
    assert ours["pixel_values"].shape == ref["pixel_values"].shape
    assert np.abs(ours["pixel_values"] - ref["pixel_values"]).max() < 1e-4
    meta = glm.prompt(text, images=[[(60, 90)], [(300, 200), (33, 700)]], tokenizer=d)
    for key in ("input_ids", "attention_mask", "position_ids", "mrope_position_delta", "image_grid_thw"):
        assert (meta[key] == ours[key]).all(), key


def glm_video_plan(glm, timestamps, h=56, w=84):
    t = len(timestamps)
    grid = (t, h // 14, w // 14)
    per = grid[1] * grid[2] // 4
    return VideoPlan(frame_indices=tuple(range(2 * t)), timestamps=tuple(float(x) for x in timestamps),
                     height=h, width=w, grid=grid, tokens_per_frame=per, num_tokens=per * t)


def test_glm_video_expansion_tokenizes_each_timestamp_alone():
    glm, tok = mmprep.load("glm-4.6v"), glm_tokenizer()
    plan = glm_video_plan(glm, [0, 3])
    b = glm.prompt(f"a {GLM_VID} b", videos=[plan], tokenizer=tok)
    ids = b["input_ids"][0].tolist()
    tid = tok.token_to_id
    per = [tid("<|begin_of_image|>")] + [tid("<|video|>")] * plan.tokens_per_frame + [tid("<|end_of_image|>")]
    want = (tok.encode("a ").ids + [tid("<|begin_of_video|>")]
            + per + tok.encode("0.0 seconds").ids + per + tok.encode("3.0 seconds").ids
            + [tid("<|end_of_video|>")] + tok.encode(" b").ids)
    assert ids == want
    pos, delta = glm_mrope_positions_reference(len(ids), [{"modality": "video", "offset": 2, "grid_thw": plan.grid}], 2)
    assert (b["position_ids"][:, 0] == pos).all() and int(b["mrope_position_delta"][0, 0]) == delta
    assert (b["mm_token_type_ids"][0] == 2).sum() == plan.num_tokens


def test_glm_allows_one_video_per_prompt():
    glm = mmprep.load("glm-4.1v")
    plan = glm_video_plan(glm, [0])
    with pytest.raises(MmprepError, match="at most 1"):
        glm.prompt(GLM_VID * 2, videos=[plan, plan], tokenizer=glm_tokenizer())


@st.composite
def glm_samples(draw):
    words = st.sampled_from(["hello", " world", " 12", "x", " ", "Frame"])
    parts, images, video = [], [], None
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(words))
        parts.append(GLM_IMG)
        images.append((draw(st.integers(20, 400)), draw(st.integers(20, 400))))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), GLM_VID)
        video = [draw(st.integers(0, 99)) for _ in range(draw(st.integers(1, 3)))]
    parts.append(draw(words))
    return "".join(parts), images, video


@given(glm_samples(), st.sampled_from(["4.1v", "4.6v"]))
def test_glm_length_is_text_plus_plan_tokens_plus_structure(sample, version):
    text, images, video = sample
    glm, tok = mmprep.load(f"glm-{version}"), glm_tokenizer()
    videos = [glm_video_plan(glm, video)] if video else []
    b = glm.prompt(text, images=images, videos=videos, tokenizer=tok)
    n_text = len(tok.encode(text).ids)
    plan_tokens = sum(glm_image_tokens(h, w) for h, w in images)  # SPEC §1.2 by hand
    structure = -len(images)  # each <|image|> placeholder becomes its tokens
    if videos:
        p = videos[0]
        plan_tokens += p.num_tokens
        stamps = sum(len(tok.encode(glm_timestamp_text(version, int(t))).ids) for t in p.timestamps)
        structure += -3 + 2 + 2 * p.grid[0] + stamps  # bov/eov + boi/eoi per group + timestamps
    ids = b["input_ids"][0]
    assert ids.size == n_text + plan_tokens + structure
    # blocks located in the ids themselves (SPEC §6.1): an image at its first <|image|>, a video at
    # its <|begin_of_video|>
    runs = token_runs(ids, tok.token_to_id("<|image|>"))
    assert [n for _, n in runs] == [glm_image_tokens(h, w) for h, w in images]
    feats = [{"modality": "image", "offset": s, "grid_thw": glm_image_grid(h, w)} for (s, _), (h, w) in zip(runs, images)]
    if videos:
        feats.append({"modality": "video", "offset": token_runs(ids, tok.token_to_id("<|begin_of_video|>"))[0][0],
                      "grid_thw": videos[0].grid})
    pos, delta = glm_mrope_positions_reference(ids.size, feats, 2)
    assert (b["position_ids"][:, 0] == pos).all() and int(b["mrope_position_delta"][0, 0]) == delta


# -- Isaac -----------------------------------------------------------------------------------


def isaac_text_reference(text, tokens, tok):
    """The seed's IsaacProcessor: replace each <image> in text, then tokenize the whole text."""
    for n in tokens:
        text = text.replace("<image>", "<|placeholder|>" * n, 1)
    return tok.encode(text.replace("<|placeholder|>", "<|image_pad|>")).ids


def test_isaac_process_equals_prompt_and_the_reference_text_expansion():
    isaac, tok = mmprep.load("isaac"), isaac_tokenizer()
    sizes = [(58, 94), (327, 390)]  # golden isaac_image_size: 224x320 (14x20 patches, 70 tokens), 352x416 (22x26, 143)
    grids, tokens = [(1, 14, 20), (1, 22, 26)], [70, 143]
    imgs = [rand_image(h, w, i) for i, (h, w) in enumerate(sizes)]
    text = "Look:<image>and <image>, then answer."
    b = isaac.process(text, images=imgs, tokenizer=tok)
    m = isaac.prompt(text, images=sizes, tokenizer=tok)
    for key in ("input_ids", "position_ids", "mrope_position_delta", "image_grid_thw"):
        assert (b[key] == m[key]).all(), key
    assert b["image_grid_thw"].tolist() == [list(g) for g in grids]
    assert b["input_ids"][0].tolist() == isaac_text_reference(text, tokens, tok)
    assert b["pixel_values"].shape == (14 * 20 + 22 * 26, 768)
    runs = token_runs(b["input_ids"][0], tok.token_to_id("<|image_pad|>"))
    assert [n for _, n in runs] == tokens
    feats = [{"modality": "image", "offset": s, "grid_thw": g} for (s, _), g in zip(runs, grids)]
    pos, delta = isaac_mrope_positions_reference(b["input_ids"].shape[1], feats, 2)
    assert (b["position_ids"][:, 0] == pos).all() and int(b["mrope_position_delta"][0, 0]) == delta


def test_isaac_rejects_a_typed_image_pad_token():
    with pytest.raises(MmprepError, match="image_pad"):
        mmprep.load("isaac").prompt("a <|image_pad|>", tokenizer=isaac_tokenizer())


# -- Nemotron --------------------------------------------------------------------------------


def nemotron_text_reference(text, tokens, tok):
    """The seed processor's text path for images: replace <image> in order, tokenize, no BOS."""
    parts = text.split("<image>")
    out = parts[0]
    for n, part in zip(tokens, parts[1:]):
        out += "<img>" + "<image>" * n + "</img>" + part
    return tok.encode(out, add_special_tokens=False).ids


def test_nemotron_tiles_process_equals_prompt_without_bos():
    nemo, tok = mmprep.load("nemotron-nano-vl"), nemotron_tokenizer()
    imgs = [rand_image(300, 500, 1), rand_image(64, 64, 2)]
    text = "Compare <image> with <image>."
    b = nemo.process(text, images=imgs, tokenizer=tok)
    m = nemo.prompt(text, images=[(300, 500), (64, 64)], tokenizer=tok)
    assert (b["input_ids"] == m["input_ids"]).all()
    # SPEC §1.3 by hand (512 px tiles, 1..12 tiles, 256 tokens a tile): 300x500 has aspect 5/3; the
    # closest ratio with cols*rows <= 12 is 3x2 (|1.5 - 5/3| < |2 - 5/3|), 6 tiles + thumbnail = 7.
    # 64x64 is square: 1x1, and the 2x2 / 3x3 ties lose (64*64 <= 0.5*512*512*4): 1 tile, no thumbnail.
    tiles = [7, 1]
    assert b["input_ids"][0].tolist() == nemotron_text_reference(text, [256 * n for n in tiles], tok)
    assert b["image_num_patches"].tolist() == tiles
    assert b["pixel_values_flat"].shape == (sum(tiles), 3, 512, 512)
    with_bos = nemo.prompt(text, images=[(300, 500), (64, 64)], tokenizer=tok, add_special_tokens=True)
    assert with_bos["input_ids"][0, 0] == tok.token_to_id("<s>")
    assert with_bos["input_ids"].shape[1] == b["input_ids"].shape[1] + 1


def test_nemotron_dynamic_tiler_budgets_the_prompt_text():
    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()

    def image_tokens(batch):
        return int((batch["input_ids"] == tok.token_to_id("<image>")).sum())

    text = "Two pictures: <image> <image> describe both."
    n_text = len(tok.encode(text.replace("<image>", ""), add_special_tokens=False).ids)
    # golden nemotron_dynamic_tiles 0031: 640x480 and 480x640 with 6000 - 700 - 4 tokens available
    # -> 300 tokens each; the prompt rule leaves the same when max_model_len is 5300 + the text
    imgs = [rand_image(640, 480, 1), rand_image(480, 640, 2)]
    b = omni.process(text, images=imgs, tokenizer=tok, max_model_len=5300 + n_text, text_len="prompt")
    m = omni.prompt(text, images=[(640, 480), (480, 640)], tokenizer=tok, max_model_len=5300 + n_text,
                    text_len="prompt")
    assert (b["input_ids"] == m["input_ids"]).all()
    assert b["num_tokens_per_image"].tolist() == [300, 300] and image_tokens(b) == 600
    # the budget binds (golden 0012 / 0013): 2160x3840 gives 3311 tokens with 16380 available, 480 with 496
    one, big = "Look: <image>", [(2160, 3840)]
    n_one = len(tok.encode("Look: ", add_special_tokens=False).ids)
    assert image_tokens(omni.prompt(one, images=big, tokenizer=tok, max_model_len=16384)) == 3311
    assert image_tokens(omni.prompt(one, images=big, tokenizer=tok, max_model_len=500)) == 480  # text_len 0
    seed = omni.prompt(one, images=big, tokenizer=tok, max_model_len=500 + n_one, text_len="prompt")
    assert image_tokens(seed) == 480
    assert image_tokens(omni.prompt(one, images=big, tokenizer=tok, max_model_len=500, text_len="prompt")) < 480


def nemotron_video_plan(indices, fps, per_frame):
    ms = int(1000.0 / fps)
    return VideoPlan(frame_indices=tuple(indices), timestamps=tuple(i * ms / 1000.0 for i in indices),
                     height=512, width=512, grid=(len(indices), 32, 32), tokens_per_frame=256,
                     num_tokens=sum(per_frame), frame_tokens=tuple(per_frame), frame_duration_ms=ms)


def test_nemotron_video_and_audio_from_plans():
    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    video = nemotron_video_plan([0, 30, 60], 29.97, [400, 0, 0])
    audio = AudioPlan(num_samples=16000, sampling_rate=16000, num_frames=100, num_tokens=13)
    b = omni.prompt("<video> then <so_embedding>!", videos=[video], audios=[audio], tokenizer=tok)
    ids = b["input_ids"][0]
    tid = tok.token_to_id
    assert int((ids == tid("<image>")).sum()) == 400 and int((ids == tid("<so_embedding>")).sum()) == 13
    assert int((ids == tid("<img>")).sum()) == 3
    sep = tok.encode("Frame 2 sampled at 0.99 seconds: ", add_special_tokens=False).ids
    s = ids.tolist()
    assert any(s[i:i + len(sep)] == sep for i in range(len(s)))
    counted = omni.prompt("<so_embedding>", audios=[16000], tokenizer=tok)
    assert int((counted["input_ids"] == tid("<so_embedding>")).sum()) == nemotron_audio_tokens(16000) == 13


def test_nemotron_audio_process_equals_prompt():
    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    wave = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    b = omni.process("hear <so_embedding>", audios=[wave], tokenizer=tok)
    m = omni.prompt("hear <so_embedding>", audios=[24000], tokenizer=tok)
    assert (b["input_ids"] == m["input_ids"]).all()
    assert b["input_audio_features"].shape[0] == 1 and int(b["audio_feature_lengths"][0]) == 24000 // 160  # hop 160
    assert int((b["input_ids"] == tok.token_to_id("<so_embedding>")).sum()) == nemotron_audio_tokens(24000) == 19


# -- batching, tensors, errors ----------------------------------------------------------------


def test_batches_pad_on_either_side_and_return_torch():
    glm, tok = mmprep.load("glm-4.1v"), glm_tokenizer()
    texts = [f"short {GLM_IMG}", "a much longer text without any media at all"]
    right = glm.prompt(texts, images=[[(50, 50)], []], tokenizer=tok, pad_token_id=7)
    left = glm.prompt(texts, images=[[(50, 50)], []], tokenizer=tok, padding_side="left", return_tensors="pt")
    n = right["attention_mask"].sum(1)
    assert right["input_ids"][1].tolist() == left["input_ids"][1].tolist()
    k = int(n[0])
    assert (right["input_ids"][0, k:] == 7).all() and (right["position_ids"][:, 0, k:] == 0).all()
    assert left["input_ids"][0, -k:].tolist() == right["input_ids"][0, :k].tolist()
    assert (left["position_ids"][:, 0, -k:].numpy() == right["position_ids"][:, 0, :k]).all()
    assert left["mrope_position_delta"].shape == (2, 1)
    assert len(right.plans["image"]) == 2 and right.plans["image"][1] == []


@pytest.mark.parametrize(
    "call",
    [
        lambda g, t: g.prompt(None, images=[(10, 10)], tokenizer=t),  # media without text
        lambda g, t: g.prompt("no placeholder", images=[(50, 50)], tokenizer=t),
        lambda g, t: g.prompt(GLM_IMG * 2, images=[(50, 50)], tokenizer=t),
        lambda g, t: g.prompt("x <|video|> y", tokenizer=t),  # stray video token
        lambda g, t: g.prompt(GLM_IMG, images=[(50, 50)], tokenizer=isaac_tokenizer()),  # lacks tokens
        lambda g, t: g.prompt(["a", "b"], images=[(50, 50), (50, 50)], tokenizer=t),  # batch not nested
        lambda g, t: g.prompt(GLM_IMG, images=[(0, 50)], tokenizer=t),
        lambda g, t: g.prompt(GLM_IMG, images=["nope"], tokenizer=t),
        lambda g, t: g.prompt("x", tokenizer=t, return_tensors="tf"),
        lambda g, t: g.prompt("x", tokenizer=t, bogus=1),
        lambda g, t: g.prompt("x", tokenizer=None),
        lambda g, t: g.prompt("", tokenizer=t),  # an empty prompt has no positions
    ],
)
def test_bad_input_raises_mmprep_errors(call):
    with pytest.raises(MmprepError):
        call(mmprep.load("glm-4.1v"), glm_tokenizer())


def test_errors_name_the_sample_and_both_counts():
    glm = mmprep.load("glm-4.1v")
    with pytest.raises(MmprepError, match=r"sample 1: .*1 image placeholder.*2 image item"):
        glm.prompt(["x", GLM_IMG], images=[[], [(50, 50), (60, 60)]], tokenizer=glm_tokenizer())


def test_video_plan_whose_timestamps_disagree_with_its_grid_raises():
    glm = mmprep.load("glm-4.1v")
    plan = glm_video_plan(glm, [0, 1])
    bad = VideoPlan(plan.frame_indices, (0.0,), plan.height, plan.width, plan.grid, plan.tokens_per_frame, plan.num_tokens)
    with pytest.raises(MmprepError, match="1 timestamps"):
        glm.prompt(GLM_VID, videos=[bad], tokenizer=glm_tokenizer())


@given(st.lists(st.tuples(st.sampled_from(["a", " b c", "\n", " 3.5"]), st.sampled_from(sorted(ISAAC_GOLDEN))),
                max_size=3), st.sampled_from(["", " end"]))
def test_isaac_length_and_positions_from_random_mixes(items, tail):
    isaac, tok = mmprep.load("isaac"), isaac_tokenizer()
    text = "".join(t + "<image>" for t, _ in items) + tail + "."
    sizes = [hw for _, hw in items]
    b = isaac.prompt(text, images=sizes, tokenizer=tok)
    want = [ISAAC_GOLDEN[hw] for hw in sizes]  # (grid_h, grid_w, tokens) from the golden vectors
    stand_in = text.replace("<image>", "<|image_pad|>")
    assert b["input_ids"].shape[1] == len(tok.encode(stand_in).ids) - len(items) + sum(n for _, _, n in want)
    runs = token_runs(b["input_ids"][0], tok.token_to_id("<|image_pad|>"))
    assert [n for _, n in runs] == [n for _, _, n in want]
    feats = [{"modality": "image", "offset": s, "grid_thw": (1, gh, gw)} for (s, _), (gh, gw, _) in zip(runs, want)]
    pos, delta = isaac_mrope_positions_reference(b["input_ids"].shape[1], feats, 2)
    assert (b["position_ids"][:, 0] == pos).all() and int(b["mrope_position_delta"][0, 0]) == delta


@given(st.integers(0, 2), st.integers(0, 2), st.integers(1, 4), st.sampled_from([0.0, 0.7]),
       st.sampled_from(["hi ", "Frame 1 ", ""]))
def test_nemotron_length_is_text_plus_plans_plus_structure(n_img, n_aud, frames, q, word):
    omni = mmprep.load("nemotron-3-nano-omni", video_pruning_rate=q)
    tok = nemotron_tokenizer()
    text = word + "<image>" * n_img + " <video> " + "<so_embedding>" * n_aud
    sizes = [(640, 480), (480, 640)][:n_img]  # golden nemotron_dynamic_tiles 0009 / 0030: 300 tokens each
    audios = [8000 * (i + 1) for i in range(n_aud)]
    kept = max(256, int(256 * frames * (1 - q))) if q else 256  # EVS retained count (SPEC §4.1), all in frame 1
    per = [kept] + [0] * (frames - 1) if q else [256] * frames
    video = nemotron_video_plan(list(range(0, 10 * frames, 10)), 25, per)
    b = omni.prompt(text, images=sizes, videos=[video], audios=audios, tokenizer=tok, max_model_len=16384)
    n_text = len(tok.encode(text, add_special_tokens=False).ids) - n_img - 1 - n_aud
    image_tokens = 300 * n_img
    audio_tokens = sum(nemotron_audio_tokens(n) for n in audios)
    seps = sum(len(tok.encode(f"Frame {i + 1} sampled at {t:.2f} seconds: ", add_special_tokens=False).ids)
               for i, t in enumerate(video.timestamps))  # SPEC §11 frame separator
    structure = 2 * n_img + 2 * n_aud + 2 * frames + seps
    assert b["input_ids"].shape[1] == n_text + image_tokens + sum(per) + audio_tokens + structure


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"])
def test_video_process_equals_prompt_from_metadata(name):
    pytest.importorskip("mmprep.video")
    from mmprep.types import VideoMetadata

    fam = mmprep.load(name)
    frames = np.random.default_rng(0).integers(0, 256, (20, 60, 80, 3), dtype=np.uint8)
    glm = name.startswith("glm")
    tok = glm_tokenizer() if glm else nemotron_tokenizer()
    text = f"a {GLM_VID} b" if glm else "see <video> now"
    b = fam.process(text, videos=[(frames, 2.0)], tokenizer=tok)
    m = fam.prompt(text, videos=[VideoMetadata(20, 2.0, 60, 80)], tokenizer=tok)
    assert (b["input_ids"] == m["input_ids"]).all()
    ids = b["input_ids"][0]
    # 20 frames at 2 fps = 10 s: every sampler keeps all 20 (4.1V: 2 fps; 4.6V: 3 fps capped at the
    # video's 2; Nemotron: all frames)
    if glm:
        # SPEC §1.2 video smart_resize(20, 60, 80) -> 56x84: grid (10 groups, 4, 6), 6 tokens a group
        assert (b["position_ids"] == m["position_ids"]).all()
        assert b["video_grid_thw"].tolist() == m["video_grid_thw"].tolist() == [[10, 4, 6]]
        assert int((ids == tok.token_to_id("<|video|>")).sum()) == 10 * 4 * 6 // 4
        assert b["pixel_values_videos"].shape == (10 * 4 * 6, 1176)
    else:
        # one 512px tile a frame, 256 tokens each; EVS q = 0.7 keeps int(20 * 256 * 0.3) = 1536 (SPEC T32)
        assert b["video_num_patches"].tolist() == [20]
        assert b["frame_duration_ms"].tolist() == [500]
        assert int((ids == tok.token_to_id("<image>")).sum()) == int(20 * 256 * (1 - 0.7)) == 1536


def test_batch_feeds_the_model_layer_without_reshaping():
    pytest.importorskip("torch")
    from mmprep.models.inputs import pack_tokens

    glm = mmprep.load("glm-4.1v")
    texts = [f"a {GLM_IMG} b", "a longer text without media"]
    b = glm.prompt(texts, images=[[(100, 100)], []], tokenizer=glm_tokenizer(), padding_side="left",
                   return_tensors="pt")
    packed = pack_tokens(b, "cpu", max_context=1000, has_media=True)
    assert packed.lengths.tolist() == b["attention_mask"].sum(1).tolist()
    assert packed.deltas.tolist() == b["mrope_position_delta"].ravel().tolist()
    first = int(b["attention_mask"][0].sum())
    assert (packed.positions[:, :first] == b["position_ids"][:, 0, -first:]).all()


def test_nemotron_omni_mixed_batch_process_equals_prompt():
    pytest.importorskip("mmprep.video")
    from mmprep.types import VideoMetadata

    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 60, 80, 3), dtype=np.uint8)
    img = rand_image(640, 480)
    wave = (rng.standard_normal(20000) * 0.1).astype(np.float32)
    texts = ["<image> and <video> and <so_embedding>", "just <image>"]
    b = omni.process(texts, images=[[img], [img]], videos=[[(frames, 4.0)], []], audios=[[wave], []],
                     tokenizer=tok, return_tensors="pt")
    m = omni.prompt(texts, images=[[(640, 480)], [(640, 480)]], videos=[[VideoMetadata(8, 4.0, 60, 80)], []],
                    audios=[[20000], []], tokenizer=tok)
    assert (b["input_ids"].numpy() == m["input_ids"]).all()
    assert (b["attention_mask"].numpy() == m["attention_mask"]).all()
    assert b["video_num_patches"].tolist() == [8] and b["audio_feature_lengths"].tolist() == [20000 // 160]
    assert b["num_tokens_per_image"].tolist() == [300, 300]  # golden nemotron_dynamic_tiles 0009: 640x480
