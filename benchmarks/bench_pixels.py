"""Image pixels: mmprep (fast / reference / fast uint8) vs the peer processor, same JPEG bytes.

Per family and size (generated 640x480, 1920x1080, 4032x3024 JPEGs), with 1 and 2 threads,
decode included on both sides. Peers, measured in the same run:

* GLM-4.1V: transformers' default ``Glm4vImageProcessor`` (torchvision backend) after PIL
  ``Image.open(...).convert("RGB")`` (what vLLM does).
* Isaac: the seed's torch ops (SPEC §2.1) after the same PIL decode (transformers has no Isaac
  processor).
* Nemotron tiles: the seed's PIL + torchvision ``ToTensor`` path (SPEC §2.3).
* Nemotron Omni (dynamic): transformers' ``NemotronH_Omni_Reasoning_V3ImageProcessor``
  (timing only: it resizes in float, so its pixels differ from vLLM's seed path).

Prints one JSON line: ms/image per (family, size, threads, variant), ratios peer/ours, and the
PSNR (dB, uint8 levels) of each of our outputs vs the peer's.
"""

from __future__ import annotations

import inspect
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920), "4032x3024": (3024, 4032)}
BATCH = {"640x480": 4, "1920x1080": 2, "4032x3024": 1}


def make_jpeg(h: int, w: int, seed: int) -> bytes:
    """A photo-like JPEG: gradients, soft shapes, sensor noise (quality 90)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([255 * x / w, 255 * y / h, 127.5 + 100 * np.sin(x / 37 + y / 53)], -1)
    for _ in range(8):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(h / 20, h / 3)
        mask = np.clip((r - np.hypot(y - cy, x - cx)) / 3, 0, 1)[..., None]
        img = img * (1 - mask) + rng.uniform(0, 255, 3).astype(np.float32) * mask
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def timed(fn, reps: int) -> tuple[float, object]:
    """Best of ``reps`` timed calls after one warm-up (min: robust on a shared machine)."""
    out = fn()  # warm-up (and the output for the error columns)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def pil_rgb(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def peers(torch):
    """family -> (callable(list of bytes) -> np.ndarray, per-channel std, layout name)."""
    import torch.nn.functional as F
    import transformers as tr

    import mmprep

    glm_proc = tr.Glm4vImageProcessor(size={"shortest_edge": 12_544, "longest_edge": 9_633_792})
    omni_proc = tr.NemotronH_Omni_Reasoning_V3ImageProcessor() if hasattr(
        tr, "NemotronH_Omni_Reasoning_V3ImageProcessor") else None
    isaac = mmprep.load("isaac")
    nem = mmprep.load("nemotron-nano-vl")
    mean = torch.tensor(nem.spec.norm_mean).reshape(1, 3, 1, 1)
    std = torch.tensor(nem.spec.norm_std).reshape(1, 3, 1, 1)

    def glm(datas):
        return glm_proc(images=[pil_rgb(d) for d in datas], return_tensors="pt")["pixel_values"].numpy()

    def isaac_seed(datas):
        out = []
        for d in datas:
            a = np.asarray(pil_rgb(d)).copy()
            p = isaac.plan_image(a.shape[0], a.shape[1])
            x = torch.from_numpy(a)[None].permute(0, 3, 1, 2)
            x = F.interpolate(x, size=(p.height, p.width), mode="bilinear", align_corners=False)
            x = (x.permute(0, 2, 3, 1).float() * (1 / 255) - 0.5) / 0.5
            hp, wp = p.height // 16, p.width // 16
            out.append(x.reshape(1, hp, 16, wp, 16, 3).permute(0, 1, 3, 2, 4, 5).reshape(hp * wp, 768))
        return torch.cat(out).numpy()

    def nemotron_seed(datas):
        tiles = []
        for d in datas:
            im = pil_rgb(d)
            t = nem.plan_image(im.height, im.width).tiles
            s = t.tile_size
            canvas = im.resize((t.cols * s, t.rows * s))
            crops = [canvas.crop(((i % t.cols) * s, (i // t.cols) * s, (i % t.cols + 1) * s, (i // t.cols + 1) * s))
                     for i in range(t.cols * t.rows)]
            if t.thumbnail:
                crops.append(im.resize((s, s)))
            tiles += [torch.from_numpy(np.asarray(c).copy()).permute(2, 0, 1).float().div(255) for c in crops]
        return ((torch.stack(tiles) - mean) / std).numpy()

    def omni(datas):
        return omni_proc(images=[pil_rgb(d) for d in datas], return_tensors="pt")["pixel_values"]

    table = {"glm-4.1v": glm, "isaac": isaac_seed, "nemotron-nano-vl": nemotron_seed}
    if omni_proc is not None:
        table["nemotron-3-nano-omni"] = omni
    return table


def to_levels(values: np.ndarray, fam) -> np.ndarray:
    """Undo the normalization: float pixel_values -> uint8-scale levels, per the family layout."""
    s = fam.spec
    mean = np.asarray(getattr(s, "image_mean", getattr(s, "norm_mean", None)), np.float64)
    std = np.asarray(getattr(s, "image_std", getattr(s, "norm_std", None)), np.float64)
    v = values.astype(np.float64)
    if getattr(fam, "family", getattr(fam, "name", "")) == "isaac":
        v = v.reshape(-1, 3)
        return (v * std + mean) * 255
    v = v.reshape(v.shape[0], 3, -1)
    return (v * std[None, :, None] + mean[None, :, None]) * 255


def psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape != b.shape:
        return None
    mse = float(np.mean((a - b) ** 2))
    return round(10 * np.log10(255.0**2 / mse), 1) if mse > 0 else float("inf")


def main(argv: list[str] | None = None) -> None:
    import argparse

    import cv2
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", action="append", help="only this family (repeatable)")
    ap.add_argument("--size", action="append", choices=sorted(SIZES), help="only this size (repeatable)")
    ap.add_argument("--threads", type=int, action="append", help="only these thread counts (default 1 and 2)")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per variant, best kept (4032x3024: 1)")
    args = ap.parse_args(argv)
    from tests._torchvision import import_torchvision

    import_torchvision()
    import mmprep
    from mmprep.families.glm4v.pixels import glm_image_pixels
    from mmprep.families.isaac.pixels import isaac_image_pixels
    from mmprep.families.nemotron.pixels import nemotron_image_pixels

    ours = {"glm-4.1v": glm_image_pixels, "isaac": isaac_image_pixels,
            "nemotron-nano-vl": nemotron_image_pixels, "nemotron-3-nano-omni": nemotron_image_pixels}
    sizes = {k: v for k, v in SIZES.items() if not args.size or k in args.size}
    jpegs = {name: [make_jpeg(h, w, seed=i) for i in range(BATCH[name])] for name, (h, w) in sizes.items()}
    peer_fns = {k: v for k, v in peers(torch).items() if not args.family or k in args.family}
    results = []
    start = time.perf_counter()
    for fam_name, peer in peer_fns.items():
        fam = mmprep.load(fam_name)
        for size, datas in jpegs.items():
            n, reps = len(datas), (1 if size == "4032x3024" else args.reps)
            for threads in args.threads or (1, 2):
                torch.set_num_threads(threads)
                cv2.setNumThreads(threads)
                row = {"family": fam_name, "size": size, "threads": threads}
                t_peer, ref = timed(lambda: peer(datas), reps)
                row["peer_ms"] = round(1000 * t_peer / n, 2)
                for variant, kw in (("fast", {"backend": "fast"}), ("reference", {"backend": "reference"}),
                                    ("fast_uint8", {"backend": "fast", "dtype": "uint8"})):
                    t, out = timed(lambda: ours[fam_name](fam, datas, threads=threads, **kw), reps)
                    row[f"{variant}_ms"] = round(1000 * t / n, 2)
                    row[f"{variant}_speedup"] = round(t_peer / t, 2)
                    if variant != "fast_uint8" and fam_name != "nemotron-3-nano-omni":
                        row[f"{variant}_psnr_db"] = psnr(to_levels(out.pixel_values, fam), to_levels(ref, fam))
                results.append(row)
    print(json.dumps({
        "stage": "image_pixels", "unit": f"ms/image (best of {args.reps}; 1 for 4032x3024), decode included",
        "inputs": {k: f"{BATCH[k]} JPEG(s) q90" for k in sizes},
        "default_backend": inspect.signature(mmprep.load("glm-4.1v").pixels).parameters["backend"].default,
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "opencv": cv2.__version__, "transformers": __import__("transformers").__version__,
                     "mmprep": mmprep.__version__},
    }))


if __name__ == "__main__":
    main()
