"""Isaac (Perceptron): binary-search patch sizing, SigLIP2 patches, pixel shuffle, MRoPE.

Defaults are PerceptronAI/Isaac-0.1's processor_config.json (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError, item_prefix
from ..geometry import check_size, isaac_target_size, isaac_target_size_np
from ..types import ImagePlan
from .common import check_spec, finish_counts, size_arrays, with_overrides


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


class Isaac:
    """Isaac preprocessing: ``mmprep.load("isaac")`` returns one."""

    family = "isaac"

    def __init__(self, spec: IsaacSpec | None = None, **overrides: Any):
        self.spec = with_overrides(spec or IsaacSpec(), overrides)
        check_spec(self.spec)
        s = self.spec
        if s.min_num_patches is not None and s.min_num_patches > s.max_num_patches:
            raise InvalidInputError(
                f"min_num_patches {s.min_num_patches} exceeds max_num_patches {s.max_num_patches}"
            )
        if s.patch_size <= 0 or s.pixel_shuffle_scale <= 0 or s.max_num_patches <= 0 or s.eps <= 0:
            raise InvalidInputError(f"IsaacSpec sizes must be positive: {s}")

    def __repr__(self) -> str:
        return "Isaac()"

    def _check_pixels(self, height: int, width: int, index: int | None) -> None:
        limit = self.spec.max_image_pixels
        if limit is not None and height * width > limit:
            raise InvalidInputError(
                f"{item_prefix(index)}image {height}x{width} has {height * width} pixels, "
                f"above the limit of {limit}"
            )

    def plan_image(self, height: int, width: int, *, index: int | None = None) -> ImagePlan:
        """Target size (px), real patch grid ``[1, hp, wp]``, tokens ``hp*wp // s**2``."""
        height, width = check_size(height, width, index)
        self._check_pixels(height, width, index)
        s = self.spec
        th, tw = isaac_target_size(
            height, width, s.patch_size, s.max_num_patches, s.min_num_patches, s.pixel_shuffle_scale, s.eps
        )
        gh, gw = th // s.patch_size, tw // s.patch_size
        return ImagePlan(height, width, th, tw, (1, gh, gw), gh * gw // s.pixel_shuffle_scale**2)

    def count_image_tokens(self, heights, widths, *, on_error: str = "raise") -> np.ndarray:
        """Tokens per image, vectorized; equals ``plan_image(h, w).num_tokens`` everywhere."""
        s = self.spec
        h, w, ok = size_arrays(heights, widths, on_error)
        shape = h.shape
        h, w, ok = h.ravel(), w.ravel(), ok.ravel()
        if s.max_image_pixels is not None:
            ok = ok & (h * w <= s.max_image_pixels)
        th, tw = isaac_target_size_np(
            h, w, s.patch_size, s.max_num_patches, s.min_num_patches, s.pixel_shuffle_scale, s.eps
        )
        counts = (th // s.patch_size) * (tw // s.patch_size) // s.pixel_shuffle_scale**2
        return finish_counts(
            counts, ok, on_error,
            lambda i: f"image {h[i]}x{w[i]} is not a positive size within {s.max_image_pixels} pixels",
        ).reshape(shape)

    def pixels(self, images, *, backend: str = "fast", return_tensors: str = "np", dtype: str = "float32"):
        """Decode, resize (bilinear on uint8) and patchify into ``(Σ patches, p*p*3)`` rows."""
        from ..pixels import isaac_image_pixels

        return isaac_image_pixels(self, images, backend=backend, return_tensors=return_tensors, dtype=dtype)

    def process(self, text=None, images=None, *, tokenizer=None, **kwargs):
        """Model-ready batch: expanded ``input_ids``, pixels, grids, MRoPE ``position_ids``."""
        from ..processor import isaac_process

        return isaac_process(self, text=text, images=images, tokenizer=tokenizer, **kwargs)

    def prompt(self, text, *, images=(), tokenizer=None, **kwargs):
        """The same ``input_ids`` and positions as :meth:`process`, from plans alone."""
        from ..processor import isaac_prompt

        return isaac_prompt(self, text, images=images, tokenizer=tokenizer, **kwargs)
