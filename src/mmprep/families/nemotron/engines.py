"""Where engines disagree on Nemotron Nano VL / Nemotron-3-Nano-Omni (docs/engines.md).

Read: the seed S2 (vLLM at the seeds' revision); vLLM main ``model_executor/models/nano_nemotron_vl.py``
@00b5bd45 and ``transformers_utils/processors/nano_nemotron_vl.py`` @e6d35296 (``_compute_aspect_preserving_size``,
``get_video_target_size_and_feature_size``, ``get_video_repl`` with ``video_temporal_patch_size``,
``_bicubic_from_ndarray``); transformers 5.24 ``models/nemotron_h_omni`` (image, video and
processor: ``get_patch_grid_size``, ``_compute_target_patches``, ``_estimate_audio_num_embeddings``).
"""

from __future__ import annotations

from typing import Any

from ...engines import EngineRule, FromSpec


def _omni(spec: Any) -> bool:
    """Nemotron-3-Nano-Omni: the dynamic tiler (``min_num_patches`` set)."""
    return spec.dynamic


def _audio(spec: Any) -> bool:
    return spec.has_audio


# the checkpoint's values (NemotronSpec.checkpoint_video_*: 2 / 1024 / true unless its config says otherwise)
OMNI_TUBELETS = {
    "video_temporal_patch_size": FromSpec("checkpoint_video_temporal_patch_size"),
    "video_target_num_patches": FromSpec("checkpoint_video_target_num_patches"),
    "video_maintain_aspect_ratio": FromSpec("checkpoint_video_maintain_aspect_ratio"),
}
SEED_FRAMES = {"video_temporal_patch_size": 1, "video_target_num_patches": None, "video_maintain_aspect_ratio": False}

RULES = (
    EngineRule(
        "video_tubelets",
        "Omni video: one S x S tile per frame vs tubelets of 2 frames resized to ~1024 patches "
        "(the checkpoint's video_temporal_patch_size / video_target_num_patches)",
        {"vllm-seed": SEED_FRAMES, "vllm": OMNI_TUBELETS, "transformers": OMNI_TUBELETS},
        {"vllm-seed": "one 512x512 tile (256 tokens) per frame, one span per frame",
         "vllm": "vision_config video_temporal_patch_size (2), video_target_num_patches (1024): "
                 "ceil(T/2) spans of int(h/p/2)*int(w/p/2) tokens (aspect-preserving size)",
         "transformers": "NemotronH_Omni processor video_temporal_patch_dim and video processor "
                         "video_target_num_patches: the same tubelets and frame size"},
        applies=_omni,
    ),
    EngineRule(
        "video_frames",
        "Omni video frames: vLLM's loader keeps 32 (linspace) vs transformers' video processor keeps every frame given",
        {"transformers": {"video_num_frames": 0}},
        {"vllm-seed": "the opencv loader: min(32, total) frames, evenly spaced",
         "vllm": "the same loader (the engine's --media-io-kwargs may change num_frames)",
         "transformers": "do_sample_frames is off by default: every frame of the decoded video"},
        applies=_omni,
    ),
    EngineRule(
        "evs",
        "Efficient Video Sampling: vLLM prunes video tokens (--video-pruning-rate); transformers' processor never does",
        {"transformers": {"video_pruning_rate": 0.0}},
        {"vllm-seed": "retained_count(tokens, frames, q) with the spec's video_pruning_rate (0.7 in the Omni preset)",
         "vllm": "the same, per tubelet",
         "transformers": "no pruning: every frame / tubelet keeps all its tokens"},
        applies=_omni,  # transformers has a processor for the Omni only
    ),
    EngineRule(
        "frame_newline",
        "Nemotron video: frame separators without / with a leading newline",
        {"vllm-seed": {"video_frame_newline": False}, "vllm": {"video_frame_newline": True},
         "transformers": {"video_frame_newline": True}},
        {"vllm-seed": "'Frame 2 sampled at ...: '", "vllm": "'\\nFrame 2 sampled at ...: '",
         "transformers": "spans joined by '\\n'"},
        counts=False,
    ),
    EngineRule(
        "image_budget",
        "Omni images: the token budget shared by a request's images (rounds) vs one pass per image",
        {"vllm-seed": {"image_budget": "request"}, "vllm": {"image_budget": "request"},
         "transformers": {"image_budget": "per_image"}},
        {"vllm-seed": "compute_params: up to 10 rounds until all images fit the budget",
         "vllm": "the same (DynamicResolutionImageTiler)",
         "transformers": "every image of the call gets the first-round budget; no later rounds"},
        applies=_omni,
    ),
    EngineRule(
        "audio_frames",
        "Omni audio: feature frames n // hop (seed) vs 1 + n // hop (transformers) vs 30 s clips",
        {"vllm-seed": {"audio_token_rule": "vllm"}, "vllm": {"audio_token_rule": "vllm-clips"},
         "transformers": {"audio_token_rule": "transformers"}},
        {"vllm-seed": "ParakeetExtractor.audio_token_count(n): subsample(n // hop), at least 1",
         "vllm": "audio split into 30 s clips (tail >= 0.1 s), tokens summed over clips",
         "transformers": "_estimate_audio_num_embeddings: subsample(1 + n // hop)"},
        applies=_audio,
    ),
    EngineRule(
        "resize",
        "Nemotron resize kernel: PIL bicubic on uint8 vs torch antialiased bicubic on uint8 vs float",
        {"vllm-seed": {"resize_rule": "pil"}, "vllm": {"resize_rule": "torch_uint8"},
         "transformers": {"resize_rule": "torch_float"}},
        {"vllm-seed": "PIL Image.resize(BICUBIC) on the uint8 image, then /255",
         "vllm": "_bicubic_from_ndarray: F.interpolate(uint8, bicubic, antialias=True), then /255",
         "transformers": "F.interpolate on float32 (antialias), no rounding or clamping"},
        counts=False,
    ),
)
