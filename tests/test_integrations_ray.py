"""Ray Data integration on a local Ray (2 CPUs, started once per test session): the counted rows
equal the single-process count_dataset, bad rows come back with their error (never dropped), and
Preprocess gives the same ids as family.process. Skipped when ray is not installed."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import mmprep

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
IMG = "<|begin_of_image|><|image|><|end_of_image|>"


@pytest.fixture(scope="session")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def records():
    rng = np.random.default_rng(0)
    out = []
    for i in range(200):
        images = [{"path": None, "height": int(rng.integers(20, 2000)), "width": int(rng.integers(20, 2000))}
                  for _ in range(int(rng.integers(0, 3)))]
        out.append({"id": f"r{i}", "text_tokens": int(rng.integers(0, 300)), "images": images})
    out[5]["images"] = [{"path": None, "height": 0, "width": 640}]  # zero-size image
    out[17]["images"] = [{"path": "missing.jpg", "height": None, "width": None}]  # missing file
    out[30]["images"] = [{"path": "street_640x480.jpg", "height": None, "width": None}]  # probed on the worker
    return out


def test_ray_counts_equal_the_single_process_path_and_report_bad_rows(local_ray, tmp_path):
    import pyarrow as pa

    from mmprep.integrations.ray import CountTokens, Preprocess, actors

    recs = records()
    item = pa.struct([("path", pa.string()), ("height", pa.int64()), ("width", pa.int64())])
    schema = pa.schema([("id", pa.string()), ("text_tokens", pa.int64()), ("images", pa.list_(item))])
    ds = ray.data.from_arrow(pa.Table.from_pylist(recs, schema=schema))
    got = ds.map_batches(CountTokens, fn_constructor_kwargs={"model": "glm-4.1v", "root": str(EXAMPLES)},
                         batch_format="numpy", batch_size=64, **actors(2)).to_pandas()
    got = got.set_index("id").loc[[r["id"] for r in recs]]  # Ray may reorder blocks
    want = mmprep.count_dataset(recs, model="glm-4.1v", root=EXAMPLES)
    assert len(got) == len(recs)  # nothing dropped
    for c in ("text_tokens", "image_tokens", "total_tokens", "num_images"):
        assert got[c].tolist() == want.columns[c].tolist(), c
    errors = {i: e for i, e in zip(got.index, got["error"]) if e}
    assert errors.keys() == {"r5", "r17"} and errors == dict(want.failed)
    assert got.loc["r30", "image_tokens"] == mmprep.load("glm-4.1v").plan_image(480, 640).num_tokens

    from tests.tokenizers_fixture import glm_tokenizer

    tok = glm_tokenizer()
    rows = [{"id": "a", "text": "Look " + IMG, "images": [str(EXAMPLES / "portrait_200x300.png")]},
            {"id": "b", "text": "Look " + IMG, "images": [str(EXAMPLES / "missing.png")]}]
    out = ray.data.from_items(rows).map_batches(
        Preprocess, fn_constructor_kwargs={"model": "glm-4.1v", "tokenizer": tok}, batch_format="numpy",
        **actors(1)).take_all()
    by_id = {r["id"]: r for r in out}
    ref = mmprep.load("glm-4.1v").process(rows[0]["text"], images=rows[0]["images"], tokenizer=tok)
    assert np.array_equal(np.asarray(by_id["a"]["input_ids"]), ref["input_ids"][0]) and by_id["a"]["error"] == ""
    assert np.asarray(by_id["a"]["pixel_values"]).shape == ref["pixel_values"].shape
    assert "missing.png" in by_id["b"]["error"]

    # the example: a directory of images -> counts.parquet + bins.parquet, equal to the local path
    import importlib.util

    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("ray_example", EXAMPLES.parent / "scripts" / "ray_count_and_pack.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out_dir = tmp_path / "ray_example"
    summary = example.run("glm-4.1v", str(EXAMPLES), str(out_dir), max_len=4096)
    counts = pq.read_table(out_dir / "counts.parquet").to_pandas().set_index("id")
    for name in ("street_640x480.jpg", "portrait_200x300.png"):
        h, w = mmprep.probe_image(EXAMPLES / name)
        assert counts.loc[str(EXAMPLES / name), "image_tokens"] == mmprep.load("glm-4.1v").plan_image(h, w).num_tokens
    bins = pq.read_table(out_dir / "bins.parquet").to_pylist()
    assert sum(len(b["ids"]) for b in bins) + summary["skipped"] == len(counts) and all(b["total"] <= 4096 for b in bins)
