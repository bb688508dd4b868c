"""Golden adapters for prompts and positions: MRoPE, GLM video placeholders, Nemotron video
prompts. Each maps a case's args onto mmprep's public API and never branches on the case."""

from __future__ import annotations

import hashlib

import mmprep
from mmprep import positions, tokens


def _mrope(fn, twin, merge_key):
    def run(a):
        pos, delta = fn(a["num_tokens"], a["features"], a[merge_key])
        ref_pos, ref_delta = twin(a["num_tokens"], a["features"], a[merge_key])
        assert (pos == ref_pos).all() and delta == ref_delta, "fast and reference positions differ"
        return {"positions": pos.tolist(), "delta": delta}

    return run


RUNNERS = {
    "glm_mrope_positions": _mrope(
        positions.glm_mrope_positions, positions.glm_mrope_positions_reference, "spatial_merge_size"
    ),
    "isaac_mrope_positions": _mrope(
        positions.isaac_mrope_positions, positions.isaac_mrope_positions_reference, "pixel_shuffle_scale"
    ),
}


def glm_video_tokens(a):
    glm = mmprep.load("glm-4.1v", version=a["version"], patch_size=a["patch_size"],
                      merge_size=a["merge_size"], temporal_patch_size=a["temporal_patch_size"])
    s = glm.spec
    grid = tokens.glm_video_grid(a["num_frames"], a["resized_height"], a["resized_width"],
                                 s.patch_size, s.merge_size, s.temporal_patch_size)
    pieces = tokens.glm_video_pieces(s, a["timestamps"], grid)
    items = tokens.pieces_items(pieces)
    t, h, w = grid
    per_frame = h * w // s.merge_size**2
    out = dict(
        video_grid_thw=list(grid), tokens_per_frame=per_frame,
        num_video_tokens=tokens.pieces_num_features(pieces),
        num_encoder_tokens=t * h * w // s.merge_size**2,
        timestamp_texts=[tokens.glm_timestamp_text(s.version, x) for x in a["timestamps"]],
        placeholder_rle=tokens.pieces_rle(pieces), num_items=len(items),
        num_tokens_excluding_timestamp_texts=sum(1 for p in pieces if p.kind != "text" for _ in range(p.repeat)),
    )
    out["counts_match"] = out["num_video_tokens"] == out["num_encoder_tokens"]
    if len(items) <= 3000:
        out["placeholder"] = items
    return out


def nemotron_video_prompt(a):
    nemo = mmprep.load("nemotron-nano-vl", image_size=a["image_size"], patch_size=a["patch_size"],
                       downsample_ratio=a["downsample_ratio"])
    s = nemo.spec
    ms = tokens.nemotron_frame_duration_ms(a["fps"])
    if a["path"] == "model":
        per_frame = list(a["tokens_per_frame"])
    else:
        n = tokens.nemotron_tokens_per_frame(s.image_size, s.patch_size, s.downsample_ratio,
                                             "processor" if a["path"] == "processor" else "prompt_update")
        per_frame = tokens.nemotron_evs_frame_tokens(n, a["num_frames"], a["video_pruning_rate"])
    pieces = tokens.nemotron_video_pieces(s, a["frames_indices"], ms, per_frame)
    text = "".join(p.text * (1 if p.kind == "text" else p.repeat) for p in pieces)
    stamps = tokens.nemotron_timestamps(a["frames_indices"], ms)
    out = dict(
        frame_duration_ms=ms, timestamps=stamps,
        separators=[tokens.nemotron_separator(i, t) for i, t in enumerate(stamps)],
        tokens_per_frame=per_frame, num_context_tokens=tokens.pieces_num_features(pieces),
        text_length=len(text), text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        num_items=len(tokens.pieces_items(pieces)),
    )
    if len(text) <= 30000:
        out["text"] = text
    return out


RUNNERS.update(glm_video_tokens=glm_video_tokens, nemotron_video_prompt=nemotron_video_prompt)
