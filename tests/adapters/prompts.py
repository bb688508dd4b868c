"""Golden adapters for prompts and positions: MRoPE, GLM video placeholders, Nemotron video
prompts. Each maps a case's args onto mmprep's public API and never branches on the case."""

from __future__ import annotations

from mmprep import positions


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
