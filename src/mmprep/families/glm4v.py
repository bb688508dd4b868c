"""GLM-4.1V / GLM-4.6V: smart-resize images, sampled videos, MRoPE.

Defaults are the published checkpoints' (docs/models.md lists each with its source):
GLM-4.1V-9B-Thinking and GLM-4.6V / GLM-4.6V-Flash share the preprocessing and differ in the
video sampler (``version``), the timestamp text and the image/video token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError, item_prefix
from ..geometry import MAX_RATIO, check_size, smart_resize, smart_resize_np
from ..types import ImagePlan
from .common import check_spec, finish_counts, size_arrays, with_overrides

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class GlmSpec:
    """GLM-4.1V / 4.6V preprocessing defaults (checkpoint JSON values, not class defaults)."""

    version: str = "4.1v"  # "4.1v" or "4.6v": sampler and timestamp format
    patch_size: int = 14  # px
    merge_size: int = 2  # patches per side merged into one token
    temporal_patch_size: int = 2  # frames per temporal patch
    image_min_pixels: int = 12_544  # preprocessor size["shortest_edge"] (an area)
    image_max_pixels: int = 9_633_792  # preprocessor size["longest_edge"] (an area, T27)
    video_min_pixels: int = 12_544
    video_max_pixels: int = 47_040_000  # video preprocessor size["longest_edge"]
    video_fps: float = 2.0  # 4.1V sampler: target fps (video processor class default)
    video_max_duration: int = 300  # 4.1V sampler: seconds
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    rescale_factor: float = 1 / 255
    image_start_token: str = "<|begin_of_image|>"
    image_end_token: str = "<|end_of_image|>"
    video_start_token: str = "<|begin_of_video|>"
    video_end_token: str = "<|end_of_video|>"
    image_token: str = "<|image|>"
    video_token: str = "<|video|>"
    image_start_token_id: int = 151339
    image_end_token_id: int = 151340
    video_start_token_id: int = 151341
    video_end_token_id: int = 151342
    image_token_id: int = 151343  # 4.6V: 151363
    video_token_id: int = 151344  # 4.6V: 151364
    mrope_section: tuple[int, int, int] = (8, 12, 12)
    max_position_embeddings: int = 65_536  # 4.6V(-Flash): 131072

    @property
    def factor(self) -> int:
        """px: resized sides are multiples of patch_size * merge_size (28)."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_hf(
        cls,
        preprocessor_config: dict[str, Any],
        config: dict[str, Any],
        video_preprocessor_config: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> GlmSpec:
        """Read a checkpoint's JSON files (keys missing there keep the defaults above)."""
        pre, vid = preprocessor_config or {}, video_preprocessor_config or {}
        if version is None:
            kind = str(pre.get("image_processor_type", "")) + str(pre.get("processor_class", ""))
            is_46 = "46V" in kind or config.get("image_token_id") == 151363
            version = "4.6v" if is_46 else "4.1v"
        kw: dict[str, Any] = {"version": version}
        if version == "4.6v":
            kw.update(image_token_id=151363, video_token_id=151364, max_position_embeddings=131_072)
        for src, prefix in ((pre, "image"), (vid, "video")):
            size = src.get("size") or {}
            if "shortest_edge" in size:
                kw[f"{prefix}_min_pixels"] = int(size["shortest_edge"])
            if "longest_edge" in size:
                kw[f"{prefix}_max_pixels"] = int(size["longest_edge"])
        for key in ("patch_size", "merge_size", "temporal_patch_size"):
            if key in pre:
                kw[key] = int(pre[key])
        if "image_mean" in pre:
            kw["image_mean"] = tuple(float(x) for x in pre["image_mean"])
        if "image_std" in pre:
            kw["image_std"] = tuple(float(x) for x in pre["image_std"])
        if "rescale_factor" in pre:
            kw["rescale_factor"] = float(pre["rescale_factor"])
        if "fps" in vid:
            kw["video_fps"] = float(vid["fps"])
        if "max_duration" in vid:
            kw["video_max_duration"] = int(vid["max_duration"])
        for key in ("image_start_token_id", "image_end_token_id", "video_start_token_id",
                    "video_end_token_id", "image_token_id", "video_token_id"):
            if key in config:
                kw[key] = int(config[key])
        text = config.get("text_config") or {}
        rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
        if "mrope_section" in rope:
            kw["mrope_section"] = tuple(int(x) for x in rope["mrope_section"])
        if "max_position_embeddings" in text:
            kw["max_position_embeddings"] = int(text["max_position_embeddings"])
        return cls(**kw)


class Glm4v:
    """GLM-4.1V / GLM-4.6V preprocessing: ``mmprep.load("glm-4.1v")`` returns one."""

    family = "glm4v"

    def __init__(self, spec: GlmSpec | None = None, **overrides: Any):
        self.spec = with_overrides(spec or GlmSpec(), overrides)
        check_spec(self.spec, non_negative=tuple(f for f in GlmSpec.__dataclass_fields__ if f.endswith("_id")))
        if self.spec.version not in ("4.1v", "4.6v"):
            raise InvalidInputError(f"GlmSpec.version must be '4.1v' or '4.6v', got {self.spec.version!r}")

    def __repr__(self) -> str:
        return f"Glm4v(version={self.spec.version!r})"

    # -- images ------------------------------------------------------------------------------

    def plan_image(self, height: int, width: int, *, index: int | None = None) -> ImagePlan:
        """Resized size (px), patch grid ``[1, h, w]`` and tokens ``h*w // merge**2``."""
        height, width = check_size(height, width, index)
        s = self.spec
        try:
            rh, rw = smart_resize(
                s.temporal_patch_size, height, width, temporal_factor=s.temporal_patch_size,
                factor=s.factor, min_pixels=s.image_min_pixels, max_pixels=s.image_max_pixels,
            )
        except InvalidInputError as e:
            raise InvalidInputError(f"{item_prefix(index)}image {height}x{width}: {e}") from None
        gh, gw = rh // s.patch_size, rw // s.patch_size
        return ImagePlan(height, width, rh, rw, (1, gh, gw), gh * gw // s.merge_size**2)

    def count_image_tokens(self, heights, widths, *, on_error: str = "raise") -> np.ndarray:
        """Tokens per image, vectorized; equals ``plan_image(h, w).num_tokens`` everywhere.

        ``on_error="minus_one"`` marks failed items with -1 instead of raising.
        """
        s = self.spec
        h, w, ok = size_arrays(heights, widths, on_error)
        shape = h.shape
        rh, rw, ratio_ok = smart_resize_np(
            s.temporal_patch_size, h.ravel(), w.ravel(), s.temporal_patch_size, s.factor,
            s.image_min_pixels, s.image_max_pixels,
        )
        # both sides are multiples of patch*merge, so this division is exact in float64
        counts = (rh * rw) / float(s.factor * s.factor)
        ok = ok.ravel() & ratio_ok
        hr, wr = h.ravel(), w.ravel()
        return finish_counts(
            counts, ok, on_error,
            lambda i: f"image {hr[i]}x{wr[i]} is not a positive size with aspect ratio <= {MAX_RATIO}",
        ).reshape(shape)

    def pixels(self, images, *, backend: str = "fast", return_tensors: str = "np", dtype: str = "float32"):
        """Decode, resize and patchify images into ``(Σ patches, 3*tps*p*p)`` rows."""
        from ..pixels import glm_image_pixels

        return glm_image_pixels(self, images, backend=backend, return_tensors=return_tensors, dtype=dtype)

    # -- videos ------------------------------------------------------------------------------

    def plan_video(self, source, **kwargs):
        """Frame indices, timestamps, resized size, grid and tokens of one video."""
        from ..video import glm_plan_video

        return glm_plan_video(self, source, **kwargs)

    def video_pixels(self, videos, *, backend: str = "fast", return_tensors: str = "np", dtype: str = "float32"):
        from ..video import glm_video_pixels

        return glm_video_pixels(self, videos, backend=backend, return_tensors=return_tensors, dtype=dtype)

    # -- prompts -----------------------------------------------------------------------------

    def process(self, text=None, images=None, videos=None, *, tokenizer=None, **kwargs):
        """Model-ready batch: expanded ``input_ids``, pixels, grids, MRoPE ``position_ids``."""
        from ..processor import glm_process

        return glm_process(self, text=text, images=images, videos=videos, tokenizer=tokenizer, **kwargs)

    def prompt(self, text, *, images=(), videos=(), tokenizer=None, **kwargs):
        """The same ``input_ids`` and positions as :meth:`process`, from plans alone."""
        from ..processor import glm_prompt

        return glm_prompt(self, text, images=images, videos=videos, tokenizer=tokenizer, **kwargs)
