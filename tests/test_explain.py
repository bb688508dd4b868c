"""``explain``: every family's account ends at the plan's own figures, on random inputs and
under every engine; it is JSON-serialisable and readable; ``mmprep explain`` prints it."""

from __future__ import annotations

import inspect
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import MmprepError, VideoMetadata
from mmprep.cli import main
from mmprep.engines import ENGINES
from mmprep.explain import Explanation, PromptExplanation, render, to_json
from tests.tokenizers_fixture import glm_tokenizer, isaac_tokenizer, nemotron_tokenizer

NAMES = mmprep.MODEL_NAMES
FAMILIES = {(n, e): mmprep.load(n, engine=e) for n in NAMES for e in ENGINES}
VIDEO_NAMES = [n for n in NAMES if "video" in mmprep.load(n).modalities]
TOKENIZERS = {"glm4v": glm_tokenizer, "isaac": isaac_tokenizer, "nemotron": nemotron_tokenizer}
PLACEHOLDER = {"glm4v": ("<|begin_of_image|><|image|><|end_of_image|>", "<|begin_of_video|><|video|><|end_of_video|>"),
               "isaac": ("<image>", None), "nemotron": ("<image>", "<video>")}

sizes = st.tuples(st.integers(1, 6000), st.integers(1, 6000))
video_meta = st.builds(VideoMetadata, st.integers(1, 5000), st.sampled_from([1.0, 10.0, 24.0, 29.97, 30.0, 60.0]),
                       st.integers(28, 4000), st.integers(28, 4000))


@pytest.mark.parametrize("name", NAMES)
def test_every_family_explains(name):
    fam = mmprep.load(name)
    assert isinstance(fam, mmprep.Family)
    for method in ("explain_image", "explain_video", "explain_audio", "explain"):
        assert callable(getattr(fam, method))
    for media in ("images", "videos", "audios", "tokenizer"):
        assert inspect.signature(fam.explain).parameters[media].kind is inspect.Parameter.KEYWORD_ONLY


def _json_ok(e) -> None:
    json.dumps(to_json(e))
    assert render(e)


def _plan_or_error(call):
    try:
        return call()
    except MmprepError:
        return None


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40)
@given(size=sizes)
def test_explain_image_equals_the_plan(name, engine, size):
    fam = FAMILIES[name, engine]
    plan = _plan_or_error(lambda: fam.plan_image(*size))
    if plan is None:
        with pytest.raises(MmprepError):
            fam.explain_image(*size)
        return
    e = fam.explain_image(*size)
    assert isinstance(e, Explanation) and e.modality == "image" and e.engine == engine
    assert e.num_tokens == plan.num_tokens and e.grid == tuple(plan.grid)
    assert e.plan["height"] == plan.height and e.plan["width"] == plan.width
    assert e.steps and all(s.name for s in e.steps)
    _json_ok(e)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", VIDEO_NAMES)
@settings(max_examples=25)
@given(meta=video_meta)
def test_explain_video_equals_the_plan(name, engine, meta):
    fam = FAMILIES[name, engine]
    plan = _plan_or_error(lambda: fam.plan_video(meta))
    if plan is None:
        return
    e = fam.explain_video(meta)
    assert e.num_tokens == plan.num_tokens == int(fam.count_video_tokens([meta.total_frames], [meta.fps],
                                                                          [meta.height], [meta.width])[0])
    assert e.grid == tuple(plan.grid) and e.plan["frame_indices"] == list(plan.frame_indices)
    assert {s.name for s in e.steps} >= {"timestamps", "tokens" if fam.name == "glm4v" else "spans"}
    _json_ok(e)


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=60)
@given(n=st.integers(320, 16000 * 600))
def test_explain_audio_equals_the_plan(engine, n):
    fam = FAMILIES["nemotron-3-nano-omni", engine]
    plan = fam.plan_audio(n)
    e = fam.explain_audio(n)
    assert e.num_tokens == plan.num_tokens == int(fam.count_audio_tokens([n])[0])
    assert e.rules["audio_token_rule"] == fam.spec.audio_token_rule
    _json_ok(e)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10)
@given(images=st.lists(st.tuples(st.integers(28, 2500), st.integers(28, 2500)), max_size=3),
       video=st.one_of(st.none(), video_meta), words=st.sampled_from(["", "hello", " world 12 "]))
def test_explain_prompt_totals_equal_the_prompt(name, engine, images, video, words):
    fam = FAMILIES[name, engine]
    img_ph, vid_ph = PLACEHOLDER[fam.name]
    videos = [video] if video is not None and vid_ph and _plan_or_error(lambda: fam.plan_video(video)) else []
    text = words + "".join(img_ph + words for _ in images) + (vid_ph + words if videos else "")
    if not images and not videos:
        return
    tok = TOKENIZERS[fam.name]()
    batch = fam.prompt(text, images=images, videos=videos, tokenizer=tok)
    e = fam.explain(text, images=images, videos=videos, tokenizer=tok)
    assert isinstance(e, PromptExplanation)
    assert e.total_tokens == batch["input_ids"].shape[1]
    plans = [p for m in ("image", "video") for p in batch.plans[m][0]]
    assert [it.num_tokens for it in e.items] == [p.num_tokens for p in plans]
    assert e.media_tokens == sum(p.num_tokens for p in plans)
    assert [(s.start, s.length, s.num_features) for s in e.spans] == [
        (s.start, s.length, s.num_features) for s in batch.plans["spans"][0]]
    assert e.text_tokens == e.total_tokens - sum(s.length for s in e.spans)
    if "mrope_position_delta" in batch:
        assert e.mrope_delta == int(batch["mrope_position_delta"][0, 0])
        pos = batch["position_ids"][:, 0]
        for s in e.spans:
            end = s.start + s.length
            assert s.position_start == int(pos[0, s.start])
            assert s.position_next == (int(pos[0, end]) if end < e.total_tokens else None)
    _json_ok(e)
    # without a tokenizer: the same items (the Nemotron request is planned together)
    bare = fam.explain(text, images=images, videos=videos)
    assert [it.num_tokens for it in bare.items] == [it.num_tokens for it in e.items]


def test_nemotron_request_explains_every_budget_round():
    omni = mmprep.load("nemotron-3-nano-omni")
    sizes = [(3000, 4000), (2000, 2000), (64, 5000)]
    req = omni.plan_request(sizes, max_model_len=3000)
    e = omni.explain("", images=sizes, max_model_len=3000)
    rounds = [s for s in e.steps if s.name.startswith("round_")]
    assert len(rounds) == req.rounds
    assert rounds[-1].values["budgets"] == list(req.final_per_image_patch_budget)
    assert [it.num_tokens for it in e.items] == list(req.num_tokens_per_image)
    assert e.steps[0].values["patch_budget"] == req.patch_budget


def test_explain_names_the_decisions():
    isaac = mmprep.load("isaac").explain_image(3000, 4000)
    bis = next(s for s in isaac.steps if s.name == "bisection")
    assert bis.values["branch"] == "scale_down" and bis.values["iterations"] == 17
    assert bis.values["target"] == [1088, 1440] and isaac.num_tokens == 1530
    glm = mmprep.load("glm-4.1v").explain_image(20, 1000)
    up = next(s for s in glm.steps if s.name == "upscale_small_side")
    assert up.values["size"] == [28, 1400] and glm.num_tokens == 50
    tiles = mmprep.load("nemotron-nano-vl").explain_image(1080, 1920)
    closest = next(s for s in tiles.steps if s.name == "closest")
    assert (closest.values["cols"], closest.values["rows"]) == (4, 2) and closest.values["ties_taken"] == [[4, 2]]
    vid = mmprep.load("glm-4.6v").explain_video(VideoMetadata(100, 30.0, 720, 1280))
    sampler = next(s for s in vid.steps if s.name == "sampler")
    assert sampler.values["branch"] == "loop+fill_linspace" and sampler.values["extract_t"] == 20
    omni = mmprep.load("nemotron-3-nano-omni", engine="vllm").explain_video(VideoMetadata(300, 30.0, 720, 1280))
    assert next(s for s in omni.steps if s.name == "evs").values["retained"] == 1209


def test_explain_refuses_a_missing_modality():
    with pytest.raises(mmprep.UnsupportedModalityError):
        mmprep.load("isaac").explain_video(VideoMetadata(10, 1.0, 64, 64))
    with pytest.raises(mmprep.UnsupportedModalityError):
        mmprep.load("nemotron-nano-vl").explain_audio(16000)


# -- the command line -------------------------------------------------------------------------


def _run(*argv: str) -> str:
    out = io.StringIO()
    assert main(list(argv), out=out) == 0
    return out.getvalue()


def test_cli_explain_prints_the_steps_and_json():
    text = _run("explain", "--model", "isaac", "3000x4000")
    assert "1530 tokens" in text and "bisection" in text
    data = json.loads(_run("explain", "--model", "isaac", "--json", "3000x4000"))
    assert data["num_tokens"] == 1530 and data["grid"] == [1, 68, 90]
    both = json.loads(_run("explain", "--model", "nemotron-3-nano-omni", "--json", "3000x4000", "2000x2000"))
    assert [i["num_tokens"] for i in both["items"]] == list(
        mmprep.load("nemotron-3-nano-omni").plan_request([(3000, 4000), (2000, 2000)]).num_tokens_per_image)


def test_cli_explain_engines_names_the_rule(tmp_path):
    import wave

    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(np.zeros(128_000, np.int16).tobytes())
    data = json.loads(_run("explain", "--model", "nemotron-3-nano-omni", "--engines", "--json", str(path)))
    assert [data["engines"][e]["counts"][0] for e in ENGINES] == [100, 101, 100]
    assert any(r["rule"] == "audio_frames" and r["changes_counts"] for r in data["rules"]["transformers"])
    assert not any(r["rule"] == "audio_frames" and r["changes_counts"] for r in data["rules"]["vllm"])
    text = _run("explain", "--model", "nemotron-3-nano-omni", "--engines", str(path))
    assert "audio_frames - changes the counts" in text
