"""Hostile media and command lines (issue 20): truncated files, rotated videos, FIFOs, odd names.

Metadata-only counts may trust a well-formed header; every path that decodes checks the media
against the plan and raises a ``MediaError`` naming both numbers. Rotated phone videos are
planned and decoded as OpenCV (vLLM's default loader) shows them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmprep
from mmprep import MediaError, VideoMetadata
from mmprep.cli import main

av = pytest.importorskip("av")
sf = pytest.importorskip("soundfile")
ROOT = Path(__file__).resolve().parents[1]


def write_video(path, frames=60, size=(240, 320), rotation=None, faststart=False, fps=30):
    """H.264 in MP4; a corner patch marks the orientation; ``faststart`` puts the header first
    (so a cut file keeps a header that promises every frame)."""
    h, w = size
    out = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {})
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for i in range(frames):
        img = np.full((h, w, 3), (i * 3) % 256, np.uint8)
        img[: h // 2, : w // 3] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return str(path)


def full_decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


# -- truncated media -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    d = tmp_path_factory.mktemp("cut")
    full = Path(write_video(d / "full.mp4", frames=60, faststart=True))
    cut = d / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    return str(full), str(cut)


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v", "nemotron-nano-vl"])
def test_truncated_video_is_planned_from_its_header_but_never_decoded_silently(cut_video, name):
    full, cut = cut_video
    fam = mmprep.load(name)
    assert mmprep.probe_video(cut).total_frames == 60  # the header promises 60 frames
    assert fam.plan_video(cut) == fam.plan_video(full)  # metadata only: the header is trusted
    with pytest.raises(MediaError, match=r"truncated or its header disagrees.*60 frames.*holds \d+"):
        fam.video_pixels([cut])
    fam.video_pixels([full])


def test_reading_frames_of_a_truncated_video_names_the_cut(cut_video):
    _, cut = cut_video
    with pytest.raises(MediaError, match="truncated"):
        mmprep.read_frames(cut, [0, 59])
    with pytest.raises(MediaError, match="truncated"):  # asked to match the header's count
        mmprep.read_frames(cut, [0], expect_frames=60)
    held = mmprep.probe_video(cut, count_packets=True).total_frames
    assert 0 < held < 60
    assert mmprep.read_frames(cut, [0, held - 1]).shape[0] == 2  # frames that exist still read


def _mp3(seconds=3.0, rate=16_000):
    x = (0.3 * np.sin(np.arange(int(seconds * rate)) / 10)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="MP3", subtype="MPEG_LAYER_III")
    return buf.getvalue()


def test_truncated_mp3_header_count_and_decode_never_mix():
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    omni = mmprep.load("nemotron-3-nano-omni")
    whole = _mp3()
    cut = whole[: len(whole) // 2]
    assert omni.plan_audio(cut) == omni.plan_audio(whole)  # the header: 3 s either way
    with pytest.raises(MediaError, match=r"truncated or its header disagrees.*48000 samples, decoding gives \d+"):
        omni.audio_features([cut])
    with pytest.raises(MediaError, match="truncated"):
        mmprep.read_audio(cut)
    plan = omni.audio_features([whole]).plans[0]
    assert plan == omni.plan_audio(whole)


# -- rotated videos --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    d = tmp_path_factory.mktemp("rot")
    return {deg: write_video(d / f"r{deg}.mp4", frames=40, rotation=deg) for deg in (None, 90, -90, 180, 270, 45)}


@pytest.mark.parametrize("deg,turns", [(None, 0), (90, 1), (-90, 3), (180, 2), (270, 3), (45, 0)])
def test_display_rotation_is_applied_like_opencv(rotated, deg, turns):
    path = rotated[deg]
    meta = mmprep.probe_video(path)
    assert (meta.height, meta.width) == ((320, 240) if turns % 2 else (240, 320))
    assert meta.rotation == 90 * turns
    raw = full_decode(path)
    got = mmprep.read_frames(path, [0, 5, 39])
    assert np.array_equal(got, np.rot90(raw[[0, 5, 39]], turns, axes=(1, 2)))
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(path)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[:2] == got.shape[1:3]  # OpenCV shows the same orientation
    assert np.abs(frame[..., ::-1].astype(int) - got[0]).mean() < 4  # (its YUV->RGB differs slightly)


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v"])
def test_rotated_video_plans_counts_and_pixels_as_displayed(rotated, name):
    fam = mmprep.load(name)
    path = rotated[90]
    plan = fam.plan_video(path)
    assert plan == fam.plan_video(path)
    shown = fam.plan_video(VideoMetadata(40, 30.0, 320, 240))
    assert (plan.height, plan.width, plan.grid, plan.num_tokens) == (shown.height, shown.width, shown.grid,
                                                                     shown.num_tokens)
    assert plan.height > plan.width
    assert fam.count_video_tokens(40, 30.0, 320, 240).tolist() == [plan.num_tokens]
    frames = np.rot90(full_decode(path), 1, axes=(1, 2))
    from_file = fam.video_pixels([path])
    from_frames = fam.video_pixels([(np.ascontiguousarray(frames), 30.0)])
    assert np.array_equal(from_file.grids, from_frames.grids)
    assert np.array_equal(from_file.pixel_values, from_frames.pixel_values)


def test_rotated_video_counts_in_the_cli(rotated, capsys):
    code = main(["count", "--model", "glm-4.1v", "--json", rotated[90]])
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code == 0 and (row["height"], row["width"]) == (320, 240)


# -- the command line ------------------------------------------------------------------------


def test_count_exits_nonzero_when_any_file_fails(tmp_path, capsys):
    from PIL import Image

    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(good)
    code = main(["count", "--model", "glm-4.1v", str(good), str(tmp_path / "missing.png")])
    out = capsys.readouterr().out
    assert code == 1 and "missing.png" in out and "total:" in out and "(1 errors)" in out
    assert main(["count", "--model", "glm-4.1v", str(good)]) == 0


def test_a_directory_argument_is_called_a_directory(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    code = main(["count", "--model", "glm-4.1v", str(tmp_path / "photos")])
    assert code == 1 and "is a directory" in capsys.readouterr().out


def test_a_newline_in_a_file_name_keeps_one_row_per_file(tmp_path, capsys):
    from PIL import Image

    odd = tmp_path / "two\nlines\t.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(odd)
    code = main(["count", "--model", "glm-4.1v", str(odd), str(tmp_path / "gone\n.png")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and len(lines) == 4  # header, two rows, total
    assert "two\\nlines\\t.png" in lines[1] and "gone\\n.png" in lines[2]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_media_is_refused_without_hanging(tmp_path):
    for name in ("pipe.wav", "pipe.mp4", "pipe.png"):
        os.mkfifo(tmp_path / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "mmprep.cli", "count", "--model", "nemotron-3-nano-omni",
         *(str(tmp_path / n) for n in ("pipe.wav", "pipe.mp4", "pipe.png"))],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert done.returncode == 1 and done.stdout.count("FIFO") == 3


def test_a_bad_checkpoint_is_an_error_line_not_a_traceback(tmp_path, capsys):
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["count", "--model", str(tmp_path), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmprep: error:") and "Traceback" not in err
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm4v", "patch_size": "x"}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"patch_size": float("nan")}))
    assert main(["plan", "--model", str(tmp_path), "--height", "10", "--width", "10"]) == 2
    assert "patch_size" in capsys.readouterr().err


def test_a_long_audio_file_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(601 * 1000, np.float32), 1000, subtype="PCM_U8")  # 601 s at 1 kHz
    from mmprep.families.nemotron import audio

    def no_decode(*a, **k):
        raise AssertionError("decoded an audio file the header already refuses")

    monkeypatch.setattr(audio, "load_audio", no_decode)
    omni = mmprep.load("nemotron-3-nano-omni")
    with pytest.raises(mmprep.InvalidInputError, match="longer than the maximum 600"):
        omni.audio_features([str(path)])
