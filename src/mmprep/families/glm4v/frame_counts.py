"""How many frames the GLM samplers keep, for many videos at once (metadata-only counting).

``glm41v_frame_counts`` / ``glm46v_frame_counts`` return, per video, the frame count after
de-duplication and even padding that :func:`mmprep.sampling.glm41v_sample_frames` /
:func:`~mmprep.sampling.glm46v_sample_frames` give for ``{"fps": fps, "total_num_frames": M,
"duration": M / fps, "do_sample_frames": True}`` (what :func:`mmprep.video.vllm_metadata` builds).

They evaluate the same doubles as the scalar samplers, batched over videos as flat (ragged)
arrays, and use two facts about the rules:

* every sampled index sequence is non-decreasing, so de-duplication keeps ``1 + #changes``;
* ``linspace(a, b, n, dtype=int)`` hits every integer of ``[a, b]`` when ``n > b - a + 1`` (steps
  below 1) and gives ``n`` distinct values otherwise (steps of at least 1), i.e.
  ``min(n, b - a + 1)`` distinct values.

``tests/test_video.py`` checks both against the scalar samplers on random metadata.
"""

from __future__ import annotations

import numpy as np

from .sampling import GLM46V_MAX_DURATION, GLM46V_MAX_FRAMES, GLM46V_FPS_THRESHOLDS


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(owner, position, starts)`` of a flat array holding ``lengths[v]`` items per video."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(lengths.size), lengths)
    pos = np.arange(int(lengths.sum()), dtype=np.int64) - starts[owner]
    return owner, pos, starts


def _distinct_sorted(values: np.ndarray, owner: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Distinct values per video of a flat, per-video non-decreasing array."""
    out = np.zeros(n, dtype=np.int64)
    if values.size:
        new = np.ones(values.size, dtype=np.int64)
        new[1:] = (values[1:] != values[:-1]) | (pos[1:] == 0)
        np.add.at(out, owner, new)
    return out


def _pad(u: np.ndarray) -> np.ndarray:
    return u + (u & 1)


def glm41v_frame_counts(total: np.ndarray, fps: np.ndarray, vp_fps: float, max_duration: float,
                        min_frames: int = 0) -> np.ndarray:
    """Frames GLM-4.1V keeps per video (int64), ``duration = total / fps``; ``min_frames=1``:
    transformers samples at least one frame of a clip shorter than one sampling period."""
    total = total.astype(np.int64)
    duration = total / fps
    out = np.empty(total.size, dtype=np.int64)
    short = duration <= max_duration
    # fps branch: idx_i = min(M-1, ceil(i * fps / vp_fps)) for i < floor(duration * vp_fps)
    sel = np.flatnonzero(short)
    n = np.maximum(np.floor(duration[sel] * vp_fps).astype(np.int64), min_frames)
    owner, i, _ = _ragged(n)
    raw = np.ceil((i.astype(np.float64) * fps[sel][owner]) / vp_fps)
    vals = np.minimum(total[sel][owner] - 1, raw)
    out[sel] = _distinct_sorted(vals, owner, i, sel.size)
    # long videos: all frames, or ceil(t * fps) at linspace(0, duration, num_samples) seconds
    num_samples = int(max_duration * vp_fps)
    sel = np.flatnonzero(~short)
    every = total[sel] <= num_samples
    out[sel[every]] = total[sel[every]]
    sel = sel[~every]
    if sel.size:
        seconds = np.linspace(0, duration[sel], num_samples, endpoint=True).T  # (videos, samples)
        vals = np.minimum((total[sel] - 1)[:, None], np.ceil(seconds * fps[sel][:, None]))
        out[sel] = 1 + (vals[:, 1:] != vals[:, :-1]).sum(axis=1)
    return _pad(out)


def _glm46v_params(duration: np.ndarray, tps: int):
    eff = np.minimum(duration, GLM46V_MAX_DURATION)
    (l1, f1), (l2, f2), (_, f3) = GLM46V_FPS_THRESHOLDS
    target = np.where(eff <= l1, float(f1), np.where(eff <= l2, float(f2), float(f3)))
    extract_t = np.minimum(np.trunc(eff * target * tps), GLM46V_MAX_FRAMES).astype(np.int64)
    return target, extract_t, np.trunc(duration).astype(np.int64)


def glm46v_frame_counts(total: np.ndarray, fps: np.ndarray, tps: int) -> np.ndarray:
    """Frames GLM-4.6V keeps per video (int64), ``duration = total / fps``."""
    total = total.astype(np.int64)
    duration = total / fps
    target, extract_t, max_second = _glm46v_params(duration, tps)
    out = np.empty(total.size, dtype=np.int64)
    few = total < extract_t
    out[few] = total[few]  # linspace(0, M-1, extract_t) with steps < 1 hits every frame
    loop = np.flatnonzero(~few)
    if loop.size:
        ext = extract_t[loop]
        picks, last = _loop_picks(total[loop], fps[loop], target[loop], max_second[loop], tps, ext + 1)
        out[loop] = np.where(picks < ext, np.minimum(ext, last + 1),
                             np.where(picks > ext, np.minimum(ext, total[loop]), picks))
    return _pad(out)


def _loop_picks(total, fps, target, max_second, tps: int, most: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Picks of the float-accumulator loop and the last picked frame, per video.

    The accumulator ``cur_j`` depends only on ``inv = 1/(tps*target)``, so one ``np.cumsum``
    table per target fps serves every video (bit-equal to the loop's repeated ``+=``). Pick j is
    ``k_j = max(k_{j-1} + 1, first frame with k * (1/fps) >= cur_j)``; the loop stops after
    pick j once ``cur_{j+1} >= max_second``, or when frames run out. At most ``most`` picks are
    made per video (``extract_t + 1``: beyond that only "more than extract_t" matters), so the work
    never grows with the frame count.
    """
    n = total.size
    picks = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    for t in np.unique(target).tolist():
        g = np.flatnonzero(target == t)
        inv = 1 / (tps * (0.5 if t == 0.5 else int(t)))
        steps = np.minimum(np.minimum(total[g], np.ceil(max_second[g] / inv).astype(np.int64) + 2), most[g])
        table = np.empty(int(steps.max()) + 2)
        table[0] = 0.0
        np.cumsum(np.full(table.size - 1, inv), out=table[1:])
        stop = np.searchsorted(table[1:], max_second[g], side="left")  # first j: cur_{j+1} >= max
        owner, j, starts = _ragged(steps)
        cur = table[j]
        dpf = (1 / fps[g])[owner]
        k = np.ceil(cur / dpf).astype(np.int64)
        for _ in range(2):  # fix float rounding of the estimate: smallest k with k*dpf >= cur
            k = np.where((k > 0) & ((k - 1) * dpf >= cur), k - 1, k)
            k = np.where(k * dpf < cur, k + 1, k)
        big = int(total[g].max() + steps.max() + 2)
        k = j + np.maximum.accumulate((k - j) + owner * big) - owner * big
        valid = k < total[g][owner]
        count = np.add.reduceat(valid.astype(np.int64), starts)
        picks[g] = np.minimum(count, stop + 1)
        last[g] = k[starts + picks[g] - 1]
    return picks, last


def glm_frame_counts(spec, total: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Frames the spec's GLM sampler keeps per video."""
    if spec.version == "4.1v":
        return glm41v_frame_counts(total, fps, spec.video_fps, spec.video_max_duration,
                                   int(spec.short_clip_rule == "one_frame"))
    return glm46v_frame_counts(total, fps, spec.temporal_patch_size)

