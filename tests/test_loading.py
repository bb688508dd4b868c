"""mmprep.load: names, aliases, overrides, checkpoint directories, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mmprep
from mmprep import UnknownModelError


@pytest.mark.parametrize(
    "name,cls",
    [("isaac", "Isaac"), ("PerceptronAI/Isaac-0.1", "Isaac"), ("nemotron-nano-vl", "NemotronVL"),
     ("nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16", "NemotronVL"), ("glm-4.1v", "Glm4v"),
     ("zai-org/GLM-4.6V-Flash", "Glm4v"), ("GLM-4.6V", "Glm4v"),
     ("nvidia/Nemotron-3-Nano-Omni-30B-A3B-Reasoning-BF16", "NemotronVL")],
)
def test_names_and_repo_ids_load_the_family(name, cls):
    assert type(mmprep.load(name)).__name__ == cls


def test_presets_differ_where_the_checkpoints_do():
    assert mmprep.load("glm-4.6v").spec.version == "4.6v"
    assert mmprep.load("glm-4.6v").spec.video_token_id == 151364
    assert mmprep.load("glm-4.1v").spec.video_token_id == 151344
    omni = mmprep.load("nemotron-3-nano-omni").spec
    assert omni.dynamic and omni.has_audio and not omni.use_thumbnail
    tiles = mmprep.load("nemotron-nano-vl").spec
    assert not tiles.dynamic and tiles.use_thumbnail and tiles.tokens_per_tile == 256


def test_unknown_model_and_unknown_field_raise():
    with pytest.raises(UnknownModelError, match="known: isaac"):
        mmprep.load("llava-1.5")
    with pytest.raises(UnknownModelError, match="max_tiles"):
        mmprep.load("nemotron-nano-vl", max_tiles=6)


def test_overrides_change_the_plan():
    assert mmprep.load("nemotron-nano-vl", max_num_tiles=1).plan_image(1080, 1920).num_tokens == 256


def test_bad_spec_values_raise():
    with pytest.raises(mmprep.InvalidInputError):
        mmprep.load("isaac", min_num_patches=9000, max_num_patches=100)
    with pytest.raises(mmprep.InvalidInputError):
        mmprep.load("nemotron-3-nano-omni", downsample_ratio=0.75)
    with pytest.raises(mmprep.InvalidInputError):
        mmprep.load("nemotron-nano-vl", video_pruning_rate=1.0)


def _write(d, name, obj):
    (d / name).write_text(json.dumps(obj))


def test_glm46v_checkpoint_dir_with_transformers5_processor_config(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "glm4v", "architectures": ["Glm4vForConditionalGeneration"],
                                     "image_token_id": 151363, "video_token_id": 151364})
    _write(tmp_path, "processor_config.json", {
        "processor_class": "Glm46VProcessor",
        "image_processor": {"image_processor_type": "Glm46VImageProcessor", "patch_size": 14,
                            "size": {"shortest_edge": 12544, "longest_edge": 4_000_000}},
        "video_processor": {"size": {"shortest_edge": 12544, "longest_edge": 20_000_000}},
    })
    glm = mmprep.load(tmp_path)
    assert glm.spec.version == "4.6v"
    assert glm.spec.image_max_pixels == 4_000_000 and glm.spec.video_max_pixels == 20_000_000
    assert glm.spec.image_token_id == 151363


def test_glm41v_checkpoint_dir_with_separate_preprocessor_files(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "glm4v"})
    _write(tmp_path, "preprocessor_config.json", {"image_processor_type": "Glm4vImageProcessor",
                                                  "size": {"shortest_edge": 3136, "longest_edge": 1_000_000}})
    _write(tmp_path, "video_preprocessor_config.json", {"size": {"shortest_edge": 3136, "longest_edge": 9_000_000}})
    glm = mmprep.load(tmp_path, image_max_pixels=2_000_000)
    assert glm.spec.version == "4.1v" and glm.spec.image_min_pixels == 3136
    assert glm.spec.image_max_pixels == 2_000_000 and glm.spec.video_max_pixels == 9_000_000


def test_nemotron_omni_checkpoint_dir_turns_on_the_dynamic_tiler_and_audio(tmp_path):
    _write(tmp_path, "config.json", {
        "model_type": "NemotronH_Nano_Omni_Reasoning_V3", "architectures": ["NemotronH_Nano_Omni_Reasoning_V3"],
        "force_image_size": 512, "patch_size": 16, "downsample_ratio": 0.5, "use_thumbnail": False,
        "vision_config": {"args": {"min_num_patches": 1024, "max_num_patches": 13312}},
        "sound_config": {"model_type": "parakeet", "num_mel_bins": 128, "subsampling_factor": 8},
        "video_pruning_rate": 0.7,
    })
    nem = mmprep.load(tmp_path)
    assert nem.spec.dynamic and nem.spec.has_audio and nem.spec.audio_num_mel_bins == 128


def test_isaac_checkpoint_dir(tmp_path):
    _write(tmp_path, "config.json", {"model_type": "isaac", "text_config": {"head_dim": 64}})
    _write(tmp_path, "processor_config.json", {"max_num_patches": 4096, "min_num_patches": 128,
                                               "patch_size": 16, "pixel_shuffle_scale": 2})
    isaac = mmprep.load(tmp_path)
    assert isaac.spec.max_num_patches == 4096 and isaac.spec.mrope_section == (16, 8, 8)


def test_unrecognised_directory_raises(tmp_path):
    with pytest.raises(UnknownModelError):
        mmprep.load(tmp_path)
    _write(tmp_path, "config.json", {"model_type": "llama"})
    with pytest.raises(UnknownModelError, match="llama"):
        mmprep.load(tmp_path)


def test_import_is_light():
    code = ("import sys, mmprep; mmprep.load('glm-4.1v').plan_image(10, 10); "
            "print(sorted(m for m in ('torch', 'cv2', 'transformers', 'av', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name,field,value", [
    ("isaac", "patch_size", 0), ("isaac", "eps", float("nan")), ("glm-4.1v", "merge_size", 2.5),
    ("glm-4.1v", "patch_size", None), ("nemotron-nano-vl", "image_size", float("inf")),
    ("nemotron-3-nano-omni", "factor_max", -1.0), ("nemotron-nano-vl", "use_thumbnail", "yes"),
])
def test_impossible_spec_values_are_refused(name, field, value):
    with pytest.raises(mmprep.InvalidInputError, match=field):
        mmprep.load(name, **{field: value})
