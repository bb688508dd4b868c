"""Golden adapters for the GLM video samplers (mmprep.sampling)."""

from __future__ import annotations

from mmprep import sampling


def _result(sample) -> dict:
    out = dict(
        frame_indices=list(sample.frame_indices), num_frames=sample.num_frames,
        timestamps=list(sample.timestamps), branch=sample.branch,
        num_before_dedupe=sample.num_before_dedupe,
    )
    for key in ("extract_t", "target_fps", "max_second"):
        if getattr(sample, key) is not None:
            out[key] = getattr(sample, key)
    return out


def glm41v_sample_frames(a):
    return _result(sampling.glm41v_sample_frames(
        a["total_frames"], a["metadata"], fps=a["vp_fps"], max_duration=a["vp_max_duration"]
    ))


def glm46v_sample_frames(a):
    return _result(sampling.glm46v_sample_frames(
        a["total_frames"], a["metadata"], temporal_patch_size=a["temporal_patch_size"]
    ))


RUNNERS = {
    "glm41v_sample_frames": glm41v_sample_frames,
    "glm46v_sample_frames": glm46v_sample_frames,
}
