"""Processor calls: ``process`` (pixels) == ``prompt`` (metadata), parity with transformers'
Glm4vProcessor on a tiny checkpoint, the reference's text-level expansion, batching and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import MmprepError
from mmprep.families.glm4v.positions import glm_mrope_positions_reference
from mmprep.families.isaac.positions import isaac_mrope_positions_reference
from mmprep.types import AudioPlan, VideoPlan
from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer, isaac_tokenizer, nemotron_tokenizer

GLM_IMG = "<|begin_of_image|><|image|><|end_of_image|>"
GLM_VID = "<|begin_of_video|><|video|><|end_of_video|>"


def rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


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
    plan_tokens = sum(glm.plan_image(h, w).num_tokens for h, w in images)
    structure = -len(images)  # each <|image|> placeholder becomes its tokens
    if videos:
        p = videos[0]
        plan_tokens += p.num_tokens
        stamps = sum(len(tok.encode(glm_timestamp_text(version, int(t))).ids) for t in p.timestamps)
        structure += -3 + 2 + 2 * p.grid[0] + stamps  # bov/eov + boi/eoi per group + timestamps
    ids = b["input_ids"][0]
    assert ids.size == n_text + plan_tokens + structure
    spans = b.plans["spans"][0]
    feats = [{"modality": s.modality, "offset": s.start,
              "grid_thw": (b.plans[s.modality][0][s.index]).grid} for s in spans]
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
    imgs = [rand_image(40, 70, 1), rand_image(130, 50, 2)]
    text = "Look:<image>and <image>, then answer."
    b = isaac.process(text, images=imgs, tokenizer=tok)
    m = isaac.prompt(text, images=[(40, 70), (130, 50)], tokenizer=tok)
    for key in ("input_ids", "position_ids", "mrope_position_delta", "image_grid_thw"):
        assert (b[key] == m[key]).all(), key
    plans = [isaac.plan_image(40, 70), isaac.plan_image(130, 50)]
    assert b["input_ids"][0].tolist() == isaac_text_reference(text, [p.num_tokens for p in plans], tok)
    assert b["pixel_values"].shape == (sum(p.num_patches for p in plans), 768)
    spans = b.plans["spans"][0]
    feats = [{"modality": "image", "offset": s.start, "grid_thw": p.grid} for s, p in zip(spans, plans)]
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
    plans = [nemo.plan_image(300, 500), nemo.plan_image(64, 64)]
    assert b["input_ids"][0].tolist() == nemotron_text_reference(text, [p.num_tokens for p in plans], tok)
    assert b["image_num_patches"].tolist() == [p.tiles.num_tiles for p in plans]
    assert b["pixel_values_flat"].shape == (sum(p.tiles.num_tiles for p in plans), 3, 512, 512)
    with_bos = nemo.prompt(text, images=[(300, 500), (64, 64)], tokenizer=tok, add_special_tokens=True)
    assert with_bos["input_ids"][0, 0] == tok.token_to_id("<s>")
    assert with_bos["input_ids"].shape[1] == b["input_ids"].shape[1] + 1


def test_nemotron_dynamic_tiler_budgets_the_prompt_text():
    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    imgs = [rand_image(200, 300, 1), rand_image(90, 40, 2)]
    text = "Two pictures: <image> <image> describe both."
    b = omni.process(text, images=imgs, tokenizer=tok, max_model_len=3000, text_len="prompt")
    m = omni.prompt(text, images=[(200, 300), (90, 40)], tokenizer=tok, max_model_len=3000, text_len="prompt")
    assert (b["input_ids"] == m["input_ids"]).all()
    n_text = len(tok.encode(text.replace("<image>", ""), add_special_tokens=False).ids)
    req = omni.plan_request([(200, 300), (90, 40)], text_len=n_text, max_model_len=3000)
    assert b["num_tokens_per_image"].tolist() == [p.num_tokens for p in req.images]
    assert int((b["input_ids"] == tok.token_to_id("<image>")).sum()) == req.total_tokens
    big = [(800, 1200), (900, 500)]  # the budget binds: the two text_len rules differ
    default = omni.prompt(text, images=big, tokenizer=tok, max_model_len=600)
    seed = omni.prompt(text, images=big, tokenizer=tok, max_model_len=600, text_len="prompt")
    assert default.plans["image"][0] == list(omni.plan_request(big, max_model_len=600).images)
    assert seed.plans["image"][0] == list(omni.plan_request(big, text_len=n_text, max_model_len=600).images)
    assert seed["input_ids"].shape[1] < default["input_ids"].shape[1]


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
    assert int((counted["input_ids"] == tid("<so_embedding>")).sum()) == int(omni.count_audio_tokens(16000))


def test_nemotron_audio_process_equals_prompt():
    omni, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    wave = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    b = omni.process("hear <so_embedding>", audios=[wave], tokenizer=tok)
    m = omni.prompt("hear <so_embedding>", audios=[24000], tokenizer=tok)
    assert (b["input_ids"] == m["input_ids"]).all()
    assert b["input_audio_features"].shape[0] == 1 and int(b["audio_feature_lengths"][0]) == m.plans["audio"][0][0].num_frames


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


@given(st.lists(st.tuples(st.sampled_from(["a", " b c", "\n", " 3.5"]), st.integers(16, 300), st.integers(16, 300)),
                max_size=3), st.sampled_from(["", " end"]))
def test_isaac_length_and_positions_from_random_mixes(items, tail):
    isaac, tok = mmprep.load("isaac"), isaac_tokenizer()
    text = "".join(t + "<image>" for t, _, _ in items) + tail + "."
    sizes = [(h, w) for _, h, w in items]
    b = isaac.prompt(text, images=sizes, tokenizer=tok)
    plans = [isaac.plan_image(h, w) for h, w in sizes]
    stand_in = text.replace("<image>", "<|image_pad|>")
    assert b["input_ids"].shape[1] == len(tok.encode(stand_in).ids) - len(items) + sum(p.num_tokens for p in plans)
    feats = [{"modality": "image", "offset": s.start, "grid_thw": p.grid}
             for s, p in zip(b.plans["spans"][0], plans)]
    pos, delta = isaac_mrope_positions_reference(b["input_ids"].shape[1], feats, 2)
    assert (b["position_ids"][:, 0] == pos).all() and int(b["mrope_position_delta"][0, 0]) == delta


@given(st.integers(0, 2), st.integers(0, 2), st.integers(1, 4), st.sampled_from([0.0, 0.7]),
       st.sampled_from(["hi ", "Frame 1 ", ""]))
def test_nemotron_length_is_text_plus_plans_plus_structure(n_img, n_aud, frames, q, word):
    omni = mmprep.load("nemotron-3-nano-omni", video_pruning_rate=q)
    tok = nemotron_tokenizer()
    text = word + "<image>" * n_img + " <video> " + "<so_embedding>" * n_aud
    sizes = [(100 + 50 * i, 300) for i in range(n_img)]
    audios = [8000 * (i + 1) for i in range(n_aud)]
    per = mmprep.tokens.nemotron_evs_frame_tokens(omni.spec.tokens_per_tile, frames, q)
    video = nemotron_video_plan(list(range(0, 10 * frames, 10)), 25, per)
    b = omni.prompt(text, images=sizes, videos=[video], audios=audios, tokenizer=tok)
    n_text = len(tok.encode(text, add_special_tokens=False).ids) - n_img - 1 - n_aud
    image_tokens = sum(p.num_tokens for p in b.plans["image"][0])
    audio_tokens = sum(int(omni.count_audio_tokens(n)) for n in audios)
    seps = sum(len(tok.encode(nemotron_separator(i, t), add_special_tokens=False).ids)
               for i, t in enumerate(video.timestamps))
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
    plan = b.plans["video"][0][0]
    span = b.plans["spans"][0][0]
    assert span.num_features == plan.num_tokens
    if glm:
        assert (b["position_ids"] == m["position_ids"]).all()
        assert (b["video_grid_thw"] == m["video_grid_thw"]).all()
        assert b["pixel_values_videos"].shape[0] == int(np.prod(plan.grid))
    else:
        assert b["video_num_patches"].tolist() == [plan.num_frames]
        assert b["frame_duration_ms"].tolist() == [500]


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
    img = rand_image(100, 150)
    wave = (rng.standard_normal(20000) * 0.1).astype(np.float32)
    texts = ["<image> and <video> and <so_embedding>", "just <image>"]
    b = omni.process(texts, images=[[img], [img]], videos=[[(frames, 4.0)], []], audios=[[wave], []],
                     tokenizer=tok, return_tensors="pt")
    m = omni.prompt(texts, images=[[(100, 150)], [(100, 150)]], videos=[[VideoMetadata(8, 4.0, 60, 80)], []],
                    audios=[[20000], []], tokenizer=tok)
    assert (b["input_ids"].numpy() == m["input_ids"]).all()
    assert (b["attention_mask"].numpy() == m["attention_mask"]).all()
    assert b["video_num_patches"].tolist() == [8] and b["audio_feature_lengths"].shape == (1,)
    assert b["num_tokens_per_image"].tolist() == [p.num_tokens for s in m.plans["image"] for p in s]
