"""Isaac preprocessing defaults and ``from_hf`` (PerceptronAI/Isaac-0.1's processor_config.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IsaacSpec:
    """Isaac preprocessing defaults (the image processor's, which the prompt uses)."""

    patch_size: int = 16  # px
    max_num_patches: int = 6144  # patches
    min_num_patches: int | None = 256  # patches; None = no minimum
    pixel_shuffle_scale: int = 2  # patches per side merged into one token
    eps: float = 1e-5  # bisection tolerance on the scale
    max_image_pixels: int | None = 60_000_000  # px area; larger images are rejected (None: no limit)
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    max_sequence_length: int = 16_384  # tokens
    vision_token: str = "<image>"  # what the user writes
    image_pad_token: str = "<|image_pad|>"  # what the prompt holds, once per token
    text_head_dim: int = 128  # for the MRoPE sections [hd//4, hd//8, hd//8]
    # where positions continue after an image: "vllm" (the seed, default) or "perceptron"
    # (the released model's code: +1 after every image); see families/isaac/positions.py
    mrope_rule: str = "vllm"

    @property
    def mrope_section(self) -> tuple[int, int, int]:
        hd = self.text_head_dim
        return (hd // 4, hd // 8, hd // 8)

    @classmethod
    def from_hf(cls, processor_config: dict[str, Any], config: dict[str, Any]) -> IsaacSpec:
        """Read processor_config.json (flat or with an ``image_processor`` section) and config.json."""
        pre = dict(processor_config or {})
        pre.update(pre.pop("image_processor", None) or {})
        kw: dict[str, Any] = {}
        for key, field in (("patch_size", "patch_size"), ("max_num_patches", "max_num_patches"),
                           ("vision_max_num_patches", "max_num_patches"),
                           ("min_num_patches", "min_num_patches"),
                           ("vision_min_num_patches", "min_num_patches"),
                           ("pixel_shuffle_scale", "pixel_shuffle_scale"),
                           ("max_sequence_length", "max_sequence_length")):
            if key in pre and pre[key] is not None:
                kw[field] = int(pre[key])
        if "vision_token" in pre:
            kw["vision_token"] = str(pre["vision_token"])
        for key in ("image_mean", "image_std"):
            if key in pre:
                kw[key] = tuple(float(x) for x in pre[key])
        if "rescale_factor" in pre:
            kw["rescale_factor"] = float(pre["rescale_factor"])
        text = config.get("text_config") or config
        if "head_dim" in text:
            kw["text_head_dim"] = int(text["head_dim"])
        return cls(**kw)
