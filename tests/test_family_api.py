"""One API for every family: the same methods, keyword-only media, ``on_error`` on every count,
typed probes, ``Batch`` like transformers' ``BatchFeature``, and the package's layout rules."""

from __future__ import annotations

import ast
import inspect
import io
import wave
from pathlib import Path

import numpy as np
import pytest

import mmprep
from mmprep import (
    AudioMetadata, Family, ImageMetadata, InvalidInputError, UnsupportedModalityError, VideoMetadata,
)

NAMES = mmprep.MODEL_NAMES
SRC = Path(mmprep.__file__).parent
METHODS = ("plan_image", "plan_video", "plan_audio", "count_image_tokens", "count_video_tokens",
           "count_audio_tokens", "pixels", "video_pixels", "audio_features", "process", "prompt", "edges")


@pytest.mark.parametrize("name", NAMES)
def test_every_family_has_the_whole_method_set(name):
    fam = mmprep.load(name)
    assert isinstance(fam, Family)
    for method in METHODS:
        assert callable(getattr(fam, method)), (name, method)
    for method in ("count_image_tokens", "count_video_tokens", "count_audio_tokens"):
        assert inspect.signature(getattr(fam, method)).parameters["on_error"].kind is inspect.Parameter.KEYWORD_ONLY
    for method in ("process", "prompt"):
        params = inspect.signature(getattr(fam, method)).parameters
        for media in ("images", "videos", "audios", "tokenizer"):
            assert params[media].kind is inspect.Parameter.KEYWORD_ONLY, (name, method, media)
    for method in ("pixels", "video_pixels"):
        assert inspect.signature(getattr(fam, method)).parameters["backend"].default == "reference"


@pytest.mark.parametrize("name", NAMES)
def test_count_image_tokens_minus_one_keeps_the_good_items(name):
    fam = mmprep.load(name)
    h, w = np.array([480, 0, 1080]), np.array([640, 640, 1920])
    got = fam.count_image_tokens(h, w, on_error="minus_one")
    assert got[1] == -1
    assert got[[0, 2]].tolist() == [fam.plan_image(480, 640).num_tokens, fam.plan_image(1080, 1920).num_tokens]
    with pytest.raises(InvalidInputError, match="item 1"):
        fam.count_image_tokens(h, w)


@pytest.mark.parametrize("name", ["glm-4.1v", "glm-4.6v", "nemotron-nano-vl", "nemotron-3-nano-omni"])
def test_count_video_tokens_minus_one_and_equal_to_the_plans(name):
    fam = mmprep.load(name)
    total, fps, h, w = [300, 300, 90, 2], [30.0, -1.0, 29.97, 1500.0], [480, 480, 720, 480], [640, 640, 1280, 640]
    got = fam.count_video_tokens(total, fps, h, w, on_error="minus_one")
    for i in range(4):
        try:
            want = fam.plan_video(VideoMetadata(total[i], fps[i], h[i], w[i])).num_tokens
        except mmprep.MmprepError:
            want = -1
        assert got[i] == want, (i, got[i], want)
    assert got[1] == -1
    with pytest.raises(InvalidInputError, match="item 1"):
        fam.count_video_tokens(total, fps, h, w)


def test_count_audio_tokens_minus_one():
    omni = mmprep.load("nemotron-3-nano-omni")
    got = omni.count_audio_tokens(np.array([16000, 0, 32000]), on_error="minus_one")
    assert got.tolist() == [omni.plan_audio(16000).num_tokens, -1, omni.plan_audio(32000).num_tokens]
    with pytest.raises(InvalidInputError, match="item 1"):
        omni.count_audio_tokens(np.array([16000, 0]))


@pytest.mark.parametrize("name, missing", [
    ("isaac", "video"), ("isaac", "audio"), ("glm-4.1v", "audio"), ("nemotron-nano-vl", "audio"),
])
def test_a_missing_modality_raises_from_every_method(name, missing):
    fam = mmprep.load(name)
    calls = {
        "video": [lambda: fam.plan_video(VideoMetadata(10, 1.0, 64, 64)), lambda: fam.count_video_tokens(10, 1.0, 64, 64),
                  lambda: fam.video_pixels([np.zeros((2, 8, 8, 3), np.uint8)]),
                  lambda: fam.prompt("x", videos=[VideoMetadata(10, 1.0, 64, 64)], tokenizer=None)],
        "audio": [lambda: fam.plan_audio(16000), lambda: fam.count_audio_tokens(16000),
                  lambda: fam.audio_features([np.zeros(16000, np.float32)]),
                  lambda: fam.prompt("x", audios=[16000], tokenizer=None)],
    }[missing]
    for call in calls:
        with pytest.raises(UnsupportedModalityError, match=missing):
            call()


def test_probes_return_typed_metadata_that_still_unpack(tmp_path):
    from PIL import Image

    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    meta = mmprep.probe_image(tmp_path / "a.png")
    assert isinstance(meta, ImageMetadata) and meta.height == 20 and meta.width == 30
    h, w = meta
    assert (h, w) == (20, 30)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(8000)
        f.writeframes(np.zeros(4000, np.int16).tobytes())
    audio = mmprep.probe_audio(buf.getvalue())
    assert isinstance(audio, AudioMetadata) and audio.num_samples == 4000 and audio.sampling_rate == 8000
    n, rate, seconds = audio
    assert seconds == 0.5
    assert isinstance(mmprep.probe_video(SRC.parents[1] / "examples" / "clip_320x240.mp4"), VideoMetadata)


def test_batch_reads_like_batch_feature():
    torch = pytest.importorskip("torch")
    from tests.tokenizers_fixture import glm_tokenizer

    b = mmprep.load("glm-4.1v").prompt("a <|image|> b", images=[(56, 56)], tokenizer=glm_tokenizer(),
                                       return_tensors="pt")
    assert b.input_ids is b["input_ids"] and "input_ids" in b and "input_ids" in b.keys()
    with pytest.raises(AttributeError, match="nope"):
        b.nope
    moved = b.to(torch.float64)
    assert moved.input_ids.dtype == b.input_ids.dtype  # ids keep their integer dtype
    assert moved.to("cpu").input_ids.device.type == "cpu" and moved.plans == b.plans


# -- the layout rules (docs/architecture.md) ----------------------------------------------------

FAMILY_WORDS = ("glm", "isaac", "nemotron", "omni", "internvl")


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        yield ".".join(("mmprep", *rel.with_suffix("").parts)).removesuffix(".__init__"), path, rel


def test_shared_modules_never_import_a_family():
    for mod, path, rel in _modules():
        if rel.parts[0] in ("families", "models") or rel.name == "loading.py":
            continue  # loading.py is the one table that names the families
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert "families" not in target, f"{rel} imports {target}"


def test_no_family_named_definition_outside_the_family_packages():
    for mod, path, rel in _modules():
        if rel.parts[0] in ("families", "models"):
            continue
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            for n in names:
                assert not any(w in n.lower() for w in FAMILY_WORDS), f"{rel}: {n}"


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    mods = {m: (p, r) for m, p, r in _modules()}
    for mod, (path, rel) in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:  # module-level imports only (lazy ones break cycles)
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in mods else target)
        graph[mod] = {d for d in deps if d in mods and d != mod}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1 and not d.startswith(m + ".") and not m.startswith(d + "."):
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, d]))
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
