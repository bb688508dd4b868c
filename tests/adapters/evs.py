"""Golden adapters for EVS (mmprep.evs): counts, masks (torch float32) and MRoPE helpers."""

from __future__ import annotations

import numpy as np

from mmprep import evs


def evs_retained_count(a):
    got = evs.retained_count(a["tokens_per_frame"], a["num_frames"], a["q"])
    vec = evs.retained_count(np.array([a["tokens_per_frame"]]), np.array([a["num_frames"]]), a["q"])
    assert int(vec[0]) == got
    return {"retained": got}


def evs_retention_mask(a):
    import torch

    dtype = getattr(torch, a["dtype"])
    emb = torch.tensor(a["embeddings"], dtype=dtype).reshape(len(a["embeddings"]), -1) if a["embeddings"] \
        else torch.zeros((0, a["dim"]), dtype=dtype)
    T, H, W, m = a["T"], a["H"], a["W"], a["spatial_merge_size"]
    mask = evs.retention_mask(emb, T, H, W, m, a["q"])
    np_mask = evs.retention_mask(emb.numpy(), T, H, W, m, a["q"])
    assert np.array_equal(np_mask, mask.numpy())
    flat = mask.to(torch.int64).tolist()
    return dict(
        mask=flat, retained_count=evs.retained_count((H // m) * (W // m), T, a["q"]),
        mask_sum=sum(flat), tokens_per_frame=evs.tokens_per_frame(mask, T),
    )


def evs_mrope_for_media(a):
    pos = evs.mrope_for_media(
        a["video_size_thw"], a["spatial_merge_size"], a["tokens_per_second"], a["video_second_per_grid"]
    )
    return {"positions": pos.tolist(), "num_tokens": int(pos.shape[0])}


def evs_mrope_recompute(a):
    pos, delta = evs.recompute_mrope_positions(
        a["input_ids"], a["multimodal_positions"], a["mrope_positions"], a["num_computed_tokens"],
        a["vision_start_token_id"], a["image_token_id"], a["video_token_id"],
    )
    return {"positions": pos.tolist(), "delta": delta}


RUNNERS = {
    "evs_retained_count": evs_retained_count,
    "evs_retention_mask": evs_retention_mask,
    "evs_mrope_for_media": evs_mrope_for_media,
    "evs_mrope_recompute": evs_mrope_recompute,
}
