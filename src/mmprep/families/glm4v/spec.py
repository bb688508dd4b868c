"""GLM-4.1V / GLM-4.6V preprocessing defaults and ``from_hf`` (values and sources: docs/models.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# What differs per version besides the sampler and the timestamp text: the one home of these ids.
VERSIONS: dict[str, dict[str, int]] = {
    "4.1v": dict(image_token_id=151343, video_token_id=151344, max_position_embeddings=65_536),
    "4.6v": dict(image_token_id=151363, video_token_id=151364, max_position_embeddings=131_072),
}


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
    image_token_id: int = VERSIONS["4.1v"]["image_token_id"]  # per version: VERSIONS
    video_token_id: int = VERSIONS["4.1v"]["video_token_id"]
    mrope_section: tuple[int, int, int] = (8, 12, 12)
    max_position_embeddings: int = VERSIONS["4.1v"]["max_position_embeddings"]

    @property
    def factor(self) -> int:
        """px: resized sides are multiples of patch_size * merge_size (28)."""
        return self.patch_size * self.merge_size

    def video_grid(self, num_frames, height, width):
        """``(ceil(F / tps), height / p, width / p)`` patches of ``F`` frames resized to
        height x width px: the one home of the video grid (works on ints and numpy arrays)."""
        return (-(-num_frames // self.temporal_patch_size), height // self.patch_size, width // self.patch_size)

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
            is_46 = "46V" in kind or config.get("image_token_id") == VERSIONS["4.6v"]["image_token_id"]
            version = "4.6v" if is_46 else "4.1v"
        kw: dict[str, Any] = {"version": version}
        kw.update(VERSIONS.get(version, {}))
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
