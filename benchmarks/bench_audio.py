"""Parakeet log-mel features for 10 x 30 s clips: mmprep (numpy, torch) vs transformers' extractor.

Prints one JSON line: best-of-N (interleaved) wall times (s) for each, the speed-up at parity, and the max
abs difference from transformers on the same waveforms (the reference's own float32 rounding;
see docs/audio.md). Usage: ``python benchmarks/bench_audio.py [--clips 10 --seconds 30 --repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def best_times(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Seconds of every round per function, run interleaved so that load from other jobs on
    a shared machine hits every contestant alike."""
    rounds: dict = {k: [] for k in fns}
    outs: dict = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            outs[k] = fn()
            rounds[k].append(time.perf_counter() - t0)
    return rounds, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import ParakeetFeatureExtractor

    import mmprep
    from mmprep.families.nemotron.audio import nemotron_audio_features

    fam = mmprep.load("nemotron-3-nano-omni")
    s = fam.spec
    rng = np.random.default_rng(0)
    n = int(args.seconds * s.audio_sampling_rate)
    # speech-like test signal: noise bursts under a few harmonics, lengths differ a little
    clips = []
    for i in range(args.clips):
        m = n - i * 997
        t = np.arange(m) / s.audio_sampling_rate
        x = 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        clips.append((x + 0.05 * rng.standard_normal(m)).astype(np.float32))
    fe = ParakeetFeatureExtractor(feature_size=s.audio_num_mel_bins, sampling_rate=s.audio_sampling_rate,
                                  hop_length=s.audio_hop_length, n_fft=s.audio_n_fft,
                                  win_length=s.audio_win_length, preemphasis=s.audio_preemphasis)

    def ref():
        return fe(clips, sampling_rate=s.audio_sampling_rate, return_tensors="np")

    def ours():
        return nemotron_audio_features(fam, clips)

    def ours_torch():
        return nemotron_audio_features(fam, clips, backend="torch")

    ref(), ours(), ours_torch()  # warm-up (imports, FFT plans)
    rounds, outs = best_times({"ref": ref, "np": ours, "pt": ours_torch}, args.repeats)
    t_ref, t_np, t_pt = (min(rounds[k]) for k in ("ref", "np", "pt"))
    # per-round ratios: robust to load bursts from other jobs on a shared machine
    med_np = float(np.median(np.array(rounds["ref"]) / np.array(rounds["np"])))
    med_pt = float(np.median(np.array(rounds["ref"]) / np.array(rounds["pt"])))
    r, o, ot = outs["ref"], outs["np"], outs["pt"]
    want = r["input_features"]
    print(json.dumps({
        "stage": "audio_features",
        "inputs": f"{args.clips} clips x {args.seconds:g} s at {s.audio_sampling_rate} Hz, "
                  f"{s.audio_num_mel_bins} mels",
        "ours_numpy_s": round(t_np, 4),
        "ours_torch_s": round(t_pt, 4),
        "peer": "transformers.ParakeetFeatureExtractor",
        "peer_s": round(t_ref, 4),
        "ratio_numpy": round(t_ref / t_np, 2),  # best vs best
        "ratio_torch": round(t_ref / t_pt, 2),
        "median_round_ratio_numpy": round(med_np, 2),
        "median_round_ratio_torch": round(med_pt, 2),
        "max_abs_diff_numpy": float(np.abs(o.features - want).max()),
        "max_abs_diff_torch": float(np.abs(ot.features.numpy() - want).max()),
        "mask_equal": bool((o.attention_mask == r["attention_mask"]).all()),
        "versions": {"mmprep": mmprep.__version__, "numpy": np.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
