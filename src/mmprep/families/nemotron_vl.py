"""Nemotron Nano VL: InternVL-style tiles or the dynamic-resolution tiler, EVS video, audio.

Two published checkpoints: NVIDIA-Nemotron-Nano-12B-v2-VL (tiles, no audio) and
Nemotron-3-Nano-Omni (dynamic tiler: ``min_num_patches`` set; Parakeet audio). Defaults in
docs/models.md with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BudgetError, InvalidInputError, item_prefix
from ..geometry import (
    TEXT_RESERVE,
    check_size,
    dynamic_budgets,
    dynamic_grid_np,
    internvl_closest_ratio,
    internvl_grid_np,
    internvl_target_ratios,
)
from ..types import ImagePlan, RequestPlan, TileLayout
from .common import check_spec, finish_counts, size_arrays, with_overrides

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
    def tokens_per_tile(self) -> int:
        return int((self.image_size // self.patch_size) ** 2 * self.downsample_ratio**2)

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


class NemotronVL:
    """Nemotron Nano VL preprocessing: ``mmprep.load("nemotron-nano-vl")`` returns one."""

    family = "nemotron_vl"

    def __init__(self, spec: NemotronSpec | None = None, **overrides: Any):
        self.spec = s = with_overrides(spec or NemotronSpec(), overrides)
        check_spec(s, non_negative=("video_fps", "video_pruning_rate"), any_int=("max_num_patches",))
        if s.dynamic:
            if s.use_thumbnail:
                raise InvalidInputError("the dynamic-resolution tiler has no thumbnail (use_thumbnail must be False)")
            if not (0 < s.downsample_ratio < 1) or 1 / s.downsample_ratio != 2.0:
                raise InvalidInputError(
                    f"the dynamic-resolution tiler needs downsample_ratio 0.5, got {s.downsample_ratio}"
                )
            if s.min_num_patches <= 0:
                raise InvalidInputError(f"min_num_patches must be positive, got {s.min_num_patches}")
        if s.min_num_tiles < 1 or s.max_num_tiles < s.min_num_tiles:
            raise InvalidInputError(f"tile bounds must satisfy 1 <= min <= max, got {s.min_num_tiles}, {s.max_num_tiles}")
        if not 0 <= s.video_pruning_rate < 1:
            raise InvalidInputError(f"video_pruning_rate must be in [0, 1), got {s.video_pruning_rate}")

    def __repr__(self) -> str:
        return f"NemotronVL(dynamic={self.spec.dynamic}, audio={self.spec.has_audio})"

    # -- tiles (InternVL-style) --------------------------------------------------------------

    def _plan_tiles(self, height: int, width: int, max_num_tiles: int | None) -> ImagePlan:
        s = self.spec
        ratios = internvl_target_ratios(s.min_num_tiles, max_num_tiles or s.max_num_tiles)
        cols, rows = internvl_closest_ratio(width, height, ratios, s.image_size)
        blocks = cols * rows
        thumbnail = s.use_thumbnail and blocks != 1
        num_tiles = blocks + int(thumbnail)
        side = s.image_size // s.patch_size
        return ImagePlan(
            height, width, s.image_size * rows, s.image_size * cols, (num_tiles, side, side),
            num_tiles * s.tokens_per_tile, TileLayout(cols, rows, s.image_size, thumbnail, num_tiles),
        )

    # -- dynamic resolution ------------------------------------------------------------------

    def plan_request(
        self, images, *, text_len: int = 0, max_model_len: int | None = None, strict: bool = False
    ) -> RequestPlan:
        """Plan all images of one prompt together (dynamic tiler only).

        ``images``: ``(height, width)`` pairs in px. ``text_len``: tokens of the prompt with every
        ``<image>`` removed, no special tokens. ``max_model_len``: the engine's context length
        (default: the spec's).

        Like vLLM, a plan that exceeds the budget is still returned (``fits_context`` False):
        ``min_num_patches`` per image is a floor the tiler never goes below, even when the text
        alone already exceeds the context. ``strict=True`` raises :class:`BudgetError` instead.
        """
        s = self.spec
        if not s.dynamic:
            raise InvalidInputError("plan_request needs the dynamic-resolution tiler (min_num_patches set)")
        sizes = [check_size(h, w, i) for i, (h, w) in enumerate(images)]
        if not sizes:
            raise InvalidInputError("plan_request needs at least one image")
        max_model_len = s.max_model_len if max_model_len is None else max_model_len
        if isinstance(text_len, bool) or int(text_len) != text_len or text_len < 0:
            raise InvalidInputError(f"text_len must be a non-negative int, got {text_len!r}")
        available = max_model_len - text_len - TEXT_RESERVE
        cap = s.max_num_patches if s.max_num_patches and s.max_num_patches > 0 else float("inf")
        grids, rounds, budgets, patch_budget = dynamic_budgets(
            sizes, available, s.patch_size, s.min_num_patches, cap, s.factor_max
        )
        plans = tuple(
            ImagePlan(h, w, th * s.patch_size, tw * s.patch_size, (1, th, tw), tw * th // 4)
            for (h, w), (th, tw) in zip(sizes, grids)
        )
        plan = RequestPlan(plans, int(text_len), int(max_model_len), available, patch_budget, rounds, tuple(budgets))
        if strict and not plan.fits_context:
            raise BudgetError(
                f"{len(plans)} images need {plan.total_tokens} tokens but max_model_len {max_model_len} "
                f"leaves {available} after {text_len} text tokens and {TEXT_RESERVE} reserved"
            )
        return plan

    # -- the common API ----------------------------------------------------------------------

    def plan_image(
        self, height: int, width: int, *, index: int | None = None, max_num_tiles: int | None = None
    ) -> ImagePlan:
        """Tiles: canvas size, ``(num_tiles, S/p, S/p)``, tokens. Dynamic: a one-image request
        with no text at the spec's ``max_model_len``."""
        height, width = check_size(height, width, index)
        if not self.spec.dynamic:
            return self._plan_tiles(height, width, max_num_tiles)
        try:
            return self.plan_request([(height, width)]).images[0]
        except BudgetError as e:
            raise BudgetError(f"{item_prefix(index)}{e}") from None

    def count_image_tokens(self, heights, widths, *, on_error: str = "raise") -> np.ndarray:
        """Tokens per image, vectorized; equals ``plan_image(h, w).num_tokens`` everywhere."""
        s = self.spec
        h, w, ok = size_arrays(heights, widths, on_error)
        shape = h.shape
        h, w, ok = h.ravel(), w.ravel(), ok.ravel()
        if not s.dynamic:
            cols, rows = internvl_grid_np(h, w, s.min_num_tiles, s.max_num_tiles, s.image_size)
            blocks = cols * rows
            tiles = blocks + ((blocks != 1) & s.use_thumbnail)
            counts = tiles * s.tokens_per_tile
        else:
            available = s.max_model_len - TEXT_RESERVE
            budget = max(available * 4, s.min_num_patches)
            cap = s.max_num_patches if s.max_num_patches and s.max_num_patches > 0 else float("inf")
            per_image = int(max(min(budget, cap), s.min_num_patches))
            th, tw, grid_ok = dynamic_grid_np(h, w, per_image, s.patch_size, s.min_num_patches, s.factor_max)
            counts = th * tw // 4
            ok = ok & grid_ok
            # a single image over the whole-request budget takes further rounds: rare, do it exactly
            for i in np.flatnonzero(ok & (th * tw > budget)):
                try:
                    counts[i] = self.plan_image(int(h[i]), int(w[i])).num_tokens
                except BudgetError:
                    ok[i] = False
        return finish_counts(
            counts, ok, on_error, lambda i: f"image {h[i]}x{w[i]} cannot be planned"
        ).reshape(shape)

    def pixels(
        self, images, *, backend: str = "fast", return_tensors: str = "np", dtype: str = "float32",
        text_len: int = 0, max_model_len: int | None = None,
    ):
        """Tiles ``(Σ tiles, 3, S, S)`` or dynamic ``(Σ patches, 3*p*p)`` in the seed's layout.

        With the dynamic tiler all ``images`` are planned as one request (``plan_request`` with
        ``text_len`` and ``max_model_len``), as vLLM plans one prompt's images.
        """
        from ..pixels import nemotron_image_pixels

        return nemotron_image_pixels(self, images, backend=backend, return_tensors=return_tensors,
                                     dtype=dtype, text_len=text_len, max_model_len=max_model_len)

    # -- video and audio ---------------------------------------------------------------------

    def plan_video(self, source, **kwargs):
        from ..video import nemotron_plan_video

        return nemotron_plan_video(self, source, **kwargs)

    def video_pixels(self, videos, *, backend: str = "fast", return_tensors: str = "np", dtype: str = "float32"):
        from ..video import nemotron_video_pixels

        return nemotron_video_pixels(self, videos, backend=backend, return_tensors=return_tensors, dtype=dtype)

    def count_audio_tokens(self, num_samples=None, *, seconds=None):
        from ..audio import nemotron_count_audio_tokens

        return nemotron_count_audio_tokens(self, num_samples, seconds=seconds)

    def plan_audio(self, source, **kwargs):
        from ..audio import nemotron_plan_audio

        return nemotron_plan_audio(self, source, **kwargs)

    def audio_features(self, audios, *, sampling_rate=None, **kwargs):
        from ..audio import nemotron_audio_features

        return nemotron_audio_features(self, audios, sampling_rate=sampling_rate, **kwargs)

    # -- prompts -----------------------------------------------------------------------------

    def process(self, text=None, images=None, videos=None, audios=None, *, tokenizer=None, **kwargs):
        from ..processor import nemotron_process

        return nemotron_process(self, text=text, images=images, videos=videos, audios=audios,
                                tokenizer=tokenizer, **kwargs)

    def prompt(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **kwargs):
        from ..processor import nemotron_prompt

        return nemotron_prompt(self, text, images=images, videos=videos, audios=audios,
                               tokenizer=tokenizer, **kwargs)
