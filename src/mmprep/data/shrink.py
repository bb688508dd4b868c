"""The ``shrink`` overflow policy: the largest image/video size at which a sample fits.

A sample's images and videos shrink together, keeping their aspect ratios, by one scale. The
candidate sizes are indexed by the longest side ``L`` of the sample's largest item: at step
``l = 1 .. L-1`` every item of ``h x w`` px becomes ``max(1, floor(h*l/L + 1/2)) x max(1,
floor(w*l/L + 1/2))``. Every step is counted with the family's own vectorized ``count_*_tokens``
(its sizing rule, the same numbers as its plans), so the answer is exact without assuming the
count is monotone in the scale: the chosen step is the largest one that fits, hence the next
size up does not. Audio and text do not shrink; a sample whose fixed part alone is over the
budget, or that no step fits, is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_STEPS = 1 << 16  # a side longer than this is searched over this many evenly spaced steps


def scaled(side: np.ndarray, steps: np.ndarray, longest: int) -> np.ndarray:
    """``max(1, floor(side * step / longest + 1/2))`` for every (step, item): int64 ``(S, K)``."""
    x = np.floor(side[None, :].astype(np.float64) * steps[:, None] / float(longest) + 0.5)
    return np.maximum(x, 1).astype(np.int64)


def largest_fit(family: Any, images: list[tuple[int, int]], videos: list[tuple[int, float, int, int]],
                budget: int) -> dict[str, Any] | None:
    """The largest step whose image + video tokens are ``<= budget``, or None.

    ``images``: ``(height, width)`` px; ``videos``: ``(frames, fps, height, width)``.
    Returns ``{"scale", "image": [(h, w)], "video": [(h, w)], "tokens"}``.
    """
    sides = [max(h, w) for h, w in images] + [max(v[2], v[3]) for v in videos]
    if not sides or budget < 0:
        return None
    longest = max(sides)
    steps = np.arange(1, longest, dtype=np.int64)
    if steps.size > MAX_STEPS:
        steps = np.unique(np.linspace(1, longest - 1, MAX_STEPS).astype(np.int64))
    if steps.size == 0:
        return None
    total = np.zeros(steps.size, dtype=np.int64)
    ok = np.ones(steps.size, dtype=bool)
    sizes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"image": [], "video": []}
    if images:
        hs, ws = (np.array(x, dtype=np.int64) for x in zip(*images))
        H, W = scaled(hs, steps, longest), scaled(ws, steps, longest)
        t = family.count_image_tokens(H.ravel(), W.ravel(), on_error="minus_one").reshape(H.shape)
        ok &= (t >= 0).all(axis=1)
        total += np.maximum(t, 0).sum(axis=1)
        sizes["image"] = [(H[:, k], W[:, k]) for k in range(H.shape[1])]
    for frames, fps, h, w in videos:
        H = scaled(np.array([h]), steps, longest)[:, 0]
        W = scaled(np.array([w]), steps, longest)[:, 0]
        n = H.size
        t = family.count_video_tokens(np.full(n, frames), np.full(n, float(fps)), H, W, on_error="minus_one")
        ok &= t >= 0
        total += np.maximum(t, 0)
        sizes["video"].append((H, W))
    fits = np.flatnonzero(ok & (total <= budget))
    if fits.size == 0:
        return None
    k = int(fits[-1])
    return {
        "scale": int(steps[k]) / longest,
        "image": [(int(H[k]), int(W[k])) for H, W in sizes["image"]],
        "video": [(int(H[k]), int(W[k])) for H, W in sizes["video"]],
        "tokens": int(total[k]),
    }


def _items_of(media: dict[str, np.ndarray], i: int) -> slice:
    rec = media["rec"]
    return slice(int(np.searchsorted(rec, i, "left")), int(np.searchsorted(rec, i, "right")))


def shrink_samples(model: Any, counts: Any, over: list[int], max_len: int,
                   reasons: dict[int, str]) -> dict[int, dict[str, Any]]:
    """Shrink each over-long sample of ``counts`` (a DatasetCounts) to fit ``max_len``.

    Returns ``{index: {"scale", "image", "video", "tokens", "length"}}``; samples that cannot
    shrink get a reason in ``reasons``.
    """
    from ..loading import load

    family = load(model) if isinstance(model, str) else model
    cols = counts.columns
    out: dict[int, dict[str, Any]] = {}
    for i in over:
        fixed = int(cols["total_tokens"][i] - cols["image_tokens"][i] - cols["video_tokens"][i])
        images, videos = [], []
        if "image" in counts.media:
            m = counts.media["image"]
            sl = _items_of(m, i)
            images = list(zip(m["height"][sl].astype(int).tolist(), m["width"][sl].astype(int).tolist()))
        if "video" in counts.media:
            m = counts.media["video"]
            sl = _items_of(m, i)
            videos = list(zip(m["frames"][sl].astype(int).tolist(), m["fps"][sl].tolist(),
                              m["height"][sl].astype(int).tolist(), m["width"][sl].astype(int).tolist()))
        if fixed > max_len:
            reasons[i] = f"sample {i}: its text/audio alone is {fixed} tokens > max_len {max_len}; nothing to shrink"
            continue
        if not images and not videos:
            reasons[i] = f"sample {i}: length {cols['total_tokens'][i]} > max_len {max_len} and it has no image or video to shrink"
            continue
        got = largest_fit(family, images, videos, max_len - fixed)
        if got is None:
            reasons[i] = (f"sample {i}: no image/video size fits {max_len - fixed} tokens "
                          f"(max_len {max_len} - {fixed} text/audio tokens)")
            continue
        got["length"] = fixed + got["tokens"]
        out[i] = got
    return out
