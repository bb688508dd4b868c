"""Dataset manifests: count_dataset equals the plans record by record, bad records are reported
(never dropped), every source (dicts, JSONL, Parquet) gives the same rows, and the CLI's exit
status says whether anything failed."""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import VideoMetadata
from mmprep.cli import main
from mmprep.data.manifest import read_counts

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def random_records(n, seed=0, audio=False, video=True):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r = {"id": f"r{i}", "text_tokens": int(rng.integers(0, 500))}
        k = int(rng.integers(0, 4))
        if k:
            r["images"] = [{"height": int(rng.integers(16, 3000)), "width": int(rng.integers(16, 3000))} for _ in range(k)]
        if video and rng.random() < 0.3:
            r["videos"] = [{"frames": int(rng.integers(20, 3000)), "fps": float(rng.choice([24.0, 29.97, 30.0])),
                            "height": int(rng.integers(64, 1080)), "width": int(rng.integers(64, 1920))}]
        if audio and rng.random() < 0.3:
            r["audios"] = [{"samples": int(rng.integers(4000, 200_000)), "rate": float(rng.choice([16000, 44100]))}]
        out.append(r)
    return out


def expected_total(fam, r):
    total = r["text_tokens"]
    total += sum(fam.plan_image(x["height"], x["width"]).num_tokens for x in r.get("images", []))
    total += sum(fam.plan_video(VideoMetadata(v["frames"], v["fps"], v["height"], v["width"])).num_tokens
                 for v in r.get("videos", []))
    for a in r.get("audios", []):
        n = int(np.ceil(a["samples"] * (16000 / a["rate"]))) if a["rate"] != 16000 else a["samples"]
        total += fam.plan_audio(n).num_tokens
    return total


@pytest.mark.parametrize("name, audio, video", [("glm-4.1v", False, True), ("isaac", False, False),
                                                ("nemotron-3-nano-omni", True, True)])
def test_count_dataset_equals_the_plans_record_by_record(name, audio, video):
    fam = mmprep.load(name)
    recs = random_records(120, seed=len(name), audio=audio, video=video)
    got = mmprep.count_dataset(recs, model=fam, chunk_size=37)  # several chunks
    assert got.failed == [] and got.ids == [r["id"] for r in recs]
    for i, r in enumerate(recs):
        assert got.total_tokens[i] == expected_total(fam, r), r
        assert got.num_images[i] == len(r.get("images", []))
    assert (got.total_tokens == got.text_tokens + got.image_tokens + got.video_tokens + got.audio_tokens).all()


def test_bad_records_are_reported_with_id_and_reason_and_the_rest_go_on(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    lines = [
        json.dumps({"id": "ok", "text_tokens": 7, "images": [[480, 640]]}),
        "{not json",
        json.dumps({"id": "missing", "text_tokens": 1, "images": ["no/such.jpg"]}),
        json.dumps({"id": "zero-image", "text_tokens": 1, "images": [{"height": 0, "width": 640}]}),
        json.dumps({"id": "zero-video", "text_tokens": 1, "videos": [{"frames": 0, "fps": 30, "height": 64, "width": 64}]}),
        json.dumps({"id": "zero-audio", "text_tokens": 1, "audios": [{"samples": 0}]}),
        json.dumps({"id": "empty-file", "text_tokens": 1, "audios": ["empty.wav"]}),
        json.dumps({"id": "bad-type", "text_tokens": "many"}),
        json.dumps({"id": "untokenized", "text": "hello"}),
        json.dumps({"id": "also-ok", "text_tokens": 3}),
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "counts.jsonl"
    got = mmprep.count_dataset(manifest, model="nemotron-3-nano-omni", out=out)
    failed = dict(got.failed)
    assert set(failed) == {"line 2", "missing", "zero-image", "zero-video", "zero-audio", "empty-file", "bad-type",
                           "untokenized"}
    assert "not valid JSON" in failed["line 2"] and "no/such.jpg" in failed["missing"]
    assert "height" in failed["zero-image"] and "tokenizer" in failed["untokenized"]
    assert got.total_tokens[0] == 7 + mmprep.load("nemotron-3-nano-omni").plan_image(480, 640).num_tokens
    assert got.total_tokens[-1] == 3 and got.summary()["failed"] == 8
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(lines)  # nothing dropped: failed rows carry their error
    assert [r["id"] for r in rows if r["error"]] == [i for i, _ in got.failed]
    assert all(r["total_tokens"] == -1 for r in rows if r["error"])


def test_paths_are_probed_from_headers_and_equal_the_path_plans():
    fam = mmprep.load("glm-4.6v")
    recs = [{"id": 1, "text_tokens": 0, "images": ["street_640x480.jpg", {"path": "portrait_200x300.png"}],
             "videos": ["clip_320x240.mp4"]}]
    got = mmprep.count_dataset(recs, model=fam, root=EXAMPLES)
    want = fam.plan_video(str(EXAMPLES / "clip_320x240.mp4")).num_tokens + fam.plan_image(480, 640).num_tokens \
        + fam.plan_image(300, 200).num_tokens
    assert got.failed == [] and got.total_tokens.tolist() == [want]


def test_text_is_counted_exactly_by_the_prompt_with_a_tokenizer():
    from tests.tokenizers_fixture import glm_tokenizer

    tok, fam = glm_tokenizer(), mmprep.load("glm-4.1v")
    img = "<|begin_of_image|><|image|><|end_of_image|>"
    recs = [{"id": "a", "text": f"Describe {img} and {img}.", "images": [[480, 640], [100, 2000]]},
            {"id": "b", "text": "no media at all"},
            {"id": "c", "text": "one placeholder, two images " + img, "images": [[480, 640], [480, 640]]}]
    got = mmprep.count_dataset(recs, model=fam, tokenizer=tok)
    for i in (0, 1):
        r = recs[i]
        b = fam.prompt(r["text"], images=[tuple(x) for x in r.get("images", [])], tokenizer=tok)
        assert got.total_tokens[i] == b["input_ids"].shape[1]
        assert got.image_tokens[i] == sum(fam.plan_image(*x).num_tokens for x in r.get("images", []))
    assert got.failed[0][0] == "c" and "placeholder" in got.failed[0][1]


def test_parquet_in_and_out_equal_the_jsonl_path(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    recs = random_records(300, seed=3)
    for r in recs:  # parquet needs one type per column: every record lists every modality
        r.setdefault("images", [])
        r.setdefault("videos", [])
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path)
    a = mmprep.count_dataset(path, model="glm-4.1v", chunk_size=64, out=tmp_path / "c.parquet")
    b = mmprep.count_dataset(recs, model="glm-4.1v")
    assert a.ids == b.ids and all((a.columns[c] == b.columns[c]).all() for c in a.columns)
    back = read_counts(tmp_path / "c.parquet")
    assert back.ids == [str(i) for i in b.ids] and (back.total_tokens == b.total_tokens).all()


def run_cli(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_cli_manifest_exit_status_says_whether_any_record_failed(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "x", "text_tokens": 2, "images": [[480, 640]]}) + "\n")
    code, text = run_cli("count", "--model", "glm-4.1v", "--manifest", str(good), "--no-progress")
    assert code == 0 and json.loads(text)["total_tokens"] == 393 and json.loads(text)["failed"] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + json.dumps({"id": "y", "images": [[0, 1]]}) + "\n")
    out = tmp_path / "o.jsonl"
    code, text = run_cli("count", "--model", "glm-4.1v", "--manifest", str(bad), "--out", str(out), "--no-progress")
    assert code == 1 and json.loads(text)["failed"] == 1
    assert "record 'y'" in capsys.readouterr().err and len(out.read_text().splitlines()) == 2


def test_cli_files_exit_non_zero_when_any_file_failed(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    code, _ = run_cli("count", "--model", "isaac", str(EXAMPLES / "street_640x480.jpg"), str(bad))
    assert code == 1
    code, _ = run_cli("count", "--model", "isaac", str(EXAMPLES / "street_640x480.jpg"))
    assert code == 0


def test_counting_dicts_imports_nothing_heavy():
    code = ("import sys, mmprep; mmprep.count_dataset([{'id': 1, 'text_tokens': 1, 'images': [[9, 9]]}], "
            "model='isaac'); bad = [m for m in ('pyarrow', 'ray', 'torch') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_exact_text_counts_for_nemotron_omni_with_audio():
    from tests.tokenizers_fixture import nemotron_tokenizer

    tok, omni = nemotron_tokenizer(), mmprep.load("nemotron-3-nano-omni")
    recs = [{"id": "a", "text": "Look <image> and hear <so_embedding>.", "images": [[480, 640]],
             "audios": [{"samples": 32000}]},
            {"id": "b", "text": "just text"}]
    got = mmprep.count_dataset(recs, model=omni, tokenizer=tok)
    want = omni.prompt(recs[0]["text"], images=[(480, 640)], audios=[32000], tokenizer=tok)
    assert got.failed == [] and got.total_tokens[0] == want["input_ids"].shape[1]
    assert got.audio_tokens[0] == omni.plan_audio(32000).num_tokens
    assert got.total_tokens[1] == omni.prompt("just text", tokenizer=tok)["input_ids"].shape[1]


SIDE = st.one_of(st.integers(-2, 40_000), st.just(0), st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf")]))


@settings(max_examples=60)
@given(st.lists(st.lists(st.tuples(SIDE, SIDE), max_size=3), min_size=1, max_size=12),
       st.sampled_from(["glm-4.1v", "isaac", "nemotron-nano-vl"]))
def test_a_record_fails_exactly_when_one_of_its_plans_raises(images, name):
    fam = mmprep.load(name)
    recs = [{"id": i, "text_tokens": 1, "images": [{"height": h, "width": w} for h, w in imgs]}
            for i, imgs in enumerate(images)]
    got = mmprep.count_dataset(recs, model=fam, chunk_size=5)
    for i, imgs in enumerate(images):
        try:
            want = 1 + sum(fam.plan_image(h, w).num_tokens for h, w in imgs)
        except (mmprep.MmprepError, TypeError, ValueError, OverflowError):
            want = -1
        assert got.total_tokens[i] == want, (imgs, got.errors[i])
        assert (got.errors[i] is None) == (want != -1)
