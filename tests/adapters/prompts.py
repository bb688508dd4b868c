"""Golden adapters for prompts and positions: MRoPE, GLM video placeholders, Nemotron video
prompts. Each maps a case's args onto mmprep's public API (``mmprep.load``, ``plan_video``,
``placeholder``, ``mrope_positions``) and never branches on the case."""

from __future__ import annotations

import dataclasses
import hashlib

import mmprep
from mmprep import InvalidInputError, VideoMetadata
from mmprep.prompt.tokens import pieces_items, pieces_num_features, pieces_rle


def _mrope(name, merge_field, merge_key):
    def run(a):
        family = mmprep.load(name, **{merge_field: a[merge_key]})
        pos, delta = family.mrope_positions(a["num_tokens"], a["features"])
        return {"positions": pos.tolist(), "delta": delta}

    return run


RUNNERS = {
    "glm_mrope_positions": _mrope("glm-4.1v", "merge_size", "spatial_merge_size"),
    "isaac_mrope_positions": _mrope("isaac", "pixel_shuffle_scale", "pixel_shuffle_scale"),
}


def glm_video_tokens(a):
    """The vector gives the sampler's outputs (frame count, timestamps) and the resized size: plan
    that many chosen frames of a video already at that size, then put the sampler's timestamps on
    the plan (what a caller who ran their own sampler does) and read its placeholder."""
    glm = mmprep.load("glm-4.1v", version=a["version"], patch_size=a["patch_size"],
                      merge_size=a["merge_size"], temporal_patch_size=a["temporal_patch_size"])
    meta = VideoMetadata(max(a["num_frames"], 1), 1.0, a["resized_height"], a["resized_width"])
    plan = glm.plan_video(meta, frame_indices=range(a["num_frames"]))
    assert (plan.height, plan.width) == (a["resized_height"], a["resized_width"]), "the resize must keep the size"
    plan = dataclasses.replace(plan, timestamps=tuple(a["timestamps"]))
    pieces = glm.placeholder(plan)
    items = pieces_items(pieces)
    t, h, w = plan.grid
    out = dict(
        video_grid_thw=list(plan.grid), tokens_per_frame=plan.tokens_per_frame,
        num_video_tokens=pieces_num_features(pieces),
        num_encoder_tokens=t * h * w // glm.spec.merge_size**2,
        timestamp_texts=[p.text for p in pieces if p.kind == "text"],
        placeholder_rle=pieces_rle(pieces), num_items=len(items),
        num_tokens_excluding_timestamp_texts=sum(p.repeat for p in pieces if p.kind != "text"),
    )
    out["counts_match"] = out["num_video_tokens"] == out["num_encoder_tokens"]
    if len(items) <= 3000:
        out["placeholder"] = items
    return out


def nemotron_video_prompt(a):
    """Chosen frames at the vector's fps; ``path`` names the per-frame token rule: the prompt vLLM
    serves, the HF-style processor's text, or the model's own EVS counts (``frame_tokens``)."""
    rule = "processor" if a["path"] == "processor" else "prompt_update"
    nemo = mmprep.load("nemotron-nano-vl", image_size=a["image_size"], patch_size=a["patch_size"],
                       downsample_ratio=a["downsample_ratio"], video_frame_tokens_rule=rule,
                       video_pruning_rate=a["video_pruning_rate"] or 0.0)
    indices = a["frames_indices"]
    if len(indices) != a["num_frames"]:  # the vector's two inputs disagree; the API takes one list
        raise InvalidInputError(f"{len(indices)} frame indices for {a['num_frames']} frames")
    meta = VideoMetadata(max(indices, default=0) + 1, float(a["fps"]) if a["fps"] else 1.0)
    plan = nemo.plan_video(meta, frame_indices=indices, fps=a["fps"],
                           frame_tokens=a["tokens_per_frame"] if a["path"] == "model" else None)
    pieces = nemo.placeholder(plan)
    text = "".join(p.text * (1 if p.kind == "text" else p.repeat) for p in pieces)
    out = dict(
        frame_duration_ms=plan.frame_duration_ms, timestamps=list(plan.timestamps),
        separators=[p.text for p in pieces if p.kind == "text"],
        tokens_per_frame=list(plan.frame_tokens), num_context_tokens=pieces_num_features(pieces),
        text_length=len(text), text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        num_items=len(pieces_items(pieces)),
    )
    if len(text) <= 30000:
        out["text"] = text
    return out


RUNNERS.update(glm_video_tokens=glm_video_tokens, nemotron_video_prompt=nemotron_video_prompt)
