"""Nemotron Nano VL preprocessing defaults and ``from_hf`` (12B-v2-VL values; the Omni preset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class NemotronSpec:
    """Nemotron Nano VL preprocessing defaults (12B-v2-VL values; the Omni preset changes some)."""

    image_size: int = 512  # px, config force_image_size: tile side
    patch_size: int = 16  # px
    downsample_ratio: float = 0.5  # pixel shuffle: tokens = patches * r**2
    use_thumbnail: bool = True
    min_num_tiles: int = 1
    max_num_tiles: int = 12  # DEFAULT_NUM_TILES
    min_num_patches: int | None = None  # set => dynamic-resolution tiler (patches)
    max_num_patches: int | None = None  # patches; <= 0 means no cap
    factor_max: float = 1.0
    max_model_len: int = 131_072  # tokens; the dynamic tiler's budget for one-image counts
    norm_mean: tuple[float, float, float] = CLIP_MEAN
    norm_std: tuple[float, float, float] = CLIP_STD
    ps_version: str = "v2"
    video_frame_tokens_rule: str = "prompt_update"  # or "processor": see tokens_per_frame
    video_pruning_rate: float = 0.7  # EVS; 0 turns pruning off
    video_num_frames: int = 32  # vLLM's default video loader: frames to sample
    video_fps: float = 0.0  # vLLM's opencv loader: <= 0 means "no fps target"
    video_max_num_tiles: int = 1  # videos use one tile per frame
    img_start_token: str = "<img>"
    img_end_token: str = "</img>"
    img_context_token: str = "<image>"
    video_context_token: str = "<video>"
    audio_start_token: str = "<so_start>"
    audio_end_token: str = "<so_end>"
    audio_context_token: str = "<so_embedding>"
    has_audio: bool = False
    audio_sampling_rate: int = 16_000  # Hz
    audio_hop_length: int = 160  # samples
    audio_n_fft: int = 512
    audio_win_length: int = 400
    audio_preemphasis: float = 0.97
    audio_num_mel_bins: int = 128
    audio_subsampling_factor: int = 8
    audio_max_seconds: float = 600.0  # MAX_AUDIO_LEN_S

    @property
    def dynamic(self) -> bool:
        """True when the dynamic-resolution tiler plans images (vLLM: min_num_patches in args)."""
        return self.min_num_patches is not None

    @property
    def patches_per_token(self) -> int:
        """Patches merged into one token by the pixel shuffle: ``(1 / downsample_ratio) ** 2``."""
        return round(1 / self.downsample_ratio) ** 2

    @property
    def tokens_per_tile(self) -> int:
        """Tokens of one S x S tile: ``int((S // p) ** 2 * r ** 2)``."""
        return int((self.image_size // self.patch_size) ** 2 * self.downsample_ratio**2)

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one video frame before EVS (T19). ``video_frame_tokens_rule="prompt_update"``
        (default; the prompt vLLM serves) is :attr:`tokens_per_tile`; ``"processor"`` is the
        HF-style processor's own text, ``int((S * S // p ** 2) * r ** 2)``. They agree when p divides S."""
        if self.video_frame_tokens_rule == "processor":
            return int((self.image_size * self.image_size // self.patch_size**2) * self.downsample_ratio**2)
        return self.tokens_per_tile

    @classmethod
    def from_hf(cls, preprocessor_config: dict[str, Any], config: dict[str, Any]) -> NemotronSpec:
        pre = dict(preprocessor_config or {})
        pre.update(pre.pop("image_processor", None) or {})
        kw: dict[str, Any] = {}
        if "force_image_size" in config:
            kw["image_size"] = int(config["force_image_size"])
        for key in ("patch_size",):
            if key in config:
                kw[key] = int(config[key])
        for key in ("downsample_ratio", "video_pruning_rate"):
            if key in config and config[key] is not None:
                kw[key] = float(config[key])
        if "use_thumbnail" in config:
            kw["use_thumbnail"] = bool(config["use_thumbnail"])
        if "ps_version" in config:
            kw["ps_version"] = str(config["ps_version"])
        for key in ("norm_mean", "norm_std"):
            src = config.get(key, pre.get(key))
            if src is not None:
                kw[key] = tuple(float(x) for x in src)
        if "max_num_tiles" in pre:
            kw["max_num_tiles"] = int(pre["max_num_tiles"])
        args = (config.get("vision_config") or {}).get("args") or {}
        if "min_num_patches" in args:
            kw["min_num_patches"] = int(args["min_num_patches"])
            kw["max_num_patches"] = int(args.get("max_num_patches", 0))
            kw["use_thumbnail"] = False
        if "max_sequence_length" in config:
            kw["max_model_len"] = int(config["max_sequence_length"])
        sound = config.get("sound_config")
        if sound:
            kw["has_audio"] = True
            if "num_mel_bins" in sound:
                kw["audio_num_mel_bins"] = int(sound["num_mel_bins"])
            if "subsampling_factor" in sound:
                kw["audio_subsampling_factor"] = int(sound["subsampling_factor"])
            if "sampling_rate" in sound:
                kw["audio_sampling_rate"] = int(sound["sampling_rate"])
        return cls(**kw)


OMNI = dict(
    min_num_patches=1024, max_num_patches=13312, use_thumbnail=False, has_audio=True,
)
