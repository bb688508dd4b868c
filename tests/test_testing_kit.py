"""``mmprep.testing``: edges from each spec, boundary strategies that reach both sides of every
count change, shrinking onto a boundary, and ``check_batch`` on good and broken batches."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import VideoMetadata
from mmprep.evs import retained_count
from mmprep.testing import BatchCheckError, check_batch, check_truncation
from mmprep.testing import strategies as mst
from tests.tokenizers_fixture import glm_tokenizer, isaac_tokenizer, nemotron_tokenizer

FAMILIES = {name: mmprep.load(name) for name in mmprep.MODEL_NAMES}
TOKENIZERS = {"glm4v": glm_tokenizer, "isaac": isaac_tokenizer, "nemotron": nemotron_tokenizer}
FIND = settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
FAST = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


REACH = settings(FIND, phases=[Phase.generate])  # any example will do: no shrinking


def _find(strategy, condition, seed=0, how=FIND):
    return find(strategy, condition, settings=how, random=random.Random(seed))


def test_import_mmprep_and_its_checks_load_neither_hypothesis_nor_torch():
    code = ("import sys, mmprep, mmprep.testing; from mmprep.testing import check_batch; "
            "mmprep.load('glm-4.1v').edges(); "
            "print(sorted(m for m in ('hypothesis', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_hypothesis_the_checks_work_and_the_strategies_say_what_to_install():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "from mmprep.testing import check_batch\n"
            "try:\n    from mmprep.testing import strategies\n"
            "except ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'mmprep[testing]'" in out


def test_edges_are_derived_from_the_spec_not_retyped():
    glm = mmprep.load("glm-4.1v", patch_size=16)  # factor 32: steps at 16 + 32k
    assert glm.edges().image.sides[:3] == (16, 32, 48)
    assert glm.edges().image.areas == (glm.spec.image_min_pixels // 2, glm.spec.image_max_pixels // 2)
    assert mmprep.load("glm-4.6v").edges().video.durations == (30.0, 300.0, 640.0, 2400.0)
    assert mmprep.load("glm-4.1v", video_max_duration=120).edges().video.durations == (120.0,)
    isaac = mmprep.load("isaac", max_num_patches=1024)
    assert 1024 * 16**2 in isaac.edges().image.areas and isaac.edges().image.sides[:2] == (32, 64)
    audio = mmprep.load("nemotron-3-nano-omni", audio_hop_length=320).edges().audio
    assert (audio.hop, audio.phase, audio.step) == (320, 9 * 320, 8 * 320)
    assert mmprep.load("nemotron-nano-vl", video_num_frames=8).edges().video.frame_counts == (8,)
    assert mmprep.load("nemotron-nano-vl", max_num_tiles=1).edges().image.ratios == ()


def _image_count(fam):
    return lambda sizes: fam.count_image_tokens([s[0] for s in sizes], [s[1] for s in sizes], on_error="minus_one")


def _video_count(fam, loader=None):
    extra = {} if loader is None else {"loader": loader}
    return lambda ms: fam.count_video_tokens([m.total_frames for m in ms], [m.fps for m in ms],
                                             [m.height for m in ms], [m.width for m in ms], on_error="minus_one",
                                             **extra)


def _cases():
    for name, fam in FAMILIES.items():
        e = fam.edges()
        for kind in ("sides", "areas", "ratios", "steps"):
            if kind == "steps" or getattr(e.image, kind):
                yield name, "image", kind
        if "video" in fam.modalities:
            for loader, v in {None: e.video, **e.video_loaders}.items():
                for kind in ("durations", "frame_counts", "fps"):
                    if getattr(v, kind):
                        yield name, "video" if loader is None else f"video:{loader}", kind
        if "audio" in fam.modalities:
            yield name, "audio", "steps"
            yield name, "audio", "hops"
        if e.evs is not None:
            yield name, "evs", "steps"


def test_nemotron_opencv_dynamic_loader_has_edge_cases():
    cases = [c for c in _cases() if c[1] == "video:opencv_dynamic"]
    assert {(n, k) for n, _, k in cases} == {(n, k) for n in ("nemotron-nano-vl", "nemotron-3-nano-omni")
                                             for k in ("durations", "fps")}


@pytest.mark.parametrize("name, modality, kind", list(_cases()))
def test_each_boundary_strategy_reaches_both_sides_of_a_count_change(name, modality, kind):
    """Among the generated pairs (one pixel, frame, sample or ulp apart) some straddle a change
    of the count (or of countable -> not countable, for a validity edge such as 1000 fps).
    ``video:LOADER``: the edges of another of the family's video loaders, counted with it."""
    fam = FAMILIES[name]
    if modality == "image":
        strategy, count = mst.image_size_pairs(fam, kind, valid=False), _image_count(fam)
    elif modality.startswith("video"):
        loader = modality.partition(":")[2] or None
        strategy = mst.video_metadata_pairs(fam, kind, valid=False, loader=loader)
        count = _video_count(fam, loader)
    elif modality == "audio":
        strategy = mst.audio_length_pairs(fam, kind, valid=False)
        count = lambda ns: fam.count_audio_tokens(np.asarray(ns), on_error="minus_one")
    else:
        e = fam.edges().evs
        strategy = mst.evs_rate_pairs(fam)
        count = lambda qs: [retained_count(e.tokens_per_frame, e.max_frames, q) for q in qs]
    pair = _find(strategy, lambda p: int(count(list(p))[0]) != int(count(list(p))[1]), how=REACH)
    assert count(list(pair))[0] != count(list(pair))[1]


@pytest.mark.parametrize("name", list(FAMILIES))
@FAST
@given(data=st.data())
def test_strategies_draw_inputs_the_family_can_count(name, data):
    fam = FAMILIES[name]
    h, w = data.draw(mst.image_sizes(fam))
    assert fam.count_image_tokens(h, w) == fam.plan_image(h, w).num_tokens
    if "video" in fam.modalities:
        m = data.draw(mst.video_metadata(fam, max_seconds=600))
        assert fam.count_video_tokens(m.total_frames, m.fps, m.height, m.width)[0] == fam.plan_video(m).num_tokens
    if "audio" in fam.modalities:
        n = data.draw(mst.audio_lengths(fam))
        assert fam.count_audio_tokens(n) == fam.plan_audio(n).num_tokens


def test_nemotron_opencv_dynamic_edges_come_from_the_loaders_constants():
    from mmprep.families.nemotron.sampling import DYNAMIC_MAX_DURATION, DYNAMIC_TARGET_FPS

    v = mmprep.load("nemotron-nano-vl").edges().video_loaders["opencv_dynamic"]
    assert v.durations == (DYNAMIC_MAX_DURATION,) == (300.0,) and DYNAMIC_TARGET_FPS in v.fps
    with pytest.raises(mmprep.InvalidInputError, match="no video loader 'opencv_dynamic'"):
        mst.video_metadata(FAMILIES["glm-4.1v"], loader="opencv_dynamic")


@pytest.mark.parametrize("name", ["nemotron-nano-vl", "nemotron-3-nano-omni"])
@FAST
@given(data=st.data())
def test_opencv_dynamic_draws_are_counted_as_planned(name, data):
    fam = FAMILIES[name]
    m = data.draw(mst.video_metadata(fam, loader="opencv_dynamic"))
    got = fam.count_video_tokens(m.total_frames, m.fps, m.height, m.width, loader="opencv_dynamic")[0]
    assert got == fam.plan_video(m, loader="opencv_dynamic").num_tokens


@pytest.mark.parametrize("name", list(FAMILIES))
@FAST
@given(data=st.data())
def test_prompts_from_the_strategy_pass_check_batch(name, data):
    fam = FAMILIES[name]
    tok = TOKENIZERS[fam.name]()
    cases = data.draw(st.lists(mst.prompts(fam, max_items=2), min_size=1, max_size=2))
    media = {key: [list(getattr(c, key)) for c in cases] for key in ("images", "videos", "audios")
             if any(getattr(c, key) for c in cases)}
    batch = fam.prompt([c.text for c in cases], **media, tokenizer=tok)
    spans = check_batch(fam, batch, tokenizer=tok)
    assert [len(s) for s in spans] == [len(c.images) + len(c.videos) + len(c.audios) for c in cases]


# -- check_batch on good and broken batches ---------------------------------------------------


def _glm_batch():
    fam, tok = FAMILIES["glm-4.6v"], glm_tokenizer()
    text = ["a <|begin_of_image|><|image|><|end_of_image|> b <|begin_of_video|><|video|><|end_of_video|> c",
            "x <|begin_of_image|><|image|><|end_of_image|>"]
    batch = fam.prompt(text, images=[[(300, 400)], [(56, 900)]], videos=[[VideoMetadata(60, 30.0, 240, 320)], []],
                       tokenizer=tok)
    return fam, tok, batch


def test_check_batch_accepts_process_batches_of_every_family():
    img, vid = np.zeros((60, 90, 3), np.uint8), (np.zeros((4, 40, 60, 3), np.uint8), 2.0)
    for name, fam in FAMILIES.items():
        tok = TOKENIZERS[fam.name]()
        marks = fam.edges().placeholders
        text = "a " + marks["image"] + (" b " + marks["video"] if "video" in marks else "")
        media = {"images": [img], **({"videos": [vid]} if "video" in marks else {})}
        if "audio" in marks:
            text, media["audios"] = text + marks["audio"], [np.zeros(4000, np.float32)]
        batch = fam.process(text, **media, tokenizer=tok)
        assert len(check_batch(fam, batch, tokenizer=tok)[0]) == len(media), name


def test_check_batch_names_a_short_placeholder_run():
    fam, tok, batch = _glm_batch()
    ids, mask = batch["input_ids"].copy(), batch["attention_mask"].copy()
    at = int(np.flatnonzero(ids[1] == tok.token_to_id("<|image|>"))[0])
    row = np.delete(ids[1], at)
    ids[1, : row.size], ids[1, row.size], mask[1, row.size:] = row, 0, 0
    with pytest.raises(BatchCheckError, match=r"sample 1: image 0 .* 64 placeholder tokens .* holds 63 tokens"):
        check_batch(fam, {"input_ids": ids, "attention_mask": mask}, tokenizer=tok, plans=batch.plans)


def test_check_batch_names_a_span_cut_by_truncation():
    fam, tok, batch = _glm_batch()
    mask = batch["attention_mask"].copy()
    mask[0, 200:] = 0
    with pytest.raises(BatchCheckError, match=r"sample 0: video 0 is cut by the end .* 39 of its 632 tokens remain"):
        check_batch(fam, {"input_ids": batch["input_ids"], "attention_mask": mask}, tokenizer=tok, plans=batch.plans)
    spans = check_batch(fam, batch, tokenizer=tok)[0]
    with pytest.raises(BatchCheckError, match=r"sample 0: a cut at 200 tokens splits video 0"):
        check_truncation(spans, 200)
    check_truncation(spans, spans[-1].start)  # cutting before an item is fine


def test_check_batch_names_stray_tokens_grids_pixels_and_positions():
    fam, tok, batch = _glm_batch()
    ids = batch["input_ids"].copy()
    ids[1, 1] = tok.token_to_id("<|image|>")
    with pytest.raises(BatchCheckError, match=r"sample 1: 1 placeholder token\(s\) \(first at token 1"):
        check_batch(fam, {**batch, "input_ids": ids}, tokenizer=tok, plans=batch.plans)
    grids = batch["image_grid_thw"].copy()
    grids[1, 1] += 2
    with pytest.raises(BatchCheckError, match=r"sample 1: image 0: image_grid_thw row 1 is \[1, 6, 64\] but its plan says \[1, 4, 64\]"):
        check_batch(fam, {**batch, "image_grid_thw": grids}, tokenizer=tok, plans=batch.plans)
    types = batch["mm_token_type_ids"].copy()
    types[0, 3] = 0
    with pytest.raises(BatchCheckError, match=r"sample 0: mm_token_type_ids at token 3 is 0 but the spans give 1"):
        check_batch(fam, {**batch, "mm_token_type_ids": types}, tokenizer=tok, plans=batch.plans)
    pos = batch["position_ids"].copy()
    pos[:, 0, 2] += 1
    with pytest.raises(BatchCheckError, match=r"sample 0: position_ids at token 2"):
        check_batch(fam, {**batch, "position_ids": pos}, tokenizer=tok, plans=batch.plans)
    pos = batch["position_ids"].copy()
    pos[0, 0, 5] = 0
    with pytest.raises(BatchCheckError, match=r"sample 0: the t row decreases"):
        check_batch(fam, {**batch, "position_ids": pos}, tokenizer=tok, plans=batch.plans)
    with pytest.raises(BatchCheckError, match=r"position_ids must be \(3, B, L\)"):
        check_batch(fam, {**batch, "position_ids": pos[:, :1]}, tokenizer=tok, plans=batch.plans)
    pb = fam.process("<|begin_of_image|><|image|><|end_of_image|>", images=[np.zeros((60, 90, 3), np.uint8)],
                     tokenizer=tok)
    with pytest.raises(BatchCheckError, match=r"image pixels 'pixel_values' have 20 rows but the plans' grids give 48 \(per sample: \{0: 48\}\)"):
        check_batch(fam, {**pb, "pixel_values": pb["pixel_values"][:20]}, tokenizer=tok, plans=pb.plans)


# -- shrinking: a deliberately wrong budget is caught on a boundary -----------------------------


def _glm_budget_with_a_bug(h: int, w: int) -> int:
    """A user's own GLM resize with one bug: it clamps at ``>= max_pixels`` (the rule: ``>``)."""
    s = FAMILIES["glm-4.1v"].spec
    f, tps = s.factor, s.temporal_patch_size
    if min(h, w) < f:
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    hb, wb = round(h / f) * f, round(w / f) * f
    if tps * hb * wb >= s.image_max_pixels:  # the bug
        beta = math.sqrt(tps * h * w / s.image_max_pixels)
        hb, wb = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    elif tps * hb * wb < s.image_min_pixels:
        beta = math.sqrt(s.image_min_pixels / (tps * h * w))
        hb, wb = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return hb * wb // f**2


def test_a_wrong_image_budget_shrinks_onto_the_max_pixel_clamp():
    glm = FAMILIES["glm-4.1v"]
    s = glm.spec
    h, w = _find(mst.image_sizes(glm, "boundary"), lambda hw: _glm_budget_with_a_bug(*hw) < glm.count_image_tokens(*hw))
    # the minimal example sits exactly on the clamp: the rounded size is max_pixels
    assert s.temporal_patch_size * round(h / s.factor) * round(w / s.factor) * s.factor**2 == s.image_max_pixels
    assert _glm_budget_with_a_bug(h, w) < glm.count_image_tokens(h, w)


def test_a_floor_audio_budget_shrinks_onto_the_first_subsampling_step():
    omni = FAMILIES["nemotron-3-nano-omni"]
    s, a = omni.spec, omni.edges().audio

    def budget(n: int) -> int:  # forgets that a partial subsampling step still costs a token
        return max(1, n // (s.audio_hop_length * s.audio_subsampling_factor))

    n = _find(mst.audio_lengths(omni), lambda n: budget(n) < omni.count_audio_tokens(n))
    assert n == a.phase  # 9 hops: the first length whose count steps up


def test_a_naive_video_worst_case_is_caught_at_the_caps():
    """``video_max_pixels / (tps * factor²)`` looks like a cap on a GLM video's tokens, but the
    resize never goes below one factor per side: hypothesis finds it at the aspect-ratio limit
    with the longest sampled video (docs/testing.md)."""
    glm = FAMILIES["glm-4.6v"]
    s, v = glm.spec, glm.edges().video
    cap = s.video_max_pixels // s.temporal_patch_size // s.video_factor**2
    m = _find(mst.video_metadata(glm), lambda m: glm.count_video_tokens(m.total_frames, m.fps, m.height, m.width)[0] > cap)
    assert max(m.height, m.width) / min(m.height, m.width) >= max(v.sizes.ratios) / 2
    assert glm.plan_video(m).num_frames >= 300


@pytest.mark.parametrize("name, key", [("nemotron-nano-vl", "image_num_patches"),
                                       ("nemotron-3-nano-omni", "num_tokens_per_image"),
                                       ("nemotron-3-nano-omni", "audio_feature_lengths"),
                                       ("nemotron-3-nano-omni", "video_num_patches")])
def test_check_batch_reads_the_per_item_keys_the_family_names(name, key):
    fam, tok = FAMILIES[name], nemotron_tokenizer()
    text = "<image> a <video> b" + (" <so_embedding>" if "audio" in fam.modalities else "")
    media = {"images": [np.zeros((60, 900, 3), np.uint8)], "videos": [(np.zeros((3, 40, 60, 3), np.uint8), 2.0)]}
    if "audio" in fam.modalities:
        media["audios"] = [np.zeros(4000, np.float32)]
    batch = fam.process(text, **media, tokenizer=tok)
    assert key in fam.edges().item_keys and key in batch
    check_batch(fam, batch, tokenizer=tok)
    wrong = np.asarray(batch[key]).copy()
    wrong[0] += 1
    with pytest.raises(BatchCheckError, match=rf"sample 0: \w+ 0: {key} row 0 is \[{int(wrong[0])}\] but its plan says"):
        check_batch(fam, {**batch, key: wrong}, tokenizer=tok, plans=batch.plans)


def _omni_batch():
    """Two samples: sample 1 holds two images and a 20-frame video at 10 fps."""
    fam, tok = FAMILIES["nemotron-3-nano-omni"], nemotron_tokenizer()
    image = np.zeros((60, 900, 3), np.uint8)
    batch = fam.process(["<image> a", "<image> b <image> c <video>"], images=[[image], [image, np.zeros((300, 200, 3), np.uint8)]],
                        videos=[[], [(np.zeros((20, 40, 60, 3), np.uint8), 10.0)]], tokenizer=tok)
    return fam, tok, batch


def test_check_batch_checks_nemotron_sizes_frame_indices_and_durations():
    fam, tok, batch = _omni_batch()
    check_batch(fam, batch, tokenizer=tok)
    plan = batch.plans["image"][1][1]
    sizes = np.asarray(batch["imgs_sizes"]).copy()
    assert sizes[2].tolist() == [plan.height, plan.width]
    sizes[2, 1] += 16
    with pytest.raises(BatchCheckError, match=rf"sample 1: image 1: imgs_sizes row 2 is \[{plan.height}, {plan.width + 16}\] "
                                              rf"but its plan says \[{plan.height}, {plan.width}\]"):
        check_batch(fam, {**batch, "imgs_sizes": sizes}, tokenizer=tok, plans=batch.plans)
    ms = np.asarray(batch["frame_duration_ms"]).copy()
    assert ms.tolist() == [100]  # int(1000 / 10)
    with pytest.raises(BatchCheckError, match=r"sample 1: video 0: frame_duration_ms row 0 is \[33\] but its plan says \[100\]"):
        check_batch(fam, {**batch, "frame_duration_ms": np.asarray([33])}, tokenizer=tok, plans=batch.plans)
    frames = [list(r) for r in batch["frames_indices"]]
    assert frames == [list(range(20))]
    frames[0][7] = 8
    with pytest.raises(BatchCheckError, match=r"sample 1: video 0: frames_indices row 0 differs from its plan at position 7 "
                                              r"of 20: 8 but the plan says 7"):
        check_batch(fam, {**batch, "frames_indices": frames}, tokenizer=tok, plans=batch.plans)
    with pytest.raises(BatchCheckError, match=r"sample 1: video 0: frames_indices row 0 is \[0, 1, .*\] \(19 values\) "
                                              r"but its plan says \[0, 1, .*\] \(20 values\)"):
        check_batch(fam, {**batch, "frames_indices": [list(range(19))]}, tokenizer=tok, plans=batch.plans)
    with pytest.raises(BatchCheckError, match=r"frames_indices has 2 rows for 1 planned video items"):
        check_batch(fam, {**batch, "frames_indices": [list(range(20))] * 2}, tokenizer=tok, plans=batch.plans)
