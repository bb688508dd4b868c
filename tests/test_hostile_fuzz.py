"""Hypothesis over hostile sizes, spec fields, video metadata and audio lengths (issue 20).

Every call ends in an ``MmprepError`` or an answer the plan and the vectorized count agree on;
a bare ``TypeError`` / ``ValueError`` / ``OverflowError`` fails. Each example has a time bound
(hypothesis' deadline) and the examples are few, so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import AudioPlan, ImagePlan, MmprepError, VideoMetadata, VideoPlan

FAMILIES = {name: mmprep.load(name) for name in mmprep.MODEL_NAMES}
# MMPREP_FUZZ_EXAMPLES=2000 for a long campaign; the default keeps the file to seconds
FUZZ = settings(max_examples=int(os.environ.get("MMPREP_FUZZ_EXAMPLES", "60")), deadline=5000,
                suppress_health_check=[HealthCheck.too_slow])

# numbers a careless or hostile caller passes: huge, tiny, negative, NaN, inf, fractions
hostile_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 5000),
    st.sampled_from([0, 1, 2**31, 2**32, 2**52, 2**53 + 1, 2**63 - 1, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1e-300, 1e300, -0.0, 480.0, 3.5]),
)
# anything at all where a number belongs
hostile_values = st.one_of(
    hostile_numbers, st.none(), st.booleans(), st.text(max_size=4), st.just([1, 2]), st.just((1, 2, 3)),
    st.just({}), st.just(b"x"), st.just(np.float32("nan")), st.just(np.int64(-1)),
)
real_sizes = st.integers(1, 20_000)


def _outcome(fn, *args, **kwargs):
    """The result, or None when an MmprepError says why not (anything else propagates)."""
    try:
        return fn(*args, **kwargs)
    except MmprepError:
        return None


@FUZZ
@given(name=st.sampled_from(mmprep.MODEL_NAMES), h=hostile_values, w=hostile_values)
def test_plan_image_takes_anything(name, h, w):
    plan = _outcome(FAMILIES[name].plan_image, h, w)
    if plan is not None:
        assert isinstance(plan, ImagePlan) and plan.num_tokens > 0 and min(plan.grid) > 0


float_sizes = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 2**54).map(float),
                       st.sampled_from([0.5, 3.5, 480.0, 2.0**28, 2.0**29, 2.0**52]))


@FUZZ
@given(name=st.sampled_from(mmprep.MODEL_NAMES), h=float_sizes, w=float_sizes)
def test_float_counts_equal_plans_or_minus_one(name, h, w):
    fam = FAMILIES[name]
    plan = _outcome(fam.plan_image, h, w)
    got = fam.count_image_tokens([480.0, h], [640.0, w], on_error="minus_one")
    assert got.tolist() == [fam.plan_image(480, 640).num_tokens, plan.num_tokens if plan is not None else -1]


@FUZZ
@given(name=st.sampled_from(mmprep.MODEL_NAMES), h=st.integers(-5, 2**40), w=st.integers(-5, 2**40))
def test_int_counts_equal_plans(name, h, w):
    fam = FAMILIES[name]
    plan = _outcome(fam.plan_image, h, w)
    got = fam.count_image_tokens(np.array([h], np.int64), np.array([w], np.int64), on_error="minus_one")
    assert got.tolist() == [plan.num_tokens if plan is not None else -1]
    if plan is None:
        assert _outcome(fam.count_image_tokens, [h], [w]) is None


def _spec_fields(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(FAMILIES[name].spec)]


@FUZZ
@given(data=st.data(), name=st.sampled_from(mmprep.MODEL_NAMES), value=hostile_values)
def test_any_spec_field_value_loads_or_is_refused(data, name, value):
    field = data.draw(st.sampled_from(_spec_fields(name)))
    fam = _outcome(mmprep.load, name, **{field: value})
    if fam is None:
        return
    plan = _outcome(fam.plan_image, 480, 640)
    counted = _outcome(fam.count_image_tokens, [480], [640])
    assert (plan is None) == (counted is None)
    if plan is not None:
        assert counted.tolist() == [plan.num_tokens]


@FUZZ
@given(name=st.sampled_from(["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"]),
       total=hostile_values, fps=hostile_values, h=hostile_values, w=hostile_values)
def test_video_metadata_of_any_kind(name, total, fps, h, w):
    fam = FAMILIES[name]
    plan = _outcome(fam.plan_video, VideoMetadata(total, fps, h, w))
    if plan is not None:
        assert isinstance(plan, VideoPlan) and plan.num_tokens > 0
        assert all(0 <= i < total for i in plan.frame_indices)


@FUZZ
@given(name=st.sampled_from(["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"]),
       total=st.one_of(st.integers(-2, 10**12), st.floats(0, 1e12)),
       fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([30.0, 0.01, 1e6, 1e7])),
       h=real_sizes, w=real_sizes)
def test_video_counts_equal_plans_or_minus_one(name, total, fps, h, w):
    fam = FAMILIES[name]
    plan = _outcome(fam.plan_video, VideoMetadata(total, fps, h, w))
    got = fam.count_video_tokens(np.array([total], dtype=np.float64), fps, h, w, on_error="minus_one")
    assert got.tolist() == [plan.num_tokens if plan is not None else -1]


@FUZZ
@given(n=hostile_values, seconds=hostile_values, max_seconds=hostile_values)
def test_audio_lengths_of_any_kind(n, seconds, max_seconds):
    omni = FAMILIES["nemotron-3-nano-omni"]
    count = _outcome(omni.count_audio_tokens, n)
    if count is not None:
        assert np.all(np.asarray(count) >= 1)
    _outcome(omni.count_audio_tokens, seconds=seconds)
    plan = _outcome(omni.plan_audio, n, max_seconds=max_seconds)
    if plan is not None:
        assert isinstance(plan, AudioPlan) and plan.num_tokens == count
        limit = max_seconds if max_seconds else 0
        assert not (limit > 0 and plan.num_samples > limit * omni.spec.audio_sampling_rate)


@FUZZ
@given(rate=hostile_values, n=st.integers(1, 4000))
def test_audio_rates_of_any_kind(rate, n):
    omni = FAMILIES["nemotron-3-nano-omni"]
    x = np.sin(np.arange(n, dtype=np.float32) / 7)
    plan = _outcome(omni.plan_audio, (x, rate))
    if plan is not None and plan.num_samples < 200_000:
        feats = omni.audio_features([(x, rate)])
        assert feats.plans[0] == plan and np.isfinite(feats.features).all()


@FUZZ
@given(name=st.sampled_from(["nemotron-nano-vl"]), tiles=hostile_values)
def test_max_num_tiles_of_any_kind(name, tiles):
    plan = _outcome(FAMILIES[name].plan_image, 480, 640, max_num_tiles=tiles)
    if plan is not None:
        assert plan.tiles.num_tiles <= (FAMILIES[name].spec.max_num_tiles if tiles is None else tiles) + 1


@FUZZ
@given(mml=hostile_values, text_len=hostile_values,
       sizes=st.lists(st.tuples(hostile_numbers, hostile_numbers), min_size=0, max_size=3))
def test_plan_request_of_any_kind(mml, text_len, sizes):
    plan = _outcome(FAMILIES["nemotron-3-nano-omni"].plan_request, sizes, max_model_len=mml, text_len=text_len)
    if plan is not None:
        assert plan.num_tokens_available == plan.max_model_len - plan.text_len - 4
        assert all(p.num_tokens > 0 for p in plan.images) and not math.isnan(plan.max_model_len)


HOSTILE_ITEMS = [
    None, 5, 2.5, -5, 10**12, b"x", "missing.png", (480, 640), (480.5, 640), (float("nan"), 1), (2**40, 2**40),
    ("a", "b"), [480, 640], (480, 640, 3), np.zeros((4, 4, 3), np.uint8), ImagePlan(1, 1, 28, 28, (1, 2, 2), 1),
    ImagePlan(1, 1, 28, 28, (1, 2, 2), -1), VideoMetadata(60, 30.0, 240, 320), VideoMetadata(60, 0.0, 240, 320),
    (np.zeros((3, 4, 4, 3), np.uint8), float("nan")), (np.zeros(100, np.float32), 0), 16_000,
]
MARKERS = {"glm-4.1v": "<|image|> <|video|>", "glm-4.6v": "<|image|> <|video|>", "isaac": "<image>",
           "nemotron-nano-vl": "<image> <video>", "nemotron-3-nano-omni": "<image> <video> <so_embedding>"}


@FUZZ
@given(name=st.sampled_from(mmprep.MODEL_NAMES), modality=st.sampled_from(["images", "videos", "audios"]),
       item=st.sampled_from(HOSTILE_ITEMS), method=st.sampled_from(["prompt", "process"]),
       extra=st.sampled_from([{}, {"padding_side": "middle"}, {"return_tensors": "tf"}, {"pad_token_id": "x"}]))
def test_prompts_take_any_media_item(name, modality, item, method, extra):
    from tests.tokenizers_fixture import (
        glm_tokenizer,
        isaac_tokenizer,
        nemotron_tokenizer,
    )

    tok = {"g": glm_tokenizer, "i": isaac_tokenizer, "n": nemotron_tokenizer}[name[0]]()
    marker = {"images": 0, "videos": 1, "audios": 2}[modality]
    words = MARKERS[name].split()
    text = words[marker] if marker < len(words) else words[0]
    batch = _outcome(getattr(FAMILIES[name], method), text, tokenizer=tok, **{modality: [item]}, **extra)
    if batch is not None:
        assert batch["input_ids"].shape[0] == 1
