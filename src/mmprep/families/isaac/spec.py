"""Isaac preprocessing defaults and ``from_hf`` (PerceptronAI/Isaac-0.1's processor_config.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...validate import HfConfig


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
        """Read processor_config.json (flat or with an ``image_processor`` section) and config.json.

        Bad values raise :class:`~mmprep.InvalidInputError` naming the file and key.
        """
        pre = HfConfig(processor_config, "processor_config.json")
        if pre.get("image_processor") is not None:
            img = pre.section("image_processor")
            pre = HfConfig({**pre, **img}, pre.where, {**pre.origins, **{k: img.where for k in img}})
        kw: dict[str, Any] = {}
        for key, field in (("patch_size", "patch_size"), ("max_num_patches", "max_num_patches"),
                           ("vision_max_num_patches", "max_num_patches"),
                           ("min_num_patches", "min_num_patches"),
                           ("vision_min_num_patches", "min_num_patches"),
                           ("pixel_shuffle_scale", "pixel_shuffle_scale"),
                           ("max_sequence_length", "max_sequence_length")):
            value = pre.get_int(key)
            if value is not None:
                kw[field] = value
        kw["vision_token"] = pre.get_str("vision_token")
        kw["image_mean"], kw["image_std"] = pre.get_floats("image_mean"), pre.get_floats("image_std")
        kw["rescale_factor"] = pre.get_float("rescale_factor")
        cfg = HfConfig(config, "config.json")
        text = cfg.section("text_config") if cfg.get("text_config") else cfg
        kw["text_head_dim"] = text.get_int("head_dim")
        return cls(**{k: v for k, v in kw.items() if v is not None})
