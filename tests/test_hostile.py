"""Hostile and careless inputs (issue 20): every one ends in an ``MmprepError`` or the right answer,
within seconds and bounded memory.

Inputs that once hung or exhausted memory run in a subprocess with a wall-clock timeout and an
address-space limit, so a regression fails the test instead of hanging the suite. The rest run
in process. Fuzzing with hypothesis lives in ``test_hostile_fuzz.py``; media (truncated files,
rotated videos) and the CLI in ``test_hostile_media.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mmprep
from mmprep import (
    BudgetError,
    ImagePlan,
    InvalidInputError,
    MmprepError,
    UnknownModelError,
    VideoMetadata,
)
from tests.tokenizers_fixture import glm_tokenizer, isaac_tokenizer, nemotron_tokenizer

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 2 << 30  # bytes of address space for a bounded case
TIME_LIMIT = 60  # s, wall clock for a bounded case (each takes ~1 s; the margin is for busy machines)


def run_bounded(code: str, *, memory: int = MEMORY_LIMIT, timeout: float = TIME_LIMIT) -> str:
    """Run ``code`` (with ``mmprep`` imported) in a fresh interpreter under a memory limit.

    Returns ``"MmprepError: <class>: <message>"`` or ``"returned: <printed value>"``; a timeout,
    a MemoryError or any other exception fails the test.
    """
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    program = "\n".join([
        "import resource, sys",
        f"resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))",
        "import mmprep",
        "result = None",
        "try:",
        body,
        "except mmprep.MmprepError as e:",
        "    print('MmprepError:', type(e).__name__ + ':', e)",
        "else:",
        "    print('returned:', result)",
    ])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False,
                              timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s:\n{code}")
    assert done.returncode == 0, f"crashed (rc {done.returncode}):\n{code}\n{done.stderr[-2000:]}"
    return done.stdout.strip().splitlines()[-1]


# -- hangs and unbounded work (subprocess, time and memory bound) --------------------------------


@pytest.mark.parametrize("code,expect", [
    # the bisection cannot converge below float spacing: refused at load
    ('mmprep.load("isaac", eps=1e-17).plan_image(4000, 4000)', "MmprepError: InvalidInputError: IsaacSpec.eps"),
    ('result = mmprep.load("isaac", eps=1e-12).plan_image(4000, 4000).num_tokens', "returned: 1521"),
    # the ratio table: refused above MAX_NUM_TILES, built in O(n log n) below it
    ('mmprep.load("nemotron-nano-vl", max_num_tiles=10**6)', "MmprepError: InvalidInputError: NemotronSpec.max_num_tiles"),
    ('result = mmprep.load("nemotron-nano-vl").plan_image(1000, 1000, max_num_tiles=4096).num_tokens',
     "returned: 1280"),
    ('mmprep.load("nemotron-nano-vl").plan_image(1000, 1000, max_num_tiles=4097)', "MmprepError: InvalidInputError"),
    # audio rates: soxr hung at 1e300 and ran out of memory at 1e-300
    ('import numpy as np\nmmprep.load("nemotron-3-nano-omni").audio_features([np.zeros(1000, np.float32)], sampling_rate=1e300)',
     "MmprepError: InvalidInputError: item 0: sampling rate must be in"),
    ('import numpy as np\nmmprep.load("nemotron-3-nano-omni").audio_features([np.zeros(1000, np.float32)], sampling_rate=1e-300)',
     "MmprepError: InvalidInputError: item 0: resampling"),
    ('import numpy as np\nmmprep.load("nemotron-3-nano-omni").plan_audio((np.zeros(1000, np.float32), 1e-300))',
     "MmprepError: InvalidInputError"),
    ('import numpy as np\nmmprep.read_audio((np.zeros(1000, np.float32), 1e-300))', "MmprepError: InvalidInputError: resampling"),
    # the GLM-4.6V sampler allocated memory in proportion to the frame count
    ('result = mmprep.load("glm-4.6v").plan_video(mmprep.VideoMetadata(10**9, 30.0, 240, 320)).num_frames',
     "returned: 640"),
    (('g = mmprep.load("glm-4.6v")\n'
     'result = [g.plan_video(mmprep.VideoMetadata(n, 30.0, 240, 320)).num_tokens for n in (10**9, 3 * 10**10)]\n'
     'result += g.count_video_tokens([10**9, 3 * 10**10], 30.0, 240, 320).tolist()'),
     "returned: [28160, 28160, 28160, 28160]"),
    ('mmprep.load("glm-4.6v").count_video_tokens(3 * 10**10 + 30, 30.0, 240, 320)', "MmprepError: InvalidInputError"),
    # a hand-built plan that would have allocated gigabytes of ids
    (('from tests.tokenizers_fixture import glm_tokenizer\n'
     'mmprep.load("glm-4.1v").prompt("<|image|>", images=[mmprep.ImagePlan(10, 10, 28, 28, (1, 2, 2), 10**9)],'
     ' tokenizer=glm_tokenizer())'), "MmprepError: InvalidInputError: sample 0: image 0: num_tokens"),
])
def test_pathological_inputs_end_within_time_and_memory(code, expect):
    assert run_bounded(code).startswith(expect)


def test_max_num_tiles_from_a_checkpoint_file_is_refused_quickly(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "NemotronH_Nano_VL_V2", "vision_config": {}}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"max_num_tiles": 10**6}))
    out = run_bounded(f"mmprep.load({str(tmp_path)!r})")
    assert out.startswith("MmprepError") and "max_num_tiles" in out and "4096" in out


def test_ratio_table_equals_vllms_triple_loop():
    from mmprep.families.nemotron.tiles import (
        internvl_target_ratios,
        internvl_target_ratios_reference,
    )

    for lo in range(1, 6):
        for hi in range(lo, 48):
            assert internvl_target_ratios(lo, hi) == internvl_target_ratios_reference(lo, hi), (lo, hi)
    assert internvl_target_ratios(2, 120) == internvl_target_ratios_reference(2, 120)


def test_glm46v_bounded_loop_equals_the_unbounded_sampler(monkeypatch):
    from mmprep.families.glm4v import sampling

    rng = np.random.default_rng(0)
    cases = [(int(rng.integers(1, 50_000)), float(rng.choice([30.0, 29.97, 24.0, 1.0, 0.5, rng.uniform(0.2, 120)])))
             for _ in range(300)]
    metas = [(n, {"fps": fps, "total_num_frames": n, "duration": n / fps}) for n, fps in cases]
    bounded = [sampling.glm46v_sample_frames(n, meta) for n, meta in metas]
    monkeypatch.setattr(sampling, "glm46v_loop",
                        lambda m, f, t, tf, ms, max_picks=None: sampling.glm46v_loop_reference(m, f, t, tf, ms))
    assert bounded == [sampling.glm46v_sample_frames(n, meta) for n, meta in metas]


# -- raw Python errors that must be MmprepError ------------------------------------------------


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"])
@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan"), float("inf"), "30", None, 1e300])
def test_video_metadata_fps_is_checked_where_it_enters(name, fps):
    fam = mmprep.load(name)
    with pytest.raises(InvalidInputError, match="fps"):
        fam.plan_video(VideoMetadata(60, fps, 240, 320))


@pytest.mark.parametrize("total", [0, -5, 2.5, float("nan"), "60", None, 10**20])
def test_video_metadata_frame_count_is_checked(total):
    with pytest.raises(InvalidInputError, match="total_frames"):
        mmprep.load("glm-4.1v").plan_video(VideoMetadata(total, 30.0, 240, 320))


@pytest.mark.parametrize("kw", [
    {"max_model_len": float("nan")}, {"max_model_len": float("inf")}, {"max_model_len": "x"},
    {"max_model_len": 0}, {"max_model_len": 4}, {"max_model_len": -1}, {"max_model_len": True},
    {"text_len": float("inf")}, {"text_len": -1}, {"text_len": 1.5}, {"text_len": "3"},
])
def test_plan_request_arguments(kw):
    with pytest.raises(InvalidInputError):
        mmprep.load("nemotron-3-nano-omni").plan_request([(480, 640)], **kw)


@pytest.mark.parametrize("images", [[5], [(1, 2, 3)], ["ab"], 7, "images", [(480, None)], [None]])
def test_plan_request_items_must_be_pairs(images):
    with pytest.raises(InvalidInputError):
        mmprep.load("nemotron-3-nano-omni").plan_request(images)


def test_plan_request_none_means_the_spec_context():
    omni = mmprep.load("nemotron-3-nano-omni")
    assert omni.plan_request([(480, 640)], max_model_len=None) == omni.plan_request([(480, 640)])


@pytest.mark.parametrize("tiles", [6.5, "6", 0, -1, True, None.__class__])
def test_max_num_tiles_argument(tiles):
    with pytest.raises(InvalidInputError, match="max_num_tiles"):
        mmprep.load("nemotron-nano-vl").plan_image(480, 640, max_num_tiles=tiles)


@pytest.mark.parametrize("tiles", [6.0, "6", None, 10**6])
def test_max_num_tiles_spec_field(tiles):
    with pytest.raises(InvalidInputError, match="max_num_tiles"):
        mmprep.load("nemotron-nano-vl", max_num_tiles=tiles)


@pytest.mark.parametrize("name,tok,marker", [
    ("glm-4.1v", glm_tokenizer, "<|image|>"), ("isaac", isaac_tokenizer, "<image>"),
    ("nemotron-nano-vl", nemotron_tokenizer, "<image>"),
])
def test_prompt_arguments(name, tok, marker):
    fam = mmprep.load(name)
    for text in (5, 3.5, {"a": 1}, b"bytes"):
        with pytest.raises(InvalidInputError, match="text"):
            fam.prompt(text, tokenizer=tok())
    for pad in ("x", -1, 1.5, float("nan")):
        with pytest.raises(InvalidInputError, match="pad_token_id"):
            fam.prompt("hello", tokenizer=tok(), pad_token_id=pad)
    for bad in (ImagePlan(10, 10, 28, 28, (1, 2, 2), -5), ImagePlan(10, 10, 28, 28, (1, 2, 2), 2.5),
                ImagePlan(10, 10, 28, 28, (1, -2, 2), 1), ImagePlan(10, 10, 28, 28, (1, 2), 1)):
        with pytest.raises(InvalidInputError):
            fam.prompt(marker, images=[bad], tokenizer=tok())


def test_prompt_size_is_capped_before_allocating():
    from mmprep.validate import MAX_TOKENS

    plan = ImagePlan(10, 10, 28, 28, (1, 2, 2), MAX_TOKENS)
    with pytest.raises(BudgetError, match=str(MAX_TOKENS)):
        mmprep.load("glm-4.1v").prompt("<|image|>", images=[plan], tokenizer=glm_tokenizer())


# -- silent wrong answers ------------------------------------------------------------------------


@pytest.mark.parametrize("name", mmprep.MODEL_NAMES)
@pytest.mark.parametrize("h,w", [(2**32, 2**32), (2**29, 1), (1, 2**29), (2**27, 2**27)])
def test_sizes_whose_arithmetic_would_overflow_are_refused(name, h, w):
    fam = mmprep.load(name)
    with pytest.raises(InvalidInputError, match="limit"):
        fam.plan_image(h, w)
    with pytest.raises(InvalidInputError, match="limit"):
        fam.count_image_tokens([h], [w])
    assert fam.count_image_tokens([480, h], [640, w], on_error="minus_one")[1] == -1


@pytest.mark.parametrize("name", mmprep.MODEL_NAMES)
def test_largest_sizes_still_plan_and_count_alike(name):
    from mmprep.validate import MAX_AREA, MAX_SIDE

    fam = mmprep.load(name, **({"max_image_pixels": None} if name == "isaac" else {}))
    for h, w in ((2**26, 2**26), (MAX_SIDE, MAX_AREA // MAX_SIDE), (1, MAX_SIDE), (3, 2**25)):
        try:
            want = fam.plan_image(h, w).num_tokens
        except MmprepError:
            want = -1
        assert fam.count_image_tokens([h], [w], on_error="minus_one").tolist() == [want], (h, w)


def test_audio_lengths_whose_arithmetic_would_overflow_are_refused():
    omni = mmprep.load("nemotron-3-nano-omni")
    for kw in ({"seconds": 1e15}, {"seconds": float("inf")}, {"num_samples": 10**18}, {"num_samples": 2**63 - 1}):
        with pytest.raises(InvalidInputError, match="audio"):
            omni.count_audio_tokens(**kw)
    assert omni.count_audio_tokens(seconds=[1.0, 1e15], on_error="minus_one").tolist() == [13, -1]
    from mmprep.families.nemotron.audio import max_samples

    longest = max_samples(omni.spec)
    assert omni.count_audio_tokens(longest) > 0 and omni.plan_audio(longest, max_seconds=0).num_samples == longest
    with pytest.raises(InvalidInputError, match="limit"):
        omni.plan_audio(longest + 1, max_seconds=0)


@pytest.mark.parametrize("name,field,value", [
    ("glm-4.1v", "image_std", (0, 0, 0)), ("glm-4.1v", "image_std", (0.5, -0.5, 0.5)),
    ("isaac", "image_std", (0.0, 0.5, 0.5)), ("nemotron-nano-vl", "norm_std", (0, 0, 0)),
    ("glm-4.1v", "image_mean", (0.5,)), ("isaac", "image_mean", (0.5, 0.5)),
    ("nemotron-nano-vl", "norm_mean", (0.5,)), ("glm-4.1v", "image_mean", (0.5, float("nan"), 0.5)),
    ("glm-4.1v", "image_min_pixels", 10**8), ("glm-4.6v", "video_min_pixels", 10**9),
    ("nemotron-3-nano-omni", "min_num_patches", 20_000), ("isaac", "eps", 1000),
    ("isaac", "eps", 1e-17), ("isaac", "eps", 1.0), ("nemotron-nano-vl", "downsample_ratio", 0.3),
    ("nemotron-nano-vl", "downsample_ratio", 2.0), ("nemotron-nano-vl", "video_downsample_ratio", 0.3),
    ("nemotron-3-nano-omni", "max_model_len", 0), ("nemotron-3-nano-omni", "max_model_len", 4),
    ("nemotron-3-nano-omni", "audio_max_seconds", float("nan")),
    ("nemotron-3-nano-omni", "audio_max_seconds", -1.0), ("glm-4.1v", "mrope_section", (8, 12)),
])
def test_impossible_spec_values_are_refused(name, field, value):
    with pytest.raises(InvalidInputError):
        mmprep.load(name, **{field: value})


def test_nemotron_tiles_need_image_size_a_multiple_of_the_patch_group():
    nemo = mmprep.load("nemotron-nano-vl", image_size=500)  # the reference's video prompt takes it
    with pytest.raises(InvalidInputError, match="image_size"):
        nemo.plan_image(480, 640)
    with pytest.raises(InvalidInputError, match="image_size"):
        nemo.count_image_tokens([480], [640])
    assert nemo.plan_video(VideoMetadata(60, 30.0, 240, 320)).num_tokens > 0


@pytest.mark.parametrize("max_seconds", [float("nan"), -1.0, float("inf"), "600", None.__class__])
def test_audio_max_seconds_argument_cannot_lift_the_cap_by_accident(max_seconds):
    omni = mmprep.load("nemotron-3-nano-omni")
    with pytest.raises(InvalidInputError, match="max_seconds"):
        omni.plan_audio(16_000 * 700, max_seconds=max_seconds)
    with pytest.raises(InvalidInputError, match="600"):
        omni.plan_audio(16_000 * 700)
    assert omni.plan_audio(16_000 * 700, max_seconds=0).num_samples == 16_000 * 700


@pytest.mark.parametrize("name", ["glm-4.1v", "nemotron-nano-vl"])
@pytest.mark.parametrize("indices", [[0.7], [0, 1.5], [True], ["3"], [float("nan")], [], 5, "0"])
def test_chosen_frame_indices_are_never_truncated(name, indices):
    with pytest.raises(InvalidInputError, match="frame_indices"):
        mmprep.load(name).plan_video(VideoMetadata(60, 30.0, 240, 320), frame_indices=indices, fps=30.0)


@pytest.mark.parametrize("name", ["glm-4.1v", "nemotron-nano-vl"])
def test_whole_float_frame_indices_are_ints(name):
    fam = mmprep.load(name)
    meta = VideoMetadata(60, 30.0, 240, 320)
    assert fam.plan_video(meta, frame_indices=[0.0, 30.0]) == fam.plan_video(meta, frame_indices=[0, 30])


def test_huge_finite_audio_samples_are_refused_not_turned_into_nan():
    omni = mmprep.load("nemotron-3-nano-omni")
    x = np.full(16_000, 1e38, np.float32)
    with pytest.raises(InvalidInputError, match="beyond"):
        omni.audio_features([x])
    loud = np.sin(np.arange(16_000, dtype=np.float32)) * 30_000  # int16-scaled floats still work
    assert np.isfinite(omni.audio_features([loud]).features).all()


@pytest.mark.parametrize("name", mmprep.MODEL_NAMES)
def test_minus_one_keeps_the_other_items(name):
    fam = mmprep.load(name)
    want = int(fam.plan_image(480, 640).num_tokens)
    for bad in (float("nan"), 3.5, float("inf"), -480.0, 0.0, 2.0**60):
        got = fam.count_image_tokens([480.0, bad, 480.0], [640.0, 640.0, 640.0], on_error="minus_one")
        assert got.tolist() == [want, -1, want], bad
    with pytest.raises(InvalidInputError, match="item 1"):
        fam.count_image_tokens([480.0, float("nan")], [640.0, 640.0])


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"])
def test_minus_one_keeps_the_other_videos(name):
    fam = mmprep.load(name)
    want = fam.plan_video(VideoMetadata(60, 30.0, 240, 320)).num_tokens
    got = fam.count_video_tokens([60, 60, 60.0, 60, 2.5], [30.0, 0.0, 30.0, float("nan"), 30.0],
                                 [240.0, 240, 240, 240, 240], [320, 320, 320, 320, 320], on_error="minus_one")
    assert got.tolist() == [want, -1, want, -1, -1]
    with pytest.raises(InvalidInputError, match="item 1"):
        fam.count_video_tokens([60, 60], [30.0, 0.0], 240, 320)


# -- loading: names, paths and checkpoint JSON ---------------------------------------------------


def test_registered_names_win_over_folders_of_the_same_name(tmp_path, monkeypatch):
    (tmp_path / "isaac").mkdir()
    (tmp_path / "isaac" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    monkeypatch.chdir(tmp_path)
    assert type(mmprep.load("isaac")).__name__ == "Isaac"
    with pytest.raises(UnknownModelError, match="llama"):  # a path spelling forces the folder
        mmprep.load("./isaac")
    with pytest.raises(UnknownModelError, match="llama"):
        mmprep.load(Path("isaac"))
    for name in ("", "   ", None, 5):
        with pytest.raises(UnknownModelError):
            mmprep.load(name)


HOSTILE_JSON = [float("nan"), 1e400, "x", None, [1, 2], {}, -1, 0, 2**70, 0.5, True, [[[]]]]
CHECKPOINTS = {
    "glm": {"config.json": {"model_type": "glm4v", "text_config": {"rope_parameters": {"mrope_section": [8, 12, 12]}}},
            "preprocessor_config.json": {"patch_size": 14, "merge_size": 2, "size": {"shortest_edge": 12544},
                                         "image_std": [0.5, 0.5, 0.5]},
            "video_preprocessor_config.json": {"fps": 2.0, "size": {"longest_edge": 47040000}}},
    "isaac": {"config.json": {"model_type": "isaac", "text_config": {"head_dim": 64}},
              "processor_config.json": {"max_num_patches": 4096, "min_num_patches": 128, "patch_size": 16,
                                        "pixel_shuffle_scale": 2, "image_mean": [0.5, 0.5, 0.5]}},
    "nemotron": {"config.json": {"model_type": "NemotronH_Nano_VL_V2", "force_image_size": 512, "patch_size": 16,
                                 "downsample_ratio": 0.5, "vision_config": {"args": {}}, "norm_mean": [0.5, 0.5, 0.5]},
                 "preprocessor_config.json": {"max_num_tiles": 12}},
    "omni": {"config.json": {"model_type": "NemotronH_Nano_Omni_Reasoning_V3", "downsample_ratio": 0.5,
                             "vision_config": {"args": {"min_num_patches": 1024, "max_num_patches": 13312}},
                             "sound_config": {"num_mel_bins": 128}, "video_pruning_rate": 0.7},
             "preprocessor_config.json": {"max_model_len": 16384, "feature_extractor": {"hop_length": 160}}},
}


def _key_paths(d, prefix=()):
    for k, v in d.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _key_paths(v, (*prefix, k))


def _load_or_refuse(directory: Path) -> None:
    try:
        mmprep.load(directory).plan_image(480, 640)
    except MmprepError:
        pass


@pytest.mark.parametrize("family", sorted(CHECKPOINTS))
def test_checkpoint_values_of_any_type_raise_mmprep_errors(family, tmp_path):
    base = CHECKPOINTS[family]
    for file, content in base.items():
        for path in _key_paths(content):
            for value in HOSTILE_JSON:
                files = json.loads(json.dumps(base))
                node = files[file]
                for k in path[:-1]:
                    node = node[k]
                node[path[-1]] = value
                for name, data in files.items():
                    (tmp_path / name).write_text(json.dumps(data))
                _load_or_refuse(tmp_path)  # anything but an MmprepError fails the test


@pytest.mark.parametrize("text", [
    "[1, 2]", "null", "5", '"x"', "{", "NaN", "", "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
])
@pytest.mark.parametrize("file", ["config.json", "preprocessor_config.json", "processor_config.json"])
def test_checkpoint_files_that_are_not_json_objects(tmp_path, file, text):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm4v"}))
    (tmp_path / file).write_text(text)
    with pytest.raises(MmprepError):
        mmprep.load(tmp_path)


def test_a_checkpoint_file_that_is_a_directory(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(UnknownModelError, match="not a regular file"):
        mmprep.load(tmp_path)


def test_isaac_from_hf_names_the_file_and_key(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "isaac"}))
    (tmp_path / "processor_config.json").write_text(json.dumps({"patch_size": math.inf}))
    with pytest.raises(InvalidInputError, match="processor_config.json.*patch_size"):
        mmprep.load(tmp_path)


@pytest.mark.parametrize("name", mmprep.MODEL_NAMES)
@pytest.mark.parametrize("key,value", [
    ("threads", "x"), ("threads", 2.5), ("threads", 0), ("threads", 10**9), ("threads", [1]),
    ("backend", np.array([1, 2])), ("return_tensors", None), ("dtype", ["float32"]),
])
def test_pixel_options_are_checked(name, key, value):
    with pytest.raises(InvalidInputError, match=key):
        mmprep.load(name).pixels([np.zeros((32, 48, 3), np.uint8)], **{key: value})


@pytest.mark.parametrize("value", [np.array([1, 2]), ["raise"], None, "ignore"])
def test_on_error_is_checked(value):
    with pytest.raises(InvalidInputError, match="on_error"):
        mmprep.load("glm-4.1v").count_image_tokens([10], [10], on_error=value)


@pytest.mark.parametrize("kw", [{"workers": "x"}, {"workers": 0}, {"backend": None}, {"return_tensors": [1]},
                                {"backend": "torch", "device": "nope"}])
def test_audio_feature_options_are_checked(kw):
    with pytest.raises(InvalidInputError):
        mmprep.load("nemotron-3-nano-omni").audio_features([np.zeros(16_000, np.float32)], **kw)
