"""Dataset-scale counting and packing; one JSON line per part.

(a) ``manifest``: count_dataset over a Parquet manifest of N records (0-3 images of random sizes,
    5% with a video) from metadata, GLM-4.1V; records/s (wall and CPU: the machine may be
    shared). Peer: the per-record ``plan_image``/``plan_video`` loop on a subset (extrapolated).
(b) ``files``: counting N image files from their headers, single process vs Ray Data with 2
    actors; peer: PIL's bare header read (``Image.open(p).size``) per file.
(c) ``pack``: packing N samples of a realistic mixed-length set (below) into 16384-token bins,
    best-fit decreasing vs the plain greedy first fit on the same lengths: seconds and fill.

The mixed set (c), lengths in GLM-4.1V tokens: 35% text-only (lognormal, median 400 tokens);
45% one or two images (text median 150; 224..1600 px a side, uniform); 12% three to six
images; 8% a video (4..30 s at 24/30 fps, 240p..480p). Samples over 16384 (a few long videos)
are reported as skipped, the same for both packers.

    python benchmarks/bench_data.py [--part all|manifest|files|pack] [--n ...] [--files 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import mmprep  # noqa: E402
from mmprep import VideoMetadata  # noqa: E402


def versions() -> dict:
    out = {"mmprep": mmprep.__version__, "numpy": np.__version__, "python": platform.python_version()}
    for name in ("pyarrow", "ray", "PIL"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


# -- (a) a manifest from metadata ----------------------------------------------------------------


def write_manifest(path: str, n: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    nimg = rng.choice([0, 1, 2, 3], n, p=[0.3, 0.5, 0.15, 0.05])
    k = int(nimg.sum())
    offs = pa.array(np.concatenate([[0], np.cumsum(nimg)]).astype(np.int32))
    images = pa.ListArray.from_arrays(offs, pa.StructArray.from_arrays(
        [pa.array(rng.integers(64, 4000, k)), pa.array(rng.integers(64, 4000, k))], ["height", "width"]))
    nv = (rng.random(n) < 0.05).astype(np.int64)
    v = int(nv.sum())
    voffs = pa.array(np.concatenate([[0], np.cumsum(nv)]).astype(np.int32))
    videos = pa.ListArray.from_arrays(voffs, pa.StructArray.from_arrays(
        [pa.array(rng.integers(30, 20000, v)), pa.array(rng.choice([24.0, 25.0, 29.97, 30.0, 60.0], v)),
         pa.array(rng.integers(144, 1081, v)), pa.array(rng.integers(256, 1921, v))],
        ["frames", "fps", "height", "width"]))
    table = pa.table({"id": pa.array(np.arange(n)), "text_tokens": pa.array(rng.integers(5, 2000, n)),
                      "images": images, "videos": videos})
    pq.write_table(table, path)


def part_manifest(n: int, loop: int) -> dict:
    glm = mmprep.load("glm-4.1v")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "manifest.parquet")
        write_manifest(path, n)
        mmprep.count_dataset(path, model=glm, progress=False)  # warm-up (imports, page cache)
        runs = [timed(lambda: mmprep.count_dataset(path, model=glm, progress=False)) for _ in range(3)]
        counts, wall, cpu = min(runs, key=lambda r: r[2])
        import pyarrow.parquet as pq

        rows = pq.read_table(path).slice(0, loop).to_pylist()

    def scalar():
        out = []
        for r in rows:
            t = r["text_tokens"] + sum(glm.plan_image(x["height"], x["width"]).num_tokens for x in r["images"])
            t += sum(glm.plan_video(VideoMetadata(x["frames"], x["fps"], x["height"], x["width"])).num_tokens
                     for x in r["videos"])
            out.append(t)
        return out

    want, _, pcpu = timed(scalar)
    assert want == counts.total_tokens[:loop].tolist(), "vectorized counts differ from the plans"
    return {"stage": "count_dataset: Parquet manifest from metadata (GLM-4.1V)",
            "inputs": {"records": n, "images": int(counts.num_images.sum()), "videos": int(counts.num_videos.sum()),
                       "peer_records": loop},
            "ours": {"records_per_s_wall": round(n / wall), "records_per_s_cpu": round(n / cpu),
                     "failed": counts.summary()["failed"]},
            "peer": {"name": "per-record plan_image/plan_video loop (same totals)",
                     "records_per_s_cpu": round(loop / pcpu)},
            "ratio": round((n / cpu) / (loop / pcpu), 1), "versions": versions()}


# -- (b) image files from their headers --------------------------------------------------------------


def make_files(d: str, n: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(16, 200)), int(rng.integers(16, 200))
        p = os.path.join(d, f"img_{i:06d}.{'jpg' if i % 2 else 'png'}")
        Image.new("RGB", (w, h), (i % 255, 40, 90)).save(p)
        paths.append(p)
    return paths


def part_files(n: int, ray_workers: int) -> dict:
    from PIL import Image

    glm = mmprep.load("glm-4.1v")
    with tempfile.TemporaryDirectory() as d:
        paths = make_files(d, n)
        records = [{"id": p, "text_tokens": 0, "images": [p]} for p in paths]

        def bare():
            out = []
            for p in paths:
                with Image.open(p) as im:
                    out.append(im.size)
            return out

        bare()  # warm the page cache
        _, pil_wall, pil_cpu = min((timed(bare) for _ in range(2)), key=lambda r: r[1])
        counts, ours_wall, ours_cpu = min((timed(lambda: mmprep.count_dataset(records, model=glm, progress=False))
                                           for _ in range(2)), key=lambda r: r[1])
        assert counts.summary()["failed"] == 0
        result = {"stage": "count image files from headers (GLM-4.1V)",
                  "inputs": {"files": n, "ray_workers": ray_workers},
                  "ours": {"single_process_files_per_s": round(n / ours_wall), "us_per_file": round(1e6 * ours_wall / n, 1),
                           "cpu_us_per_file": round(1e6 * ours_cpu / n, 1)},
                  "peer": {"name": "PIL Image.open(path).size per file", "files_per_s": round(n / pil_wall),
                           "us_per_file": round(1e6 * pil_wall / n, 1), "cpu_us_per_file": round(1e6 * pil_cpu / n, 1)},
                  "ratio": round(ours_wall / pil_wall, 2)}
        try:
            result["ours"].update(_ray_files(records, counts, ray_workers))
        except ImportError as e:
            result["ours"]["ray"] = f"not installed ({e})"
    result["versions"] = versions()
    return result


def _ray_files(records: list[dict], counts, workers: int) -> dict:
    import ray

    from mmprep.integrations.ray import count_batch

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        ds = ray.data.from_items(records).materialize()

        def run():
            return ds.map_batches(count_batch, fn_kwargs={"model": "glm-4.1v"}, batch_format="numpy",
                                  batch_size=1000).to_pandas()  # tasks: worker processes are reused

        run()  # warm-up (worker processes, imports)
        df, wall, _ = timed(run)
        same = sorted(df["total_tokens"].tolist()) == sorted(counts.total_tokens.tolist())
        return {"ray_files_per_s": round(len(records) / wall), "ray_us_per_file": round(1e6 * wall / len(records), 1),
                "ray_equal_to_single_process": bool(same and (df["error"] == "").all())}
    finally:
        ray.shutdown()


# -- (c) packing ---------------------------------------------------------------------------------------


def mixed_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    glm = mmprep.load("glm-4.1v")
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, n, p=[0.35, 0.45, 0.12, 0.08])
    text = np.where(kind == 0, rng.lognormal(np.log(400), 0.8, n), rng.lognormal(np.log(150), 0.8, n))
    lengths = np.clip(text, 4, 8000).astype(np.int64)
    nimg = np.select([kind == 1, kind == 2], [rng.integers(1, 3, n), rng.integers(3, 7, n)], 0)
    k = int(nimg.sum())
    owner = np.repeat(np.arange(n), nimg)
    sides = rng.integers(224, 1601, (2, k))
    lengths += np.bincount(owner, weights=glm.count_image_tokens(sides[0], sides[1]), minlength=n).astype(np.int64)
    vid = np.flatnonzero(kind == 3)
    fps = rng.choice([24.0, 30.0], vid.size)
    frames = (rng.uniform(4, 30, vid.size) * fps).astype(np.int64)
    h = rng.choice([240, 360, 480], vid.size)
    lengths[vid] += glm.count_video_tokens(frames, fps, h, (h * 16) // 9)
    return lengths, {"text_only": 0.35, "one_or_two_images": 0.45, "three_to_six_images": 0.12, "video": 0.08}


def part_pack(n: int, max_len: int) -> dict:
    lengths, dist = mixed_lengths(n)
    bfd, bwall, _ = timed(lambda: mmprep.pack(lengths, max_len, on_overflow="skip"))
    ff, fwall, _ = timed(lambda: mmprep.pack(lengths, max_len, on_overflow="skip", algorithm="first_fit"))
    st, swall, _ = timed(lambda: mmprep.pack(lengths, max_len, on_overflow="skip", algorithm="stream", buffer=1024))
    assert bfd.num_bins <= ff.num_bins
    return {"stage": "pack samples into bins (best-fit decreasing vs greedy first fit)",
            "inputs": {"samples": n, "max_len": max_len, "distribution": dist,
                       "mean_len": round(float(lengths.mean()), 1), "skipped_over_max_len": len(bfd.skipped)},
            "ours": {"algorithm": "bfd", "seconds": round(bwall, 2), "fill_rate": round(bfd.fill_rate, 6),
                     "bins": bfd.num_bins, "stream_buffer_1024": {"seconds": round(swall, 2),
                                                                  "fill_rate": round(st.fill_rate, 6)}},
            "peer": {"name": "greedy first fit, input order", "seconds": round(fwall, 2),
                     "fill_rate": round(ff.fill_rate, 6), "bins": ff.num_bins},
            "ratio": round(ff.num_bins / bfd.num_bins, 4), "versions": versions()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["all", "manifest", "files", "pack"])
    ap.add_argument("--n", type=int, default=1_000_000, help="records (a) and samples (c)")
    ap.add_argument("--loop", type=int, default=20_000, help="records for the scalar peer (a)")
    ap.add_argument("--files", type=int, default=20_000, help="image files (b)")
    ap.add_argument("--ray-workers", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=16384)
    args = ap.parse_args()
    if args.part in ("all", "manifest"):
        print(json.dumps(part_manifest(args.n, args.loop)), flush=True)
    if args.part in ("all", "files"):
        print(json.dumps(part_files(args.files, args.ray_workers)), flush=True)
    if args.part in ("all", "pack"):
        print(json.dumps(part_pack(args.n, args.max_len)), flush=True)


if __name__ == "__main__":
    main()
