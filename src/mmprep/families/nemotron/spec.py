"""Nemotron Nano VL preprocessing defaults and ``from_hf`` (12B-v2-VL values; the Omni preset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...validate import HfConfig


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
    video_num_frames: int = 32  # vLLM's default video loader: frames to sample; 0: every frame
    video_fps: float = 0.0  # vLLM's opencv loader: <= 0 means "no fps target"
    video_max_num_tiles: int = 1  # videos use one tile per frame
    video_patch_size: int | None = None  # px; the video processor's, None = patch_size
    video_downsample_ratio: float | None = None  # the video processor's, None = downsample_ratio
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
    # engine rules (families/nemotron/engines.py sets them per engine; the defaults are the seed's)
    video_temporal_patch_size: int = 1  # frames per tubelet (one prompt span per tubelet)
    video_target_num_patches: int | None = None  # patches per frame; None: one S x S tile
    video_maintain_aspect_ratio: bool = False  # target patches spread by the frame's aspect ratio
    video_frame_newline: bool = False  # "\n" before every frame separator but the first
    image_budget: str = "request"  # "request": vLLM's rounds over all images; "per_image": one pass
    audio_token_rule: str = "vllm"  # "vllm" (n // hop), "vllm-clips", "transformers" (1 + n // hop)
    resize_rule: str = "pil"  # "pil" (seed), "torch_uint8" (current vLLM), "torch_float" (transformers)
    # the checkpoint's video tubelet settings (from_hf reads them); the "vllm" and "transformers"
    # profiles copy them into the three video_* fields above, the seed ignores them
    checkpoint_video_temporal_patch_size: int = 2  # frames per tubelet
    checkpoint_video_target_num_patches: int = 1024  # patches per resized frame
    checkpoint_video_maintain_aspect_ratio: bool = True

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
    def video_patch(self) -> int:
        """px: the video processor's patch size (``video_patch_size``, else ``patch_size``)."""
        return self.patch_size if self.video_patch_size is None else self.video_patch_size

    @property
    def video_ratio(self) -> float:
        """The video processor's downsample ratio (``video_downsample_ratio``, else ``downsample_ratio``)."""
        return self.downsample_ratio if self.video_downsample_ratio is None else self.video_downsample_ratio

    @property
    def tubelets(self) -> bool:
        """True when frames are grouped (``video_temporal_patch_size > 1``) or resized to a patch target."""
        return self.video_temporal_patch_size > 1 or self.video_target_num_patches is not None

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one video frame before EVS (T19). ``video_frame_tokens_rule="prompt_update"``
        (default; the prompt vLLM serves) is :attr:`tokens_per_tile`; ``"processor"`` is the
        HF-style processor's own text, ``int((S * S // p ** 2) * r ** 2)``. They agree when p divides S."""
        S, p, r = self.image_size, self.video_patch, self.video_ratio
        if self.video_frame_tokens_rule == "processor":
            return int((S * S // p**2) * r**2)
        return int((S // p) ** 2 * r**2)

    @classmethod
    def from_hf(
        cls,
        preprocessor_config: dict[str, Any],
        config: dict[str, Any],
        video_preprocessor_config: dict[str, Any] | None = None,
    ) -> NemotronSpec:
        """Read a checkpoint's JSON: the released remote-code files or transformers 5's
        ``nemotron_h_omni`` ones (``NemotronH_Omni_Reasoning_V3*``).

        Image settings come from the image processor where it has them (transformers' processor
        plans with its own ``min/max_num_patches``, ``max_model_len``, ``patch_size``,
        ``downsample_ratio`` and ``image_mean/std``), else from config.json
        (``vision_config.args``, ``max_sequence_length``, ``norm_mean/std``). An Omni directory
        (``omni`` in its model type or processor class) without patch bounds takes the Omni preset's.
        Audio: ``audio_config`` (transformers) or ``sound_config`` (released), then the processor's
        ``audio_*`` and ``feature_extractor`` values. The video processor's ``patch_size`` /
        ``downsample_ratio`` fill ``video_patch_size`` / ``video_downsample_ratio``. The Omni's
        tubelet settings (``checkpoint_video_*``, used by the ``"vllm"`` / ``"transformers"``
        profiles) come from ``vision_config`` (what vLLM reads), the config's top level, then the
        processor (``video_temporal_patch_dim``) and video processor (``temporal_patch_size``,
        ``video_target_num_patches``, ``video_maintain_aspect_ratio``). Bad values raise
        :class:`InvalidInputError` naming the file and key.
        """
        cfg = HfConfig(config, "config.json")
        pre = HfConfig(preprocessor_config, "preprocessor_config.json")
        if pre.get("image_processor") is not None:  # a whole processor_config.json
            img = pre.section("image_processor")
            pre = HfConfig({**pre, **img}, pre.where, {**pre.origins, **{k: img.where for k in img}})
        vid = HfConfig(video_preprocessor_config, "video_preprocessor_config.json")
        if not vid and pre.get("video_processor") is not None:
            vid = pre.section("video_processor")
        vision = cfg.section("vision_config")
        args = vision.section("args")

        first = _first
        names = " ".join(str(x) for x in (cfg.get("model_type"), cfg.get("architectures"),
                                           pre.get("image_processor_type"), pre.get("processor_class")))
        omni = "omni" in names.lower()
        kw: dict[str, Any] = {
            "image_size": cfg.get_int("force_image_size"),  # null in transformers' config: keep 512
            "patch_size": first(pre.get_int("patch_size"), cfg.get_int("patch_size"), vision.get_int("patch_size")),
            "downsample_ratio": first(pre.get_float("downsample_ratio"), cfg.get_float("downsample_ratio")),
            "video_pruning_rate": cfg.get_float("video_pruning_rate", strict=False),
            "use_thumbnail": cfg.get_bool("use_thumbnail"),
            "ps_version": cfg.get_str("ps_version"),
            "max_num_tiles": pre.get_int("max_num_tiles"),
            "max_model_len": first(pre.get_int("max_model_len"), cfg.get_int("max_sequence_length")),
            "video_patch_size": vid.get_int("patch_size"),
            "video_downsample_ratio": vid.get_float("downsample_ratio"),
        }
        kw.update(_tubelet_settings(cfg, vision, pre, vid))
        if pre.get("image_mean") is not None or pre.get("image_std") is not None:
            # transformers' image processor (it renames norm_mean/std) normalizes with these
            kw["norm_mean"], kw["norm_std"] = pre.get_floats("image_mean"), pre.get_floats("image_std")
        else:
            kw["norm_mean"] = first(cfg.get_floats("norm_mean"), pre.get_floats("norm_mean"))
            kw["norm_std"] = first(cfg.get_floats("norm_std"), pre.get_floats("norm_std"))
        released = pre.get("min_num_patches") is None and args.get("min_num_patches") is not None
        kw["min_num_patches"] = first(pre.get_int("min_num_patches"), args.get_int("min_num_patches"),
                                      OMNI["min_num_patches"] if omni else None)
        max_patches = first(pre.get_int("max_num_patches", minimum=None), args.get_int("max_num_patches", minimum=None))
        if kw["min_num_patches"] is not None:  # the dynamic tiler; vLLM's max default is 0 (no cap)
            kw["max_num_patches"] = first(max_patches, 0 if released else OMNI["max_num_patches"])
            kw["use_thumbnail"] = False
        audio = cfg.section("audio_config") if cfg.get("audio_config") is not None else cfg.section("sound_config")
        extractor = pre.section("feature_extractor")
        kw.update(
            audio_num_mel_bins=first(audio.get_int("num_mel_bins"), extractor.get_int("feature_size")),
            audio_subsampling_factor=first(pre.get_int("audio_subsampling_factor"), audio.get_int("subsampling_factor")),
            audio_sampling_rate=first(pre.get_int("audio_sampling_rate"), extractor.get_int("sampling_rate"),
                                      audio.get_int("sampling_rate")),
            audio_hop_length=first(pre.get_int("audio_hop_length"), extractor.get_int("hop_length")),
            audio_n_fft=extractor.get_int("n_fft"),
            audio_win_length=extractor.get_int("win_length"),
            audio_preemphasis=extractor.get_float("preemphasis", strict=False),
        )
        # audio: the config's encoder section (null turns it off); with no such key, a processor
        # that carries a feature extractor or audio settings
        no_key = "audio_config" not in cfg and "sound_config" not in cfg
        if audio or (no_key and (extractor or any(k.startswith("audio_") for k in pre))):
            kw["has_audio"] = True
        return cls(**{k: v for k, v in kw.items() if v is not None})


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _tubelet_settings(cfg: HfConfig, vision: HfConfig, pre: HfConfig, vid: HfConfig) -> dict[str, Any]:
    """The checkpoint's video tubelet values (None where no file has them): vLLM reads
    ``vision_config``; transformers' config keeps the temporal size at the top level too, its
    processor as ``video_temporal_patch_dim`` and its video processor as ``temporal_patch_size``."""
    key = "video_temporal_patch_size"
    return {
        "checkpoint_video_temporal_patch_size": _first(
            vision.get_int(key), cfg.get_int(key), pre.get_int("video_temporal_patch_dim"),
            vid.get_int("temporal_patch_size")),
        "checkpoint_video_target_num_patches": _first(*(
            c.get_int("video_target_num_patches") for c in (vision, cfg, vid))),
        "checkpoint_video_maintain_aspect_ratio": _first(*(
            c.get_bool("video_maintain_aspect_ratio") for c in (vision, cfg, vid))),
    }


OMNI = dict(
    min_num_patches=1024, max_num_patches=13312, use_thumbnail=False, has_audio=True,
)
