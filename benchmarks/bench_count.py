"""Vectorized token counting vs the scalar plan loop vs transformers, per family.

Prints one JSON line: images/s for each family's ``count_image_tokens`` on N random sizes (one
core: numpy does this single-threaded), the scalar ``plan_image`` loop on a sample (extrapolated
per image), and transformers' ``Glm4vImageProcessor.get_number_of_image_patches`` loop where a
transformers processor can count without pixels (GLM only).

    python benchmarks/bench_count.py [--n 1000000] [--loop 20000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import mmprep

FAMILIES = ["isaac", "nemotron-nano-vl", "nemotron-3-nano-omni", "glm-4.1v", "glm-4.6v"]


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def transformers_glm_rate(h: np.ndarray, w: np.ndarray) -> tuple[float | None, str | None]:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests._torchvision import import_torchvision

        import_torchvision()  # transformers' default GLM processor is torchvision-backed
        import transformers
        from transformers.models.glm4v.image_processing_glm4v import Glm4vImageProcessor
    except Exception:  # transformers (or its torchvision backend) is optional here
        return None, None
    proc = Glm4vImageProcessor(size={"shortest_edge": 12544, "longest_edge": 9633792})
    pairs = list(zip(h.tolist(), w.tolist()))
    t = best_of(lambda: [proc.get_number_of_image_patches(a, b, {}) for a, b in pairs], 1)
    return len(pairs) / t, transformers.__version__


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="sizes counted by the vectorized path")
    ap.add_argument("--loop", type=int, default=20_000, help="sizes for the scalar and transformers loops")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h = rng.integers(64, 4097, args.n)
    w = rng.integers(64, 4097, args.n)
    hs, ws = h[: args.loop], w[: args.loop]
    result: dict = {"stage": "count_image_tokens", "inputs": f"{args.n} random sizes 64..4096 px"}
    families = {}
    for name in FAMILIES:
        fam = mmprep.load(name)
        t_vec = best_of(lambda: fam.count_image_tokens(h, w))
        pairs = list(zip(hs.tolist(), ws.tolist()))
        t_loop = best_of(lambda: [fam.plan_image(a, b).num_tokens for a, b in pairs], 1)
        vec = fam.count_image_tokens(hs, ws)
        assert vec.tolist() == [fam.plan_image(a, b).num_tokens for a, b in pairs]
        families[name] = {
            "vectorized_images_per_s": round(args.n / t_vec),
            "scalar_loop_images_per_s": round(len(pairs) / t_loop),
            "speedup_vs_scalar": round((args.n / t_vec) / (len(pairs) / t_loop), 1),
        }
    peer_rate, tf_version = transformers_glm_rate(hs, ws)
    if peer_rate is not None:
        families["glm-4.1v"]["transformers_images_per_s"] = round(peer_rate)
        families["glm-4.1v"]["speedup_vs_transformers"] = round(
            families["glm-4.1v"]["vectorized_images_per_s"] / peer_rate, 1
        )
    result["ours"] = families
    result["peer"] = "transformers Glm4vImageProcessor.get_number_of_image_patches (GLM only)"
    result["versions"] = {"mmprep": mmprep.__version__, "numpy": np.__version__,
                          "transformers": tf_version, "python": platform.python_version()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
