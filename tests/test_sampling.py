"""Video samplers: plain-Python twins of the reference rules, hypothesis properties, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mmprep import MmprepError
from mmprep.families.glm4v import sampling as glm_sampling
from mmprep.families.nemotron import sampling as nem_sampling

FPS = st.sampled_from([1, 2, 5, 8, 10, 12, 15, 23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60, 90, 120]) | st.floats(0.5, 240)


# -- twins: the reference rules written as plain loops (SPEC §3.2, §3.3) ----------------------


def _finish(idx, fps):
    uniq = []
    for i in idx:
        if i not in uniq:
            uniq.append(i)
    if len(uniq) % 2:
        uniq.append(uniq[-1])
    return uniq, [int(i / fps) for i in uniq][::2]


def glm41v_twin(total, md, vp_fps=2, vp_max=300):
    fps = md.get("fps", vp_fps)
    frames = md.get("total_num_frames", total)
    last = frames - 1
    duration = md.get("duration", round(last / fps) + 1)
    if duration <= vp_max:
        idx = [min(last, math.ceil(i * fps / vp_fps)) for i in range(int(math.floor(duration * vp_fps)))]
    elif int(vp_max * vp_fps) >= frames:
        idx = list(range(frames))
    else:
        idx = [min(last, math.ceil(t * fps)) for t in np.linspace(0, duration, int(vp_max * vp_fps))]
    return _finish(idx, fps)


def glm46v_twin(total, md, tps=2):
    fps = md["fps"]
    frames = md.get("total_num_frames", total)
    duration = md.get("duration", round((frames - 1) / fps) + 1)
    eff = min(duration, 2400)
    target = 3 if eff <= 30 else 1 if eff <= 300 else 0.5
    extract_t = min(int(eff * target * tps), 640)
    stamps = [i * (1 / fps) for i in range(frames)]
    max_second = int(duration)
    if frames < extract_t:
        idx = np.linspace(0, frames - 1, extract_t, dtype=int).tolist()
    else:
        idx, cur = [], 0.0
        for k in range(frames):
            if stamps[k] >= cur:
                cur += 1 / (tps * target)
                idx.append(k)
                if cur >= max_second:
                    break
        if len(idx) < extract_t:
            idx = np.linspace(idx[0], idx[-1], extract_t, dtype=int).tolist()
        elif len(idx) > extract_t:
            idx = np.linspace(0, frames - 1, extract_t, dtype=int).tolist()
    return _finish(idx, fps)


def _metadata(draw_frames, fps, duration_mode):
    md = {"fps": fps, "do_sample_frames": True}
    if duration_mode == "given":
        md["duration"] = draw_frames / fps
    if duration_mode != "no_total":
        md["total_num_frames"] = draw_frames
    return md


@given(st.integers(1, 40_000), FPS, st.sampled_from(["given", "absent", "no_total"]))
def test_glm41v_matches_its_twin_and_properties(frames, fps, mode):
    md = _metadata(frames, fps, mode)
    got = glm_sampling.glm41v_sample_frames(frames, md)
    idx, stamps = glm41v_twin(frames, md)
    assert list(got.frame_indices) == idx and list(got.timestamps) == stamps
    _check_properties(got, frames)


@given(st.integers(1, 60_000), FPS, st.sampled_from(["given", "absent", "no_total"]), st.sampled_from([1, 2]))
def test_glm46v_matches_its_twin_and_properties(frames, fps, mode, tps):
    md = _metadata(frames, fps, mode)
    md.pop("do_sample_frames")
    got = glm_sampling.glm46v_sample_frames(frames, md, temporal_patch_size=tps)
    idx, stamps = glm46v_twin(frames, md, tps)
    assert list(got.frame_indices) == idx and list(got.timestamps) == stamps
    assert got.extract_t <= glm_sampling.GLM46V_MAX_FRAMES
    _check_properties(got, frames)


def _check_properties(got, frames):
    idx = list(got.frame_indices)
    assert len(idx) % 2 == 0, "even after padding"
    assert all(0 <= i < frames for i in idx)
    assert idx == sorted(idx), "sampled branches are sorted"
    assert len(set(idx)) >= len(idx) - 1, "only the padding repeats"
    assert len(got.timestamps) == len(idx) // 2, "one timestamp per temporal pair"
    assert list(got.timestamps) == sorted(got.timestamps)


@given(st.integers(0, 3000), st.floats(0.3, 200), st.sampled_from([1, 2]), st.sampled_from([3, 1, 0.5]),
       st.integers(0, 200))
def test_glm46v_vectorized_loop_equals_the_plain_loop(frames, fps, tps, target, max_second):
    a = glm_sampling.glm46v_loop(frames, fps, tps, target, max_second) if frames else []
    assert a == glm_sampling.glm46v_loop_reference(frames, fps, tps, target, max_second)


def test_glm46v_doc_examples():
    s = glm_sampling.glm46v_sample_frames(300, {"fps": 30, "total_num_frames": 300, "duration": 10.0})
    assert s.extract_t == 60 and s.frame_indices[:3] == (0, 5, 10) and s.timestamps[:4] == (0, 0, 0, 1)
    s = glm_sampling.glm46v_sample_frames(90000, {"fps": 25, "total_num_frames": 90000, "duration": 3600.0})
    assert s.extract_t == 640 and s.frame_indices[:6] == (0, 140, 281, 422, 563, 704)
    s = glm_sampling.glm46v_sample_frames(20, {"fps": 2, "total_num_frames": 20, "duration": 10.0})
    assert s.frame_indices == tuple(range(20)) and s.timestamps == tuple(range(10))


def test_glm41v_doc_example_and_passthrough_keeps_order():
    s = glm_sampling.glm41v_sample_frames(300, {"fps": 30, "total_num_frames": 300, "duration": 10.0, "do_sample_frames": True})
    assert s.frame_indices == tuple(range(0, 300, 15)) and s.timestamps == tuple(range(10))
    md = {"fps": 10, "total_num_frames": 100, "do_sample_frames": False, "frames_indices": [50, 10, 10, 70]}
    s = glm_sampling.glm41v_sample_frames(100, md)
    assert s.frame_indices == (50, 10, 70, 70) and s.timestamps == (5, 7)


@pytest.mark.parametrize("md", [
    {"fps": 0, "total_num_frames": 10, "do_sample_frames": True},
    {"fps": -30, "total_num_frames": 10, "do_sample_frames": True},
    {"fps": float("nan"), "total_num_frames": 10, "do_sample_frames": True},
    {"fps": None, "total_num_frames": 10, "do_sample_frames": True},
    {"fps": 30, "total_num_frames": 0, "do_sample_frames": True},
    {"fps": 30, "total_num_frames": 10, "duration": 0, "do_sample_frames": True},
    {"fps": 30, "total_num_frames": 10},  # 4.1V: do_sample_frames is required
    {"fps": 30, "total_num_frames": 10, "do_sample_frames": False},  # no frames_indices
    {"fps": 30, "total_num_frames": 10, "do_sample_frames": False, "frames_indices": [3, 10]},
])
def test_glm41v_bad_metadata_raises(md):
    with pytest.raises(MmprepError):
        glm_sampling.glm41v_sample_frames(10, md)


@pytest.mark.parametrize("md", [{"total_num_frames": 10}, {"fps": 0}, {"fps": 25, "total_num_frames": 0}])
def test_glm46v_bad_metadata_raises(md):
    with pytest.raises(MmprepError):
        glm_sampling.glm46v_sample_frames(10, md)


@given(st.integers(1, 100_000), FPS, st.integers(-1, 64), st.sampled_from([0.0, -1.0, 0.5, 1.0, 2.0]))
def test_opencv_loader_properties(total, fps, num_frames, target_fps):
    s = nem_sampling.opencv_sample_frames(total, fps, num_frames=num_frames, target_fps=target_fps)
    idx = list(s.frame_indices)
    assert 1 <= len(idx) <= total and idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < total
    if num_frames > 0:
        assert len(idx) <= max(1, num_frames)
    assert s.do_sample_frames == (len(idx) == total)


def test_opencv_loader_default_is_32_uniform_frames():
    s = nem_sampling.opencv_sample_frames(1800, 30.0)
    assert len(s.frame_indices) == 32 and s.frame_indices[0] == 0 and s.frame_indices[-1] == 1799
    assert nem_sampling.opencv_sample_frames(10, 30.0).frame_indices == tuple(range(10))


@given(st.integers(1, 50_000), FPS)
def test_opencv_dynamic_is_the_glm41v_rule_sorted_unique_unpadded(total, fps):
    duration = total / fps
    if int(math.floor(duration * 2)) == 0:
        with pytest.raises(MmprepError):
            nem_sampling.opencv_dynamic_sample_frames(total, fps)
        return
    s = nem_sampling.opencv_dynamic_sample_frames(total, fps)
    twin, _ = glm41v_twin(total, {"fps": fps, "total_num_frames": total, "duration": duration})
    assert list(s.frame_indices) == sorted(set(twin))


@pytest.mark.parametrize("args", [(0, 30.0), (10, 0.0), (10, float("inf")), (10, -5.0)])
def test_opencv_loaders_reject_bad_input(args):
    with pytest.raises(MmprepError):
        nem_sampling.opencv_sample_frames(*args)
    with pytest.raises(MmprepError):
        nem_sampling.opencv_dynamic_sample_frames(*args)
