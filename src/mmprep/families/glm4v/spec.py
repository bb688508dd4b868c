"""GLM-4.1V / GLM-4.6V preprocessing defaults and ``from_hf`` (values and sources: docs/models.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...validate import HfConfig


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
    video_patch_size: int | None = None  # px; the video processor's, None = patch_size
    video_merge_size: int | None = None  # the video processor's, None = merge_size
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
    # engine rules (families/glm4v/engines.py sets them per engine; the defaults are the seed's)
    timestamp_rule: str = "int_seconds"  # "int_seconds": int(idx / fps); "frame_seconds": idx / fps
    short_clip_rule: str = "none"  # GLM-4.1V under one sampling period: "none" (no frame), "one_frame"
    video_token_rule: str = "video"  # token of a video frame's slots: "video" (<|video|>) or "image"

    @property
    def factor(self) -> int:
        """px: resized sides are multiples of patch_size * merge_size (28)."""
        return self.patch_size * self.merge_size

    @property
    def video_patch(self) -> int:
        """px: the video processor's patch size (``video_patch_size``, else ``patch_size``)."""
        return self.patch_size if self.video_patch_size is None else self.video_patch_size

    @property
    def video_merge(self) -> int:
        """The video processor's merge size (``video_merge_size``, else ``merge_size``)."""
        return self.merge_size if self.video_merge_size is None else self.video_merge_size

    @property
    def video_factor(self) -> int:
        """px: resized video frame sides are multiples of video_patch * video_merge."""
        return self.video_patch * self.video_merge

    def video_grid(self, num_frames, height, width):
        """``(ceil(F / tps), height / p, width / p)`` patches of ``F`` frames resized to
        height x width px (the video processor's p): the one home of the video grid (ints or numpy)."""
        return (-(-num_frames // self.temporal_patch_size), height // self.video_patch, width // self.video_patch)

    @classmethod
    def from_hf(
        cls,
        preprocessor_config: dict[str, Any],
        config: dict[str, Any],
        video_preprocessor_config: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> GlmSpec:
        """Read a checkpoint's JSON files (keys missing there keep the defaults above).

        The video processor's ``patch_size`` / ``merge_size`` fill ``video_patch_size`` /
        ``video_merge_size`` (they may differ from the image processor's). Bad values raise
        :class:`InvalidInputError` naming the file and key.
        """
        pre = HfConfig(preprocessor_config, "preprocessor_config.json")
        vid = HfConfig(video_preprocessor_config, "video_preprocessor_config.json")
        cfg = HfConfig(config, "config.json")
        if version is None:
            kind = str(pre.get("image_processor_type", "")) + str(pre.get("processor_class", ""))
            is_46 = "46V" in kind or cfg.get("image_token_id") == VERSIONS["4.6v"]["image_token_id"]
            version = "4.6v" if is_46 else "4.1v"
        kw: dict[str, Any] = {"version": version}
        kw.update(VERSIONS.get(version, {}))
        for src, prefix in ((pre, "image"), (vid, "video")):
            size = src.section("size")
            kw[f"{prefix}_min_pixels"] = size.get_int("shortest_edge")
            kw[f"{prefix}_max_pixels"] = size.get_int("longest_edge")
        for key in ("patch_size", "merge_size", "temporal_patch_size"):
            kw[key] = pre.get_int(key)
        kw["video_patch_size"], kw["video_merge_size"] = vid.get_int("patch_size"), vid.get_int("merge_size")
        kw["image_mean"], kw["image_std"] = pre.get_floats("image_mean"), pre.get_floats("image_std")
        kw["rescale_factor"] = pre.get_float("rescale_factor")
        kw["video_fps"] = vid.get_float("fps")
        kw["video_max_duration"] = vid.get_int("max_duration")
        for key in ("image_start_token_id", "image_end_token_id", "video_start_token_id",
                    "video_end_token_id", "image_token_id", "video_token_id"):
            kw[key] = cfg.get_int(key, minimum=0)
        text = cfg.section("text_config")
        rope = text.section("rope_parameters") if text.get("rope_parameters") is not None else text.section("rope_scaling")
        kw["mrope_section"] = rope.get_floats("mrope_section", integer=True)
        kw["max_position_embeddings"] = text.get_int("max_position_embeddings")
        return cls(**{k: v for k, v in kw.items() if v is not None})
