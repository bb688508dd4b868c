"""Golden adapters for the GLM video samplers, through the family's public ``sample_frames``
(the sampler ``plan_video`` runs) with the vector's metadata dict."""

from __future__ import annotations

import mmprep



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
    glm = mmprep.load("glm-4.1v", video_fps=a["vp_fps"], video_max_duration=a["vp_max_duration"])
    return _result(glm.sample_frames(a["total_frames"], a["metadata"]))


def glm46v_sample_frames(a):
    glm = mmprep.load("glm-4.6v", temporal_patch_size=a["temporal_patch_size"])
    return _result(glm.sample_frames(a["total_frames"], a["metadata"]))


RUNNERS = {
    "glm41v_sample_frames": glm41v_sample_frames,
    "glm46v_sample_frames": glm46v_sample_frames,
}
