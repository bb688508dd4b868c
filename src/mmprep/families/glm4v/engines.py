"""Where engines disagree on GLM-4.1V / GLM-4.6V (docs/engines.md).

Read: the seed S3 (vLLM ``glm4_1v.py`` at the seeds' revision); vLLM main
``model_executor/models/glm4_1v.py`` @9ba7fb9b (``_get_video_second_idx_glm4v/46v``,
``_construct_video_placeholder``: the same samplers, ``int(idx / fps)`` timestamps and ``<|video|>``
slots as the seed); transformers 5.24 ``models/glm4v`` and ``models/glm46v``
(``processing_*.replace_video_token`` / ``replace_frame_token_id``, ``video_processing_*.sample_frames``,
``VideoMetadata.timestamps``).
"""

from __future__ import annotations

from typing import Any

from ...engines import EngineRule


def _is_46(spec: Any) -> bool:
    return spec.version == "4.6v"


def _is_41(spec: Any) -> bool:
    return spec.version == "4.1v"


SEED_AND_VLLM = ("vllm-seed", "vllm")

RULES = (
    EngineRule(
        "timestamp_text",
        "GLM-4.6V frame timestamps: whole seconds int(idx / fps) vs idx / fps, printed '{:.1f} seconds'",
        {**{e: {"timestamp_rule": "int_seconds"} for e in SEED_AND_VLLM},
         "transformers": {"timestamp_rule": "frame_seconds"}},
        {"vllm-seed": "'1.0 seconds' for a pair starting at frame 45 of a 30 fps video (int(1.5))",
         "vllm": "the same (glm4_1v.py)",
         "transformers": "'1.5 seconds' (VideoMetadata.timestamps[::2] = idx / fps)"},
        applies=_is_46,
        counts=False,
    ),
    EngineRule(
        "short_clip",
        "GLM-4.1V clip shorter than one sampling period (duration * 2 fps < 1)",
        {**{e: {"short_clip_rule": "none"} for e in SEED_AND_VLLM},
         "transformers": {"short_clip_rule": "one_frame"}},
        {"vllm-seed": "the sampler yields no frame: mmprep raises (vLLM fails later)",
         "vllm": "the same",
         "transformers": "max(floor(duration * fps), 1): frame 0, padded to [0, 0]: one temporal group"},
        applies=_is_41,
    ),
    EngineRule(
        "video_slot_token",
        "GLM video frames: slots hold <|video|> (vLLM) vs <|image|> (transformers), so transformers "
        "counts video slots as image tokens in mixed prompts",
        {**{e: {"video_token_rule": "video"} for e in SEED_AND_VLLM},
         "transformers": {"video_token_rule": "image"}},
        {"vllm-seed": "<|video|> x tokens per temporal group",
         "vllm": "the same",
         "transformers": "<|image|> x tokens per temporal group (replace_frame_token_id); "
                         "input_ids == image_token_id counts images + video frames"},
        counts=False,
    ),
)
