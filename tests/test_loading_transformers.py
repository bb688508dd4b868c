"""mmprep.load on checkpoint directories written by transformers 5 (``save_pretrained``).

The peer is transformers itself: Nemotron-H-Omni (``nemotron_h_omni``) configs and processors
built in code with non-default values, saved to a tmp dir, loaded by mmprep and planned as
transformers' own processor plans them. Also: ``force_image_size: null``, ``audio_config`` vs
``sound_config``, the 12B tile layout, GLM video processors whose patch/merge sizes differ from
the image processor's, and bad values naming the file and key.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import mmprep
from mmprep import InvalidInputError, MmprepError, VideoMetadata


transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

from tests._torchvision import import_torchvision

import_torchvision()

from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer, nemotron_tokenizer

from transformers.video_utils import VideoMetadata as HfVideoMetadata  # noqa: E402

omni_mod = pytest.importorskip("transformers.models.nemotron_h_omni")
OmniConfig = omni_mod.NemotronH_Omni_Reasoning_V3_Config
OmniImageProcessor = omni_mod.NemotronH_Omni_Reasoning_V3ImageProcessor
OmniVideoProcessor = omni_mod.NemotronH_Omni_Reasoning_V3VideoProcessor
OmniProcessor = omni_mod.NemotronH_Omni_Reasoning_V3Processor

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not CLIP's: mmprep's default would be wrong


def _write(d, name, obj):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(obj))


def _read(d, name):
    return json.loads((d / name).read_text())


def omni_dir(path, *, image=None, video=None, config=None, processor=None):
    """save_pretrained of transformers' Omni config + processor (image, video, Parakeet, tokenizer)."""
    cfg = OmniConfig(**{"audio_config": {"num_mel_bins": 80, "subsampling_factor": 4}, **(config or {})})
    cfg.save_pretrained(path)
    proc = OmniProcessor(
        image_processor=OmniImageProcessor(**(image or {})),
        video_processor=OmniVideoProcessor(**{"norm_mean": list(MEAN), "norm_std": list(STD), **(video or {})}),
        tokenizer=hf_tokenizer(nemotron_tokenizer()),
        feature_extractor=transformers.ParakeetFeatureExtractor(),
        **{"audio_subsampling_factor": 4, **(processor or {})},
    )
    proc.save_pretrained(path)
    return proc


# three budgets: the max_num_patches cap binds; max_model_len binds; no cap (max_num_patches 0)
BUDGETS = {
    "cap": {"min_num_patches": 512, "max_num_patches": 4096, "max_model_len": 32768},
    "context": {"min_num_patches": 256, "max_num_patches": 13312, "max_model_len": 700},
    "uncapped": {"min_num_patches": 300, "max_num_patches": 0, "max_model_len": 1500},
}
SIZES = [(10, 10), (224, 224), (480, 640), (512, 512), (1080, 1920), (3000, 200), (37, 1001), (2048, 1536)]


@pytest.fixture(scope="module", params=sorted(BUDGETS))
def omni(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"omni-{request.param}")
    kw = BUDGETS[request.param]
    proc = omni_dir(path, image=dict(kw, norm_mean=list(MEAN), norm_std=list(STD)))
    return path, proc, kw


def test_transformers_writes_what_mmprep_reads(omni):
    path, _, kw = omni
    config, processor = _read(path, "config.json"), _read(path, "processor_config.json")
    assert config["model_type"] == "nemotron_h_omni" and config["force_image_size"] is None
    assert "audio_config" in config and "sound_config" not in config
    image = processor["image_processor"]
    assert image["image_processor_type"] == "NemotronH_Omni_Reasoning_V3ImageProcessor"
    assert image["image_mean"] == list(MEAN)  # norm_mean is renamed on the way in
    assert {k: image[k] for k in kw} == kw
    assert processor["video_processor"]["norm_mean"] == list(MEAN)
    assert processor["feature_extractor"]["feature_size"] == 80 and processor["audio_subsampling_factor"] == 4


def test_transformers_omni_dir_is_the_dynamic_tiler_with_its_values(omni):
    path, _, kw = omni
    nem = mmprep.load(path)
    s = nem.spec
    assert type(nem).__name__ == "NemotronVL" and s.dynamic and not s.use_thumbnail
    assert (s.min_num_patches, s.max_num_patches, s.max_model_len) == (
        kw["min_num_patches"], kw["max_num_patches"], kw["max_model_len"])
    assert s.norm_mean == MEAN and s.norm_std == STD
    assert (s.patch_size, s.downsample_ratio, s.image_size) == (16, 0.5, 512)  # force_image_size null
    assert s.has_audio and s.audio_num_mel_bins == 80 and s.audio_subsampling_factor == 4
    assert (s.audio_sampling_rate, s.audio_hop_length, s.audio_n_fft, s.audio_win_length) == (16000, 160, 512, 400)
    assert s.video_pruning_rate == 0.0  # transformers' config default: EVS off


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_image_plans_equal_the_transformers_processor(omni, size):
    path, proc, _ = omni
    nem = mmprep.load(path)
    image = np.full((*size, 3), 127, np.uint8)
    out = proc(images=[image], text="<image>")
    grid_h, grid_w = (int(x) for x in out["image_grid_hw"][0])
    tokens = int(np.sum(np.asarray(out["input_ids"]) == proc.image_token_id))
    plan = nem.plan_image(*size)
    assert plan.grid == (1, grid_h, grid_w)
    assert plan.num_tokens == tokens == grid_h * grid_w // 4
    assert (plan.height, plan.width) == (grid_h * 16, grid_w * 16)
    assert int(nem.count_image_tokens([size[0]], [size[1]])[0]) == tokens


def test_pixels_use_the_processor_normalization(omni):
    path, proc, _ = omni
    nem = mmprep.load(path)
    rng = np.random.default_rng(0)
    h, w = (32 * 16, 16 * 16) if nem.spec.max_model_len > 700 else (16 * 16, 16 * 16)  # grids that need no resize
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    theirs = proc.image_processor(images=[image], return_tensors="np")
    assert nem.plan_image(h, w).grid == (1, *(int(x) for x in theirs["image_grid_hw"][0]))
    ours = nem.pixels([image]).pixel_values
    np.testing.assert_allclose(ours, theirs["pixel_values"], atol=2e-5)


def test_image_processor_saved_alone_is_omni_too(tmp_path):
    OmniImageProcessor(min_num_patches=128, max_num_patches=2048, max_model_len=4096).save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").is_file()
    s = mmprep.load(tmp_path).spec
    assert s.dynamic and (s.min_num_patches, s.max_num_patches, s.max_model_len) == (128, 2048, 4096)
    assert not s.has_audio  # no config.json, no feature extractor


def test_config_alone_is_omni_with_the_preset_patch_bounds(tmp_path):
    OmniConfig().save_pretrained(tmp_path)
    s = mmprep.load(tmp_path).spec
    assert s.dynamic and (s.min_num_patches, s.max_num_patches) == (1024, 13312)
    assert s.image_size == 512 and not s.has_audio  # audio_config: null


def test_video_processor_patch_and_downsample_go_to_the_video_fields(tmp_path):
    omni_dir(tmp_path, video={"patch_size": 32, "downsample_ratio": 0.25})
    nem = mmprep.load(tmp_path)
    s = nem.spec
    assert (s.patch_size, s.downsample_ratio) == (16, 0.5)
    assert (s.video_patch_size, s.video_downsample_ratio, s.video_patch) == (32, 0.25, 32)
    assert s.tokens_per_tile == 256 and s.tokens_per_frame == (512 // 32) ** 2 // 16 == 16
    plan = nem.plan_video(VideoMetadata(8, 2.0, 480, 640))
    assert plan.grid == (8, 16, 16) and plan.tokens_per_frame == 16 and plan.num_tokens == 8 * 16
    assert nem.count_video_tokens(8, 2.0, 480, 640).tolist() == [8 * 16]
    # without a video processor file the video follows the image settings
    assert mmprep.load("nemotron-3-nano-omni").spec.tokens_per_frame == 256


# -- sound_config (released checkpoints) and audio_config (transformers) ------------------------

RELEASED = {
    "model_type": "NemotronH_Nano_Omni_Reasoning_V3", "architectures": ["NemotronH_Nano_Omni_Reasoning_V3"],
    "force_image_size": 512, "patch_size": 16, "downsample_ratio": 0.5, "use_thumbnail": False,
    "vision_config": {"args": {"min_num_patches": 1024, "max_num_patches": 13312}},
    "video_pruning_rate": 0.7,
}


@pytest.mark.parametrize("key", ["sound_config", "audio_config"])
def test_audio_from_sound_config_or_audio_config(tmp_path, key):
    _write(tmp_path, "config.json", {**RELEASED, key: {"model_type": "parakeet", "num_mel_bins": 64,
                                                       "subsampling_factor": 4, "sampling_rate": 8000}})
    s = mmprep.load(tmp_path).spec
    assert s.has_audio and (s.audio_num_mel_bins, s.audio_subsampling_factor, s.audio_sampling_rate) == (64, 4, 8000)


def test_audio_config_wins_over_sound_config_and_null_turns_audio_off(tmp_path):
    _write(tmp_path / "both", "config.json", {**RELEASED, "sound_config": {"num_mel_bins": 64},
                                              "audio_config": {"num_mel_bins": 96}})
    assert mmprep.load(tmp_path / "both").spec.audio_num_mel_bins == 96
    _write(tmp_path / "off", "config.json", {**RELEASED, "audio_config": None})
    assert not mmprep.load(tmp_path / "off").spec.has_audio


def test_transformers_config_from_released_sound_config_round_trips(tmp_path):
    cfg = OmniConfig(sound_config={"num_mel_bins": 64, "subsampling_factor": 4})
    assert cfg.audio_config.num_mel_bins == 64
    cfg.save_pretrained(tmp_path)
    assert "sound_config" not in _read(tmp_path, "config.json")
    s = mmprep.load(tmp_path).spec
    assert s.has_audio and s.audio_num_mel_bins == 64 and s.audio_subsampling_factor == 4


# -- the 12B tile layout, force_image_size null ------------------------------------------------

TILES = {
    "model_type": "NemotronH_Nano_VL_V2", "architectures": ["NemotronH_Nano_VL_V2"],
    "force_image_size": 512, "patch_size": 16, "downsample_ratio": 0.5, "use_thumbnail": True,
    "ps_version": "v2", "max_sequence_length": 131072, "vision_config": {"model_type": "radio"},
}


def test_12b_tile_directory_still_plans_tiles(tmp_path):
    _write(tmp_path, "config.json", {**TILES, "norm_mean": list(MEAN), "norm_std": list(STD)})
    _write(tmp_path, "preprocessor_config.json", {"max_num_tiles": 6, "norm_mean": [0.1, 0.1, 0.1]})
    nem = mmprep.load(tmp_path)
    s = nem.spec
    assert not s.dynamic and s.use_thumbnail and not s.has_audio and s.max_num_tiles == 6
    assert s.norm_mean == MEAN  # config.json's norm_mean, as vLLM reads it
    assert nem.plan_image(1080, 1920).num_tokens == mmprep.load("nemotron-nano-vl", max_num_tiles=6).plan_image(
        1080, 1920).num_tokens


def test_force_image_size_null_keeps_the_default_tile(tmp_path):
    _write(tmp_path, "config.json", {**TILES, "force_image_size": None})
    s = mmprep.load(tmp_path).spec
    assert s.image_size == 512 and s.tokens_per_tile == 256 and not s.dynamic


# -- GLM: the video processor's patch/merge sizes ----------------------------------------------


def _glm_processors(video_kw):
    glm = pytest.importorskip("transformers.models.glm4v")
    image = glm.Glm4vImageProcessor(patch_size=14, merge_size=2)
    video = glm.Glm4vVideoProcessor(**video_kw)
    return glm, image, video


@pytest.mark.parametrize("layout", ["processor_config", "separate_files"])
def test_glm_video_plan_uses_the_video_processor_patch_and_merge(tmp_path, layout):
    glm, image, video = _glm_processors({"patch_size": 16, "merge_size": 1, "size": {"shortest_edge": 4096,
                                                                               "longest_edge": 2_000_000}})
    _write(tmp_path, "config.json", {"model_type": "glm4v", "architectures": ["Glm4vForConditionalGeneration"]})
    if layout == "processor_config":
        glm.Glm4vProcessor(image_processor=image, tokenizer=hf_tokenizer(glm_tokenizer()),
                           video_processor=video).save_pretrained(tmp_path)
        assert _read(tmp_path, "processor_config.json")["video_processor"]["patch_size"] == 16
    else:
        image.save_pretrained(tmp_path)
        video.save_pretrained(tmp_path)
        assert _read(tmp_path, "video_preprocessor_config.json")["merge_size"] == 1
    g = mmprep.load(tmp_path)
    s = g.spec
    assert (s.patch_size, s.merge_size, s.video_patch_size, s.video_merge_size) == (14, 2, 16, 1)
    assert (s.factor, s.video_factor) == (28, 16)
    for h, w in [(480, 640), (720, 1280), (100, 333)]:
        plan = g.plan_video(VideoMetadata(60, 30.0, h, w))
        frames = np.zeros((plan.num_frames, h, w, 3), np.uint8)
        theirs = video(videos=[frames], do_sample_frames=False, return_tensors="np")
        assert tuple(int(x) for x in theirs["video_grid_thw"][0]) == plan.grid
        t, gh, gw = plan.grid
        assert plan.tokens_per_frame == gh * gw // 1 and plan.num_tokens == t * gh * gw
        assert g.count_video_tokens(60, 30.0, h, w).tolist() == [plan.num_tokens]
        # images keep the image processor's sizes
        ours = g.plan_image(h, w)
        theirs_img = image(images=[np.zeros((h, w, 3), np.uint8)], return_tensors="np")
        assert ours.grid == tuple(int(x) for x in theirs_img["image_grid_thw"][0])


def test_glm_without_video_sizes_follows_the_image_ones(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "glm4v"})
    _write(tmp_path, "preprocessor_config.json", {"image_processor_type": "Glm4vImageProcessor", "patch_size": 16})
    s = mmprep.load(tmp_path).spec
    assert s.video_patch_size is None and s.video_patch == 16 and s.video_factor == 32


# -- bad values: MmprepError naming the file and the key -----------------------------------------


@pytest.mark.parametrize("files,match", [
    ({"config.json": {**RELEASED, "force_image_size": "512px"}}, r"config\.json.*'force_image_size'"),
    ({"config.json": {**RELEASED, "force_image_size": 0}}, r"config\.json.*'force_image_size'"),
    ({"config.json": {**RELEASED, "audio_config": "parakeet"}}, r"config\.json.*'audio_config'"),
    ({"config.json": {**RELEASED, "sound_config": {"num_mel_bins": "many"}}}, r"config\.json sound_config.*'num_mel_bins'"),
    ({"config.json": {**RELEASED, "vision_config": {"args": {"min_num_patches": [1]}}}},
     r"config\.json vision_config args.*'min_num_patches'"),
    ({"config.json": {"model_type": "nemotron_h_omni"},
      "processor_config.json": {"image_processor": {"min_num_patches": -5}}},
     r"processor_config\.json image_processor.*'min_num_patches'"),
    ({"config.json": {"model_type": "nemotron_h_omni"},
      "processor_config.json": {"image_processor": {"image_mean": [0.5, 0.5]}}},
     r"processor_config\.json image_processor.*'image_mean'"),
    ({"config.json": {"model_type": "nemotron_h_omni"},
      "processor_config.json": {"video_processor": {"patch_size": 7.5}}},
     r"processor_config\.json video_processor.*'patch_size'"),
    ({"config.json": {"model_type": "nemotron_h_omni"},
      "preprocessor_config.json": {"max_model_len": None, "max_num_patches": "lots"}},
     r"preprocessor_config\.json.*'max_num_patches'"),
    ({"config.json": {"model_type": "nemotron_h_omni"}, "processor_config.json": {"audio_sampling_rate": True}},
     r"processor_config\.json.*'audio_sampling_rate'"),
    ({"config.json": {"model_type": "nemotron_h_omni"}, "processor_config.json": {"image_processor": [1, 2]}},
     r"processor_config\.json.*'image_processor'"),
    ({"config.json": {"model_type": "glm4v"}, "video_preprocessor_config.json": {"merge_size": "2"}},
     r"video_preprocessor_config\.json.*'merge_size'"),
    ({"config.json": {"model_type": "glm4v"}, "processor_config.json": {"video_processor": {"size": 5}}},
     r"processor_config\.json video_processor.*'size'"),
    ({"config.json": {"model_type": "glm4v", "text_config": {"rope_parameters": {"mrope_section": [8, 12.5, 12]}}}},
     r"config\.json text_config rope_parameters.*'mrope_section'"),
])
def test_bad_values_name_the_file_and_key(tmp_path, files, match):
    for name, obj in files.items():
        _write(tmp_path, name, obj)
    with pytest.raises(MmprepError, match=match) as e:
        mmprep.load(tmp_path)
    assert isinstance(e.value, InvalidInputError) and str(tmp_path) in str(e.value)


def test_values_the_tiler_cannot_use_raise_an_mmprep_error(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "nemotron_h_omni"})
    _write(tmp_path, "processor_config.json", {"image_processor": {"downsample_ratio": 0.25}})
    with pytest.raises(InvalidInputError, match="downsample_ratio"):
        mmprep.load(tmp_path)
    _write(tmp_path, "config.json", ["not", "an", "object"])
    with pytest.raises(mmprep.UnknownModelError, match="config.json"):
        mmprep.load(tmp_path)


def test_separate_files_win_over_processor_config_sections(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "nemotron_h_omni"})
    _write(tmp_path, "processor_config.json", {"image_processor": {"min_num_patches": 100, "max_model_len": 2000},
                                               "video_processor": {"patch_size": 8}})
    _write(tmp_path, "preprocessor_config.json", {"min_num_patches": 200})
    _write(tmp_path, "video_preprocessor_config.json", {"patch_size": 32})
    s = mmprep.load(tmp_path).spec
    assert (s.min_num_patches, s.max_model_len, s.video_patch_size) == (200, 2000, 32)


def test_transformers_profile_follows_a_saved_processor_with_other_tubelets(tmp_path):
    """transformers' own processor saved with 3-frame tubelets and a 576-patch square frame: the
    placeholder run and the pixel tensor equal mmprep's ``engine="transformers"`` plan."""
    vision = {"model_type": "radio", "video_temporal_patch_size": 3}
    proc = omni_dir(tmp_path, config={"video_temporal_patch_size": 3, "vision_config": vision},
                    video={"video_target_num_patches": 576, "video_maintain_aspect_ratio": False},
                    processor={"video_temporal_patch_dim": 3})
    assert _read(tmp_path, "config.json")["vision_config"]["video_temporal_patch_size"] == 3
    nem = mmprep.load(tmp_path, engine="transformers")
    s = nem.spec
    assert (s.video_temporal_patch_size, s.video_target_num_patches, s.video_maintain_aspect_ratio) == (3, 576, False)
    frames = np.zeros((7, 72, 128, 3), np.uint8)
    meta = HfVideoMetadata(total_num_frames=7, fps=30.0, duration=7 / 30, height=72, width=128,
                           frames_indices=list(range(7)))
    out = proc(text=["<video>"], videos=[frames], video_metadata=[meta], do_sample_frames=False, return_tensors="np")
    plan = nem.plan_video(VideoMetadata(7, 30.0, 72, 128))
    assert np.asarray(out["pixel_values_videos"]).shape[1:] == (3, 9, 384, 384)  # ceil(7/3), 3*3 channels, 24x24 patches
    assert plan.grid == (3, 24, 24) and plan.num_tokens == 3 * 144
    assert int(np.sum(np.asarray(out["input_ids"]) == proc.image_token_id)) == plan.num_tokens
    assert nem.count_video_tokens(7, 30.0, 72, 128).tolist() == [3 * 144]
    assert mmprep.load(tmp_path).count_video_tokens(7, 30.0, 72, 128).tolist() == [7 * 256]  # the seed: tiles
