"""Video I/O and plans: sparse decoding equals a full decode, probing, plans, counts, pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mmprep
from mmprep import InvalidInputError, MediaError, MmprepError, VideoMetadata
from mmprep.families.nemotron.video import frame_duration_ms
from mmprep.io.video import probe_video, read_frames
from mmprep.testing import strategies as mst
from mmprep.video import vllm_metadata

av = pytest.importorskip("av")


def write_clip(path, frames=90, fps=30, size=(96, 128), gop=30, bframes=2, codec="libx264", fmt=None):
    """A moving random texture with a frame counter patch; H.264 with B-frames."""
    h, w = size
    out = av.open(str(path), "w", format=fmt)
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    opts = {"g": str(gop), "bf": str(bframes)}
    if codec == "libx265":
        opts = {"x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:log-level=error"}
    if codec == "libx264":
        opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
    stream.options = opts
    base = np.random.default_rng(0).integers(0, 256, (h, 2 * w, 3), dtype=np.uint8)
    for i in range(frames):
        img = np.ascontiguousarray(base[:, (3 * i) % w:(3 * i) % w + w])
        img[:16, :16] = (i * 7) % 256
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return str(path)


def full_decode(path):
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    specs = {
        "gop1s": dict(frames=90, gop=30, bframes=2),
        "gop10s": dict(frames=150, fps=15, gop=150, bframes=3),  # one 10 s GOP
        "mkv": dict(frames=60, gop=25, bframes=2, fmt="matroska"),
        "no_b": dict(frames=40, gop=10, bframes=0),
        "raw": dict(frames=40, gop=10, bframes=2, fmt="h264"),  # Annex B, no timestamps
        "hevc": dict(frames=40, gop=15, bframes=2, codec="libx265"),
        "vp9": dict(frames=40, gop=15, bframes=0, codec="libvpx-vp9", fmt="webm"),
        "mpeg4_avi": dict(frames=40, gop=12, bframes=2, codec="mpeg4", fmt="avi"),  # sequential path
    }
    out = {}
    for name, kw in specs.items():
        ext = {None: ".mp4", "matroska": ".mkv", "h264": ".h264", "webm": ".webm", "avi": ".avi"}[kw.get("fmt")]
        path = write_clip(d / (name + ext), **kw)
        out[name] = (path, full_decode(path))
    return out


@pytest.mark.parametrize("name", ["gop1s", "gop10s", "mkv", "no_b", "raw", "hevc", "vp9", "mpeg4_avi"])
def test_read_frames_equals_full_decode(clips, name):
    path, full = clips[name]
    n = len(full)
    rng = np.random.default_rng(1)
    for k in (1, 2, 7, n // 3, n):
        idx = np.sort(rng.choice(n, size=k, replace=False))
        for threads in (1, 2):
            got = read_frames(path, idx, threads=threads)
            assert got.dtype == np.uint8 and got.shape == (k, *full.shape[1:])
            assert np.array_equal(got, full[idx])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 149), min_size=1, max_size=12))
def test_read_frames_any_order_with_repeats(clips, indices):
    path, full = clips["gop10s"]
    assert np.array_equal(read_frames(path, indices), full[indices])


def test_read_frames_from_bytes_and_file_objects(clips):
    path, full = clips["gop1s"]
    data = open(path, "rb").read()
    assert np.array_equal(read_frames(data, [0, 45, 89]), full[[0, 45, 89]])
    assert np.array_equal(read_frames(io.BytesIO(data), [5]), full[[5]])


def test_read_frames_bad_input(clips, tmp_path):
    path, full = clips["gop1s"]
    with pytest.raises(InvalidInputError, match="90 frames"):
        read_frames(path, [0, 90])
    with pytest.raises(InvalidInputError):
        read_frames(path, [-1])
    with pytest.raises(InvalidInputError):
        read_frames(path, [])
    with pytest.raises(MediaError):
        read_frames(b"not a video at all" * 100, [0])
    data = open(path, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom at the end is lost
    with pytest.raises(MediaError):
        read_frames(str(cut), [0])
    with pytest.raises(MediaError):
        probe_video(str(cut))


def test_truncated_matroska_raises_for_frames_past_the_cut(clips, tmp_path):
    path, full = clips["mkv"]
    data = open(path, "rb").read()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    frames = probe_video(str(cut)).total_frames
    assert frames < len(full)  # the header said nothing; packets were counted
    with pytest.raises(MmprepError):
        read_frames(str(cut), [len(full) - 1])
    assert np.array_equal(read_frames(str(cut), [0, 3]), full[[0, 3]])


@pytest.mark.parametrize("name", ["gop1s", "gop10s", "mkv"])
def test_probe_video_matches_the_stream(clips, name):
    path, full = clips[name]
    meta = probe_video(path)
    assert meta.total_frames == len(full)
    assert (meta.height, meta.width) == full.shape[1:3]
    assert meta.fps in (30.0, 15.0)
    assert probe_video(path, count_packets=True).total_frames == len(full)
    assert probe_video(meta) is meta


# -- plans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v"])
def test_glm_plan_from_file_equals_plan_from_metadata(clips, name):
    glm = mmprep.load(name)
    path, full = clips["gop1s"]
    plan = glm.plan_video(path)
    meta = VideoMetadata(len(full), 30.0, *full.shape[1:3])
    again = glm.plan_video(meta)
    assert (again.frame_indices, again.timestamps, again.grid, again.num_tokens) == \
        (plan.frame_indices, plan.timestamps, plan.grid, plan.num_tokens)
    t, gh, gw = plan.grid
    assert t == len(plan.timestamps) == plan.num_frames // 2
    assert plan.tokens_per_frame == gh * gw // 4 and plan.num_tokens == t * plan.tokens_per_frame
    assert plan.height % 28 == 0 and plan.width % 28 == 0
    assert plan.frame_tokens == (plan.tokens_per_frame,) * t


def test_glm46v_plan_of_the_spec_example():
    glm = mmprep.load("glm-4.6v")
    plan = glm.plan_video(VideoMetadata(3600, 30.0, 720, 1280))  # 120 s -> 1 fps x 2 = 240 frames
    assert plan.num_frames == 240 and plan.extra["target_fps"] == 1
    plan = glm.plan_video(VideoMetadata(1800, 30.0, 720, 1280))
    assert (plan.height, plan.width) == (448, 812) and plan.tokens_per_frame == 464  # SPEC §1.2


def test_glm_plan_rejects_videos_too_short_or_without_size():
    glm = mmprep.load("glm-4.1v")
    with pytest.raises(InvalidInputError, match="too short"):
        glm.plan_video(VideoMetadata(4, 30.0, 480, 640))
    with pytest.raises(InvalidInputError):
        glm.plan_video(VideoMetadata(300, 30.0))
    with pytest.raises(MmprepError):
        glm.plan_video(VideoMetadata(300, float("nan"), 480, 640))
    with pytest.raises(MmprepError):
        glm.plan_video(VideoMetadata(0, 30.0, 480, 640))


def test_nemotron_plan_timestamps_and_evs():
    nem = mmprep.load("nemotron-nano-vl")
    plan = nem.plan_video(VideoMetadata(1800, 30.0, 720, 1280))
    assert plan.num_frames == 32 and plan.frame_duration_ms == 33
    assert plan.timestamps == tuple(i * 33 / 1000.0 for i in plan.frame_indices)
    r = int(256 * 32 * (1 - 0.7))  # SPEC T32: 2457, all in the first frame
    assert r == 2457
    assert plan.frame_tokens == (r,) + (0,) * 31 and plan.num_tokens == r and plan.tokens_per_frame == 256
    off = mmprep.load("nemotron-nano-vl", video_pruning_rate=0.0).plan_video(VideoMetadata(1800, 30.0, 720, 1280))
    assert off.frame_tokens == (256,) * 32 and off.num_tokens == 32 * 256
    own = nem.plan_video(VideoMetadata(400, 30.0, 720, 1280), frame_indices=[0, 300])
    assert own.timestamps == (0.0, 9.9)  # T16: 300 * 33 / 1000, not 10.0


def test_nemotron_plan_bad_input():
    nem = mmprep.load("nemotron-nano-vl")
    with pytest.raises(InvalidInputError):
        nem.plan_video(VideoMetadata(100, 1200.0, 64, 64))  # frame_duration_ms would be 0
    with pytest.raises(InvalidInputError):
        nem.plan_video(VideoMetadata(100, 30.0, 64, 64), frame_indices=[100])
    with pytest.raises(InvalidInputError):
        nem.plan_video(VideoMetadata(100, 30.0, 64, 64), loader="decord")
    assert frame_duration_ms(29.97) == 33 and frame_duration_ms(23.976) == 41


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"]), st.data())
def test_count_video_tokens_equals_the_plans(name, data):
    fam = mmprep.load(name)
    # metadata around the family's sampler thresholds and caps (mmprep.testing)
    metas = data.draw(st.lists(mst.video_metadata(fam, max_seconds=700), min_size=1, max_size=6))
    videos = [(m.total_frames, m.fps, m.height, m.width) for m in metas]
    total, fps, h, w = map(np.array, zip(*videos))
    try:
        want = [fam.plan_video(VideoMetadata(*map(lambda v: v.item(), x))).num_tokens
                for x in zip(total, fps, h, w)]
    except MmprepError:
        with pytest.raises(MmprepError):
            fam.count_video_tokens(total, fps, h, w)
        return
    assert fam.count_video_tokens(total, fps, h, w).tolist() == want
    # on_error="minus_one": a bad item among good ones is -1, the others keep their counts
    bad = fam.count_video_tokens(np.append(total, 0), np.append(fps, 30.0), np.append(h, 480), np.append(w, 640),
                                 on_error="minus_one")
    assert bad.tolist() == want + [-1]


def test_count_video_tokens_known_values():
    """Independent of plan_video: SPEC §1.2 video smart_resize and the samplers, worked by hand.

    * 4.1V, 240 frames at 30 fps (8 s): 2 fps -> 16 frames, 8 groups; smart_resize(16, 720, 1280)
      -> 728x1288 (SPEC table) -> 52x92 patches -> 1196 tokens a group -> 9568.
    * 4.6V, 1800 frames at 30 fps (60 s): 2 fps -> 120 frames, 60 groups; -> 448x812 (SPEC table)
      -> 464 a group -> 27840.
    * Nemotron, 1800 frames: 32 frames of one 512px tile, EVS q 0.7 -> int(32 * 256 * 0.3) = 2457.
    """
    glm41, glm46 = mmprep.load("glm-4.1v"), mmprep.load("glm-4.6v")
    assert glm41.count_video_tokens([240], [30.0], [720], [1280]).tolist() == [8 * 1196]
    assert glm46.count_video_tokens([1800], [30.0], [720], [1280]).tolist() == [60 * 464]
    nem = mmprep.load("nemotron-nano-vl")
    assert nem.count_video_tokens([1800], [30.0], [720], [1280]).tolist() == [2457]


def test_count_video_tokens_names_the_bad_item():
    glm = mmprep.load("glm-4.6v")
    with pytest.raises(InvalidInputError, match="item 1"):
        glm.count_video_tokens([300, 300], [30.0, -1.0], [480, 480], [640, 640])


def test_vllm_metadata_is_what_the_opencv_loader_reports():
    md = vllm_metadata(VideoMetadata(300, 29.97, 480, 640, duration=10.2))
    assert md == {"fps": 29.97, "total_num_frames": 300, "duration": 300 / 29.97, "do_sample_frames": True}


# -- pixels ----------------------------------------------------------------------------------


def test_glm_video_pixels_match_transformers(clips):
    from tests._torchvision import import_torchvision

    import_torchvision()
    from transformers.models.glm46v.video_processing_glm46v import Glm46VVideoProcessor

    glm = mmprep.load("glm-4.6v")
    path, full = clips["gop1s"]
    batch = glm.video_pixels([path], backend="reference")
    plan = batch.plans[0]
    hf = Glm46VVideoProcessor()(videos=[full[list(plan.frame_indices)]], do_sample_frames=False, return_tensors="np")
    assert np.asarray(hf["video_grid_thw"]).tolist() == batch.grids.tolist() == [list(plan.grid)]
    np.testing.assert_allclose(batch.pixel_values, hf["pixel_values_videos"], atol=1e-5, rtol=0)
    fast = glm.video_pixels([path, (full, 30.0)])
    assert fast.pixel_values.shape[0] == 2 * batch.pixel_values.shape[0]
    assert fast.grids.tolist() == [list(plan.grid)] * 2


def test_nemotron_video_pixels_shape_and_errors(clips):
    nem = mmprep.load("nemotron-nano-vl")
    path, full = clips["mkv"]
    batch = nem.video_pixels([path])
    assert batch.pixel_values.shape == (32, 3, 512, 512) and batch.grids.tolist() == [[32, 32, 32]]
    with pytest.raises(MmprepError, match="item 1"):
        nem.video_pixels([path, b"garbage" * 50])
    with pytest.raises(InvalidInputError):
        nem.video_pixels([VideoMetadata(10, 30.0, 64, 64)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_glm_frame_counts_equal_the_scalar_samplers(seed):
    from mmprep.families.glm4v import sampling
    from mmprep.families.glm4v.frame_counts import glm41v_frame_counts, glm46v_frame_counts

    rng = np.random.default_rng(seed)
    n = 400
    total = rng.integers(1, [3_000, 200_000, 30][seed], n)
    fps = np.where(rng.random(n) < 0.5, rng.choice([0.7, 1.0, 2.0, 3.0, 6.0, 24.0, 29.97, 30.0, 60.0], n),
                   rng.uniform(0.3, 240, n))
    a = glm41v_frame_counts(total, fps, 2.0, 300)
    b = glm46v_frame_counts(total, fps, 2)
    for i in range(n):
        t, f = int(total[i]), float(fps[i])
        md = {"fps": f, "total_num_frames": t, "duration": t / f, "do_sample_frames": True}
        assert sampling.glm41v_sample_frames(t, md).num_frames == a[i], (t, f)
        assert sampling.glm46v_sample_frames(t, md).num_frames == b[i], (t, f)
