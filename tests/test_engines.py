"""Engine profiles: ``mmprep.load(name, engine=...)``.

* ``"transformers"`` rules against the installed transformers 5.24 processors on random inputs
  (zero disagreements where the profile claims parity).
* ``"vllm"`` rules against vectors worked by hand from vLLM's current source (main: model file
  ``nano_nemotron_vl.py`` @00b5bd45, ``transformers_utils/processors/nano_nemotron_vl.py``
  @e6d35296, ``parakeet.py`` @055e47c2).
* The profile machinery: defaults, overrides winning, unknown engines.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import InvalidInputError, VideoMetadata
from mmprep.engines import ENGINES, engine_overrides
from mmprep.video import vllm_metadata
from tests.tokenizers_fixture import glm_tokenizer, nemotron_tokenizer

OMNI = "nemotron-3-nano-omni"


# -- the machinery ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", mmprep.MODEL_NAMES)
def test_default_engine_is_the_seed_and_every_engine_loads(name):
    assert mmprep.load(name).engine == "vllm-seed"
    seed = mmprep.load(name).spec
    for engine in ENGINES:
        fam = mmprep.load(name, engine=engine)
        assert fam.engine == engine
        # only the fields of the family's engine rules may change
        changed = {f for f in type(seed).__dataclass_fields__ if getattr(seed, f) != getattr(fam.spec, f)}
        allowed = {f for r in fam.engine_rules for f in r.fields()}
        assert changed <= allowed, changed - allowed


def test_unknown_engine_is_refused():
    with pytest.raises(InvalidInputError, match="unknown engine 'sglang'"):
        mmprep.load("isaac", engine="sglang")


def test_explicit_overrides_win_over_the_engine():
    fam = mmprep.load(OMNI, engine="vllm", video_temporal_patch_size=1, audio_token_rule="vllm")
    assert fam.spec.video_temporal_patch_size == 1 and fam.spec.video_target_num_patches == 1024
    assert fam.spec.audio_token_rule == "vllm"


def test_switching_back_to_the_seed_restores_its_values():
    tr = mmprep.load(OMNI, engine="transformers")
    back = engine_overrides(tr.engine_rules, "vllm-seed", tr.spec)
    assert back["video_temporal_patch_size"] == 1 and back["audio_token_rule"] == "vllm"
    assert back["image_budget"] == "request"


def test_rules_that_do_not_apply_leave_the_checkpoint_alone():
    """The 12B has no sound encoder and no dynamic tiler: no tubelets, audio or budget rule."""
    for engine in ENGINES:
        s = mmprep.load("nemotron-nano-vl", engine=engine).spec
        assert s.video_temporal_patch_size == 1 and s.image_budget == "request"
        assert s.audio_token_rule == "vllm"
    assert mmprep.load("glm-4.1v", engine="transformers").spec.timestamp_rule == "int_seconds"
    assert mmprep.load("glm-4.6v", engine="transformers").spec.short_clip_rule == "none"


def test_checkpoint_directories_take_an_engine(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm4v", "image_token_id": 151363}))
    (tmp_path / "processor_config.json").write_text(json.dumps({
        "processor_class": "Glm46VProcessor",
        "image_processor": {"image_processor_type": "Glm46VImageProcessor", "size": {"longest_edge": 4_000_000}},
    }))
    glm = mmprep.load(tmp_path, engine="transformers")
    assert glm.engine == "transformers" and glm.spec.version == "4.6v"
    assert glm.spec.image_max_pixels == 4_000_000  # the checkpoint's values stay
    assert (glm.spec.timestamp_rule, glm.spec.video_token_rule) == ("frame_seconds", "image")


def _omni_checkpoint(path, layout):
    """A tiny Omni checkpoint whose tubelets are not 2 / 1024 / keep-aspect: vLLM's layout
    (``vision_config``) or transformers' (config top level + processor_config.json)."""
    path.mkdir(exist_ok=True)
    if layout == "vision_config":  # 4-frame tubelets, square frames of 16x16 patches
        config = {"model_type": "NemotronH_Nano_Omni_Reasoning_V3", "video_pruning_rate": 0.7,
                  "vision_config": {"args": {"min_num_patches": 1024, "max_num_patches": 13312},
                                    "video_temporal_patch_size": 4, "video_target_num_patches": 256,
                                    "video_maintain_aspect_ratio": False}}
        files = {"preprocessor_config.json": {"image_processor_type": "NemotronH_Omni_Reasoning_V3ImageProcessor"}}
    else:  # 3-frame tubelets, ~576 patches keeping the aspect ratio
        config = {"model_type": "nemotron_h_omni", "video_temporal_patch_size": 3, "video_pruning_rate": 0.7}
        files = {"processor_config.json": {
            "processor_class": "NemotronH_Omni_Reasoning_V3Processor", "video_temporal_patch_dim": 3,
            "video_processor": {"video_target_num_patches": 576, "video_maintain_aspect_ratio": True}}}
    for name, obj in {"config.json": config, **files}.items():
        (path / name).write_text(json.dumps(obj))
    return path


# 20 frames at 10 fps, 240x320 (examples/clip_320x240.mp4): every engine keeps all 20
CLIP = ([20], [10.0], [240], [320])


@pytest.mark.parametrize("layout, tubelet, size, tokens, counts", [
    # 16x16 patches (square: int(sqrt(256)) = 16) -> 64 tokens; ceil(20/4) = 5 tubelets = 320; EVS int(320*0.3)
    ("vision_config", 4, (256, 256), 64, {"transformers": 320, "vllm": 96}),
    # 240x320, 576 patches: round(20.8)=21 x round(27.7)=28 -> up 22x28 > 576 -> down 20x28 = 140 tokens;
    # ceil(20/3) = 7 tubelets = 980; EVS int(980 * 0.3) = 294
    ("processor", 3, (320, 448), 140, {"transformers": 980, "vllm": 294}),
])
def test_engine_profiles_take_the_checkpoints_tubelets(tmp_path, layout, tubelet, size, tokens, counts):
    path = _omni_checkpoint(tmp_path / layout, layout)
    for engine, total in counts.items():
        fam = mmprep.load(path, engine=engine)
        assert fam.spec.video_temporal_patch_size == tubelet
        plan = fam.plan_video(VideoMetadata(20, 10.0, 240, 320))
        assert (plan.height, plan.width, plan.tokens_per_frame) == (*size, tokens)
        assert plan.grid[0] == -(-20 // tubelet) and plan.num_tokens == total
        assert fam.count_video_tokens(*CLIP).tolist() == [total]
    # the seed ignores the checkpoint's tubelets: 20 tiles x 256, EVS 0.7 keeps 1536
    seed = mmprep.load(path)
    assert (seed.spec.video_temporal_patch_size, seed.spec.video_target_num_patches) == (1, None)
    assert seed.count_video_tokens(*CLIP).tolist() == [1536] == mmprep.load(OMNI).count_video_tokens(*CLIP).tolist()
    # explicit fields still win over what the checkpoint says
    assert mmprep.load(path, engine="vllm", video_temporal_patch_size=2).spec.video_temporal_patch_size == 2


def test_engine_profiles_without_checkpoint_tubelets_keep_2_1024_keep_aspect():
    for engine in ("vllm", "transformers"):
        s = mmprep.load(OMNI, engine=engine).spec
        assert (s.video_temporal_patch_size, s.video_target_num_patches, s.video_maintain_aspect_ratio) == (
            2, 1024, True)
    assert mmprep.load(OMNI, engine="transformers").count_video_tokens(*CLIP).tolist() == [2520]
    assert mmprep.load(OMNI, engine="vllm").count_video_tokens(*CLIP).tolist() == [756]


@pytest.mark.parametrize("section, key, value, match", [
    ("vision_config", "video_temporal_patch_size", 0, "config.json vision_config: key 'video_temporal_patch_size'"),
    ("vision_config", "video_target_num_patches", 2.5, "key 'video_target_num_patches' must be an int"),
    ("vision_config", "video_maintain_aspect_ratio", "yes", "key 'video_maintain_aspect_ratio' must be true or false"),
    (None, "video_temporal_patch_size", -1, "config.json: key 'video_temporal_patch_size'"),
])
def test_bad_checkpoint_tubelet_values_name_the_file_and_key(tmp_path, section, key, value, match):
    path = _omni_checkpoint(tmp_path, "vision_config")
    config = json.loads((path / "config.json").read_text())
    (config[section] if section else config)[key] = value
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match=match):
        mmprep.load(path)
    with pytest.raises(InvalidInputError, match="checkpoint_video_temporal_patch_size must be"):
        mmprep.load(OMNI, checkpoint_video_temporal_patch_size=0)


def test_isaac_transformers_profile_selects_the_released_mrope_rule():
    assert mmprep.load("isaac").spec.mrope_rule == "vllm"
    assert mmprep.load("isaac", engine="vllm").spec.mrope_rule == "vllm"
    assert mmprep.load("isaac", engine="transformers").spec.mrope_rule == "perceptron"
    with pytest.raises(InvalidInputError, match="mrope_rule"):
        mmprep.load("isaac", mrope_rule="qwen")
    from tests.tokenizers_fixture import isaac_tokenizer

    text, images = "a <image> b <image> c", [(480, 640), (480, 640)]  # 15x20 tokens each
    seed = mmprep.load("isaac").explain(text, images=images, tokenizer=isaac_tokenizer())
    tr = mmprep.load("isaac", engine="transformers").explain(text, images=images, tokenizer=isaac_tokenizer())
    assert [(s.position_start, s.position_next) for s in seed.spans] == [(2, 20), (23, 24)]  # max(2, 14, 19) + 1
    assert [(s.position_start, s.position_next) for s in tr.spans] == [(2, 3), (6, 7)]  # t + 1 after each
    assert (seed.mrope_delta, tr.mrope_delta) == (-581, -587)


def test_audio_variant_argument_still_overrides_for_one_call():
    omni = mmprep.load(OMNI)
    n = np.array([128_000])
    assert omni.count_audio_tokens(n).tolist() == [100]
    assert omni.count_audio_tokens(n, variant="transformers").tolist() == [101]


# -- vLLM's current release: vectors worked by hand from its source ----------------------------


@pytest.mark.parametrize("height, width, size, tokens", [
    # _compute_aspect_preserving_size(target 1024, patch 16, ratio 0.5):
    (720, 1280, (384, 672), 252),  # aspect 1.778: 24 x round(42.67)=43 -> up 24x44=1056 > 1024 -> down 24x42
    (1080, 1920, (384, 672), 252),
    (480, 640, (448, 576), 252),  # 28 x round(36.95)=37 -> up 28x38 > 1024 -> down 28x36
    (512, 512, (512, 512), 256),  # 32 x 32
    (1920, 480, (1024, 256), 256),  # aspect 0.25: 64 x 16 exactly
    (100, 1000, (160, 1632), 255),  # aspect 10: round(10.12)=10 x round(101.2)=101 -> up 10x102 = 1020 <= 1024
])
def test_vllm_omni_video_frame_size_and_tokens(height, width, size, tokens):
    omni = mmprep.load(OMNI, engine="vllm", video_pruning_rate=0.0)
    plan = omni.plan_video(VideoMetadata(64, 30.0, height, width))
    assert (plan.height, plan.width) == size
    assert plan.tokens_per_frame == tokens
    assert plan.grid == (16, size[0] // 16, size[1] // 16)  # 32 loader frames -> 16 tubelets
    assert plan.num_tokens == 16 * tokens


def test_vllm_omni_video_tubelets_and_evs_by_hand():
    """32 frames (vLLM's default loader) of 720p: ceil(32/2) = 16 tubelets of 252 tokens;
    EVS q=0.7 keeps int(16 * 252 * 0.3) = 1209 (seed: 32 frames x 256 -> int(8192 * 0.3) = 2457)."""
    meta = VideoMetadata(300, 30.0, 720, 1280)
    assert mmprep.load(OMNI).plan_video(meta).num_tokens == 2457
    plan = mmprep.load(OMNI, engine="vllm").plan_video(meta)
    assert plan.num_tokens == 1209 and plan.frame_tokens == (1209,) + (0,) * 15
    odd = mmprep.load(OMNI, engine="vllm", video_pruning_rate=0.0).plan_video(meta, frame_indices=range(31))
    assert odd.grid[0] == 16 and odd.num_tokens == 16 * 252  # the last tubelet holds one frame
    counts = mmprep.load(OMNI, engine="vllm").count_video_tokens([300, 300], [30.0, 30.0], [720, 512], [1280, 512])
    assert counts.tolist() == [1209, int(16 * 256 * 0.3)]


def test_vllm_video_separators_carry_a_newline():
    tok = nemotron_tokenizer()
    meta = VideoMetadata(4, 2.0, 512, 512)
    seed = mmprep.load("nemotron-nano-vl", video_pruning_rate=0.0)
    vllm = mmprep.load("nemotron-nano-vl", engine="vllm", video_pruning_rate=0.0)
    a = tok.decode(seed.prompt("<video>", videos=[meta], tokenizer=tok)["input_ids"][0].tolist(), skip_special_tokens=False)
    b = tok.decode(vllm.prompt("<video>", videos=[meta], tokenizer=tok)["input_ids"][0].tolist(), skip_special_tokens=False)
    assert "</img>Frame 2 sampled at 0.50 seconds" in a
    assert "</img>\nFrame 2 sampled at 0.50 seconds" in b


@pytest.mark.parametrize("samples, seed, transformers, vllm", [
    # seed: ceil((n // 160) / 8); transformers: ceil((1 + n // 160) / 8); vLLM: per 30 s clip, tail >= 0.1 s
    (128_000, 100, 101, 100),  # 800 frames: 100 vs 801 -> 101; one clip
    (720_000, 563, 563, 563),  # 45 s: clips 480000 (375) + 240000 (188)
    (481_600, 377, 377, 377),  # 30.1 s: 3010 frames -> 377; clips 375 + 1600 (10 frames -> 2)
    (480_800, 376, 376, 377),  # 30.05 s: tail 800 samples padded to 1600 -> 375 + 2
    (960_000, 750, 751, 750),  # 60 s exactly: two clips of 375
    (100, 1, 1, 2),  # shorter than a hop: at least 1; vLLM pads to 0.1 s = 10 frames -> 2
])
def test_audio_tokens_per_engine(samples, seed, transformers, vllm):
    got = [int(mmprep.load(OMNI, engine=e).count_audio_tokens([samples])[0])
           for e in ("vllm-seed", "transformers", "vllm")]
    assert got == [seed, transformers, vllm]


def test_vllm_glm_and_isaac_follow_the_seed():
    meta = VideoMetadata(100, 30.0, 720, 1280)
    for name in ("glm-4.1v", "glm-4.6v"):
        assert mmprep.load(name, engine="vllm").plan_video(meta) == mmprep.load(name).plan_video(meta)
    assert mmprep.load("isaac", engine="vllm").plan_image(1080, 1920) == mmprep.load("isaac").plan_image(1080, 1920)


# -- transformers 5.24: the installed processors are the peer -----------------------------------

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

from tests._torchvision import import_torchvision  # noqa: E402

import_torchvision()

from transformers.video_utils import VideoMetadata as HfVideoMetadata  # noqa: E402

from tests.tokenizers_fixture import hf_tokenizer  # noqa: E402

omni_mod = pytest.importorskip("transformers.models.nemotron_h_omni")

videos = st.tuples(st.integers(1, 4000), st.sampled_from([1.0, 5.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0]))


def _hf_meta(total, fps, h=None, w=None, indices=None):
    return HfVideoMetadata(total_num_frames=total, fps=fps, duration=total / fps, height=h, width=w,
                           frames_indices=indices)


@settings(max_examples=300)
@given(videos)
def test_transformers_glm41v_sampler_matches(video):
    total, fps = video
    ours = mmprep.load("glm-4.1v", engine="transformers").sample_frames(total, vllm_metadata(VideoMetadata(total, fps)))
    ref = transformers.Glm4vVideoProcessor().sample_frames(_hf_meta(total, fps))
    assert list(ours.frame_indices) == np.asarray(ref).tolist()


@settings(max_examples=300)
@given(videos)
def test_transformers_glm46v_sampler_matches(video):
    total, fps = video
    ours = mmprep.load("glm-4.6v", engine="transformers").sample_frames(total, vllm_metadata(VideoMetadata(total, fps)))
    ref = transformers.Glm46VVideoProcessor().sample_frames(_hf_meta(total, fps))
    assert list(ours.frame_indices) == np.asarray(ref).tolist()


def test_glm41v_short_clip_differs_only_under_transformers():
    """3 frames at 30 fps (0.1 s): 0.2 frames at 2 fps. vLLM's sampler yields none (mmprep
    raises); transformers samples frame 0 and pads it to [0, 0]: one temporal group."""
    meta = VideoMetadata(3, 30.0, 480, 640)
    with pytest.raises(InvalidInputError, match="too short"):
        mmprep.load("glm-4.1v").plan_video(meta)
    plan = mmprep.load("glm-4.1v", engine="transformers").plan_video(meta)
    assert plan.frame_indices == (0, 0) and plan.grid[0] == 1
    assert transformers.Glm4vVideoProcessor().sample_frames(_hf_meta(3, 30.0)).tolist() == [0, 0]
    counts = mmprep.load("glm-4.1v", engine="transformers").count_video_tokens([3], [30.0], [480], [640])
    assert counts.tolist() == [plan.num_tokens]


GLM_IMG = "<|begin_of_image|><|image|><|end_of_image|>"
GLM_VID = "<|begin_of_video|><|video|><|end_of_video|>"


@pytest.fixture(scope="module", params=["glm-4.1v", "glm-4.6v"])
def glm_processor(request):
    prefix = "Glm4v" if request.param == "glm-4.1v" else "Glm46V"
    parts = [getattr(transformers, prefix + n) for n in ("Processor", "ImageProcessor", "VideoProcessor")]
    tok = hf_tokenizer(glm_tokenizer(), pad_token="<|endoftext|>")
    return request.param, parts[0](image_processor=parts[1](), tokenizer=tok, video_processor=parts[2]())


@settings(max_examples=12)
@given(st.integers(4, 120), st.sampled_from([10.0, 24.0, 29.97, 30.0]), st.integers(28, 90), st.integers(28, 90),
       st.integers(0, 2**31 - 1))
def test_transformers_glm_mixed_prompt_ids_match(glm_processor, total, fps, h, w, seed):
    """Image + video prompt through Glm4vProcessor / Glm46VProcessor vs ``engine="transformers"``:
    the same ids (timestamps as idx / fps, video slots as <|image|>) and token types."""
    name, proc = glm_processor
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 255, (total, h, w, 3), dtype=np.uint8)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    text = f"{GLM_IMG}a {GLM_VID} b"
    ref = proc(text=[text], images=[image], videos=[video], video_metadata=[_hf_meta(total, fps, h, w)],
               return_tensors="np")
    fam = mmprep.load(name, engine="transformers")
    ours = fam.prompt(text, images=[(40, 60)], videos=[VideoMetadata(total, fps, h, w)], tokenizer=glm_tokenizer())
    assert ours["input_ids"].tolist() == ref["input_ids"].tolist()
    assert ours["mm_token_type_ids"].tolist() == ref["mm_token_type_ids"].tolist()
    image_id = proc.tokenizer.convert_tokens_to_ids("<|image|>")
    plans = ours.plans
    assert int((ref["input_ids"] == image_id).sum()) == plans["image"][0][0].num_tokens + plans["video"][0][0].num_tokens
    try:
        seed_ids = mmprep.load(name).prompt(text, images=[(40, 60)], videos=[VideoMetadata(total, fps, h, w)],
                                            tokenizer=glm_tokenizer())["input_ids"]
    except InvalidInputError:  # GLM-4.1V: a clip under one sampling period has no frame in vLLM
        assert name == "glm-4.1v" and total / fps < 0.5
        return
    assert int((seed_ids == image_id).sum()) == plans["image"][0][0].num_tokens  # vLLM: <|video|> slots


def _omni_video_processor(**kw):
    return omni_mod.NemotronH_Omni_Reasoning_V3VideoProcessor(norm_mean=[0.5] * 3, norm_std=[0.5] * 3, **kw)


@settings(max_examples=500)
@given(st.integers(1, 8000), st.integers(1, 8000))
def test_transformers_omni_video_frame_grid_matches(h, w):
    vp = _omni_video_processor()
    wp, hp = vp._compute_target_patches(h, w)
    plan = mmprep.load(OMNI, engine="transformers").plan_video(VideoMetadata(2, 1.0, h, w))
    assert (plan.height, plan.width) == (hp * 16, wp * 16)
    assert plan.tokens_per_frame == hp * wp // 4
    counts = mmprep.load(OMNI, engine="transformers").count_video_tokens([2], [1.0], [h], [w])
    assert counts.tolist() == [plan.num_tokens] == [hp * wp // 4]


@settings(max_examples=500)
@given(st.integers(1, 16000 * 1200))
def test_transformers_omni_audio_tokens_match(n):
    proc = omni_mod.NemotronH_Omni_Reasoning_V3Processor(
        image_processor=omni_mod.NemotronH_Omni_Reasoning_V3ImageProcessor(), video_processor=_omni_video_processor(),
        tokenizer=hf_tokenizer(nemotron_tokenizer()), feature_extractor=transformers.ParakeetFeatureExtractor())
    omni = mmprep.load(OMNI, engine="transformers", audio_subsampling_factor=proc.audio_subsampling_factor)
    assert int(omni.count_audio_tokens([n])[0]) == max(1, proc._estimate_audio_num_embeddings(n))


@settings(max_examples=25)
@given(st.lists(st.tuples(st.integers(16, 3000), st.integers(16, 3000)), min_size=1, max_size=4),
       st.integers(300, 4000))
def test_transformers_omni_images_get_one_budget_each(sizes, max_model_len):
    """The Omni image processor gives every image the first-round budget and never rescales;
    the seed's tiler shares the request's budget over rounds (counts differ when it binds)."""
    ip = omni_mod.NemotronH_Omni_Reasoning_V3ImageProcessor(max_model_len=max_model_len)
    images = [np.zeros((h, w, 3), np.uint8) for h, w in sizes]
    ref = np.asarray(ip(images=images, return_tensors="np")["image_grid_hw"]).tolist()
    omni = mmprep.load(OMNI, engine="transformers", max_model_len=max_model_len)
    req = omni.plan_request(sizes)
    assert [list(p.grid[1:]) for p in req.images] == ref
    e = omni.explain("", images=sizes)
    assert [it.num_tokens for it in e.items] == [p.num_tokens for p in req.images]


def test_omni_budget_rule_changes_counts_when_it_binds():
    sizes = [(3000, 4000), (2000, 2000)]
    seed = mmprep.load(OMNI, max_model_len=3000).plan_request(sizes)
    tr = mmprep.load(OMNI, engine="transformers", max_model_len=3000).plan_request(sizes)
    assert seed.num_tokens_per_image == (1485, 1482) and seed.rounds == 2
    assert tr.num_tokens_per_image == (2961, 2970) and tr.rounds == 1


def test_transformers_omni_prompt_ids_match():
    """Two images, a 7-frame video (tubelets, timestamps) and 8 s of audio through the Omni
    processor vs ``engine="transformers"`` (its tokenizer adds BOS: add_special_tokens=True)."""
    proc = omni_mod.NemotronH_Omni_Reasoning_V3Processor(
        image_processor=omni_mod.NemotronH_Omni_Reasoning_V3ImageProcessor(max_model_len=3000),
        video_processor=_omni_video_processor(), tokenizer=hf_tokenizer(nemotron_tokenizer()),
        feature_extractor=transformers.ParakeetFeatureExtractor())
    rng = np.random.default_rng(0)
    idx = [0, 5, 9, 14, 20, 25, 29]
    video = rng.integers(0, 255, (len(idx), 72, 128, 3), dtype=np.uint8)
    images = [rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), rng.integers(0, 255, (500, 500, 3), dtype=np.uint8)]
    text = "<image><image>a <video> b <so_embedding>"
    ref = proc(text=[text], images=images, videos=[video], video_metadata=[_hf_meta(30, 30.0, 72, 128, idx)],
               audio=[np.zeros(16000 * 8, np.float32)], do_sample_frames=False)
    omni = mmprep.load(OMNI, engine="transformers", max_model_len=3000,
                       audio_subsampling_factor=proc.audio_subsampling_factor)
    plan = omni.plan_video(VideoMetadata(30, 30.0, 72, 128), frame_indices=idx)
    ours = omni.prompt(text, images=[(600, 800), (500, 500)], videos=[plan], audios=[16000 * 8],
                       tokenizer=nemotron_tokenizer(), add_special_tokens=True)
    assert ours["input_ids"][0].tolist() == np.asarray(ref["input_ids"][0]).tolist()
    assert math.ceil(len(idx) / 2) == plan.grid[0] == 4


@pytest.mark.parametrize("size", [(300, 500), (37, 1001), (1024, 768)])
def test_transformers_omni_image_pixels_match(size):
    """Float resize without clamping (resize_rule "torch_float") vs the Omni image processor."""
    img = np.random.default_rng(size[0]).integers(0, 255, (*size, 3), dtype=np.uint8)
    ref = omni_mod.NemotronH_Omni_Reasoning_V3ImageProcessor(max_model_len=400)(images=[img], return_tensors="np")
    ours = mmprep.load(OMNI, engine="transformers", max_model_len=400).pixels([img])
    assert ours.grids[:, 1:].tolist() == np.asarray(ref["image_grid_hw"]).tolist()
    np.testing.assert_allclose(ours.pixel_values, np.asarray(ref["pixel_values"]), atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="uint8"):
        mmprep.load(OMNI, engine="transformers").pixels([img], dtype="uint8")


def test_vllm_resize_is_torch_bicubic_on_uint8():
    """vLLM main ``_bicubic_from_ndarray``: F.interpolate on the uint8 NCHW tensor, then / 255."""
    import torch
    import torch.nn.functional as F

    img = np.random.default_rng(1).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    omni = mmprep.load(OMNI, engine="vllm", max_model_len=400)
    plan = omni.plan_image(300, 500)
    x = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], size=(plan.height, plan.width),
                      mode="bicubic", align_corners=False, antialias=True)[0].numpy() / 255.0
    x = (x - np.reshape(omni.spec.norm_mean, (3, 1, 1))) / np.reshape(omni.spec.norm_std, (3, 1, 1))
    hp, wp = plan.grid[1:]
    want = x.reshape(3, hp, 16, wp, 16).transpose(1, 3, 0, 2, 4).reshape(hp * wp, 3 * 256)
    np.testing.assert_allclose(omni.pixels([img]).pixel_values, want, atol=1e-5, rtol=0)


def test_omni_video_pixels_follow_the_tubelet_rule():
    """vLLM main ``video_to_pixel_values``: every frame resized (uint8 torch bicubic) to the
    target size, one row per frame; transformers' video processor: float resize, frames packed in
    tubelets of 2 (the last padded with a copy): the same values regrouped."""
    import torch
    import torch.nn.functional as F

    frames = np.random.default_rng(2).integers(0, 255, (7, 72, 128, 3), dtype=np.uint8)
    vllm = mmprep.load(OMNI, engine="vllm").video_pixels([(frames, 30.0)])
    plan = vllm.plans[0]
    assert plan.num_frames == 7 and (plan.height, plan.width) == (384, 672) and plan.grid == (4, 24, 42)
    x = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2), size=(384, 672), mode="bicubic",
                      align_corners=False, antialias=True).numpy() / 255.0
    mean, std = (np.reshape(v, (1, 3, 1, 1)) for v in (mmprep.load(OMNI).spec.norm_mean, mmprep.load(OMNI).spec.norm_std))
    np.testing.assert_allclose(vllm.pixel_values, (x - mean) / std, atol=1e-5, rtol=0)

    omni = mmprep.load(OMNI, engine="transformers")
    ours = omni.video_pixels([(frames, 30.0)]).pixel_values
    vp = omni_mod.NemotronH_Omni_Reasoning_V3VideoProcessor(norm_mean=list(omni.spec.norm_mean),
                                                            norm_std=list(omni.spec.norm_std))
    ref = np.asarray(vp(videos=[frames], do_sample_frames=False, return_tensors="np")["pixel_values_videos"])[0]
    padded = np.concatenate([ours, ours[-1:]])  # 8 frames -> 4 tubelets of 2 x 3 channels
    assert ref.shape == (4, 6, 384, 672)
    np.testing.assert_allclose(padded.reshape(4, 6, 384, 672), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("total, h, w", [(45, 72, 128), (33, 100, 60), (1, 64, 64)])
def test_transformers_omni_video_keeps_every_frame(total, h, w):
    """The Omni video processor samples nothing by default: every frame, ceil(T/2) tubelets."""
    frames = np.zeros((total, h, w, 3), np.uint8)
    out = _omni_video_processor()(videos=[frames], return_tensors="np")
    tubelets, _, th, tw = np.asarray(out["pixel_values_videos"]).shape[1:]
    omni = mmprep.load(OMNI, engine="transformers")
    assert int(omni.count_video_tokens([total], [30.0], [h], [w])[0]) == tubelets * (th // 16) * (tw // 16) // 4
    plan = omni.plan_video(VideoMetadata(total, 30.0, h, w))
    assert plan.num_frames == total and plan.grid == (tubelets, th // 16, tw // 16)
    assert mmprep.load(OMNI).plan_video(VideoMetadata(total, 30.0, h, w)).num_frames == min(total, 32)
