"""Nemotron's media half of ``process``: pixels, frames and audio features with the seed's key
names, the plans they were made from, and the encoder rows each item will produce.

Images of one sample are one request for the dynamic-resolution tiler, so they are processed
per sample (its ``text_len`` budget depends on the sample's text, SPEC §9 Q3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...family import DEFAULT_BACKEND
from ...errors import InvalidInputError


def _cat(parts: list, return_tensors: str):
    if return_tensors == "pt":
        import torch

        return torch.cat(parts) if len(parts) > 1 else parts[0]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _images(family, vocab, texts, per, kw, plans, checks) -> dict[str, Any]:
    from .prompt import nemotron_text_len

    s, rt = family.spec, kw.get("return_tensors", "np")
    values, grids, sizes, tokens = [], [], [], []
    for b, media in enumerate(per):
        items = media.get("image") or []
        if not items:
            continue
        opts: dict[str, Any] = {}
        if s.dynamic:
            opts = dict(text_len=nemotron_text_len(family, vocab, texts[b], kw.get("text_len", 0)),
                        max_model_len=kw.get("max_model_len"))
        pb = family.pixels(items, backend=kw.get("backend", DEFAULT_BACKEND), return_tensors=rt, **opts)
        plans[b]["image"] = list(pb.plans)
        g = np.asarray(pb.grids, dtype=np.int64).reshape(-1, 3)
        rows = int(pb.pixel_values.shape[0])
        want = int(g.prod(axis=1).sum()) if s.dynamic else int(g[:, 0].sum())
        if rows != want:
            raise InvalidInputError(f"sample {b}: image pixels have {rows} rows but the plans say {want}")
        for i, p in enumerate(pb.plans):
            n = int(g[i].prod()) // s.patches_per_token if s.dynamic else int(g[i, 0]) * s.tokens_per_tile
            checks.append((b, "image", i, n))
            sizes.append((p.height, p.width))
            tokens.append(p.num_tokens)
        values.append(pb.pixel_values)
        grids.append(g)
    if not values:
        return {}
    g = np.concatenate(grids)
    out = {"pixel_values_flat": _cat(values, rt)}
    if s.dynamic:
        out.update(imgs_sizes=np.asarray(sizes, np.int64), num_tokens_per_image=np.asarray(tokens, np.int64))
    else:
        out["image_num_patches"] = g[:, 0].copy()
    return out


def _videos(family, per, kw, plans, checks) -> dict[str, Any]:
    items = [x for media in per for x in media.get("video", [])]
    if not items:
        return {}
    rt = kw.get("return_tensors", "np")
    vb = family.video_pixels(items, backend=kw.get("backend", DEFAULT_BACKEND), return_tensors=rt)
    vplans = list(vb.plans)
    frames = [p.num_frames for p in vplans]
    rows = int(vb.pixel_values.shape[0])
    if rows != sum(frames):
        raise InvalidInputError(f"video pixels have {rows} frame tiles but the plans say {sum(frames)} frames")
    k = 0
    for b, media in enumerate(per):
        n = len(media.get("video", []))
        plans[b]["video"] = vplans[k:k + n]
        for i, p in enumerate(plans[b]["video"]):
            checks.append((b, "video", i, sum(p.frame_tokens)))
        k += n
    return {
        "pixel_values_flat_video": vb.pixel_values,
        "video_num_patches": np.asarray(frames, np.int64),
        "frames_indices": [list(p.frame_indices) for p in vplans],
        "frame_duration_ms": np.asarray([p.frame_duration_ms for p in vplans], np.int64),
    }


def _audios(family, per, kw, plans, checks) -> dict[str, Any]:
    items = [x for media in per for x in media.get("audio", [])]
    if not items:
        return {}
    ab = family.audio_features(items)
    aplans = list(ab.plans)
    k = 0
    for b, media in enumerate(per):
        n = len(media.get("audio", []))
        plans[b]["audio"] = aplans[k:k + n]
        for i, p in enumerate(plans[b]["audio"]):
            checks.append((b, "audio", i, int(np.asarray(family.count_audio_tokens(p.num_samples)))))
        k += n
    return {
        "input_audio_features": ab.features,
        "feature_attention_mask": ab.attention_mask,
        "audio_feature_lengths": ab.lengths,
    }


def nemotron_media(family, vocab, texts: list[str], per: list[dict], kw: dict):
    """``(plans per sample, batch entries, slot checks)`` for ``nemotron_process``."""
    plans: list[dict] = [dict() for _ in texts]
    checks: list[tuple[int, str, int, int]] = []
    extra: dict[str, Any] = {}
    extra.update(_images(family, vocab, texts, per, kw, plans, checks))
    extra.update(_videos(family, per, kw, plans, checks))
    extra.update(_audios(family, per, kw, plans, checks))
    return plans, extra, checks
