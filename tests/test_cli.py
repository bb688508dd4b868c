"""The mmprep CLI: count (headers only), plan, models."""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from mmprep.cli import COUNT_KEYS, main

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(*argv):
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_count_json_has_exactly_the_documented_keys_and_a_total(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    code, text = run("count", "--model", "glm-4.1v", "--json", str(good), str(bad))
    lines = [json.loads(x) for x in text.splitlines()]
    assert code == 1 and len(lines) == 3  # a failed file makes the exit status non-zero
    assert set(lines[0]) == set(COUNT_KEYS)
    assert lines[0]["num_tokens"] == 391 and lines[0]["grid"] == [1, 34, 46]
    assert lines[0]["resized_height"] == 476 and lines[0]["resized_width"] == 644
    assert set(lines[1]) == set(COUNT_KEYS) | {"error"} and "broken.jpg" in lines[1]["file"]
    assert lines[2] == {"total_tokens": 391, "files": 2, "errors": 1}


def test_count_reads_headers_only(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(path)

    def no_decode(*a, **k):
        raise AssertionError("count decoded pixels")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    code, text = run("count", "--model", "isaac", "--json", str(path))
    assert code == 0 and json.loads(text.splitlines()[0])["height"] == 300


@pytest.mark.parametrize("model", ["isaac", "nemotron-nano-vl", "glm-4.6v"])
def test_count_table_on_the_bundled_images(model):
    images = sorted(str(p) for p in EXAMPLES.glob("*.jpg")) + sorted(str(p) for p in EXAMPLES.glob("*.png"))
    code, text = run("count", "--model", model, *images)
    assert code == 0 and text.splitlines()[-1].endswith(f"in {len(images)} files (0 errors)")


def test_plan_prints_the_plan():
    code, text = run("plan", "--model", "nemotron-nano-vl", "--height", "1080", "--width", "1920")
    row = json.loads(text)
    assert code == 0 and row["num_tokens"] == 2304 and row["tiles"]["cols"] == 4


def test_unknown_model_is_a_clean_error(capsys):
    code, _ = run("plan", "--model", "nope", "--height", "1", "--width", "1")
    assert code == 2 and "unknown model" in capsys.readouterr().err


@pytest.mark.parametrize("engine, tokens", [(None, 1536), ("vllm-seed", 1536), ("transformers", 2520), ("vllm", 756)])
def test_count_engine_follows_that_engines_rules(engine, tokens):
    """The Omni clip (20 frames, 10 fps, 320x240; docs/engines.md): seed 20 tiles, EVS -> 1536;
    transformers 10 tubelets x 252 = 2520; vLLM main the same tubelets, EVS -> 756."""
    clip, image = str(EXAMPLES / "clip_320x240.mp4"), str(EXAMPLES / "street_640x480.jpg")
    flag = [] if engine is None else ["--engine", engine]
    code, text = run("count", "--model", "nemotron-3-nano-omni", *flag, "--json", image, clip)
    rows = [json.loads(x) for x in text.splitlines()]
    assert code == 0 and [r["num_tokens"] for r in rows[:2]] == [300, tokens]
    assert rows[2]["total_tokens"] == 300 + tokens


def test_count_manifest_takes_an_engine(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "v", "text_tokens": 0, "videos": [
        {"frames": 20, "fps": 10.0, "height": 240, "width": 320}]}) + "\n")
    got = {}
    for engine in ("vllm-seed", "transformers", "vllm"):
        code, text = run("count", "--model", "nemotron-3-nano-omni", "--engine", engine, "--manifest", str(manifest),
                         "--no-progress")
        assert code == 0
        got[engine] = json.loads(text)["total_tokens"]
    assert got == {"vllm-seed": 1536, "transformers": 2520, "vllm": 756}


def test_count_refuses_an_unknown_engine(capsys):
    with pytest.raises(SystemExit) as e:
        run("count", "--model", "isaac", "--engine", "sglang", str(EXAMPLES / "street_640x480.jpg"))
    assert e.value.code == 2 and "invalid choice: 'sglang'" in capsys.readouterr().err
