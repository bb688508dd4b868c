"""Nemotron Nano VL: InternVL-style tiles or the dynamic-resolution tiler, EVS video, audio.

Two published checkpoints: NVIDIA-Nemotron-Nano-12B-v2-VL (tiles, no audio) and
Nemotron-3-Nano-Omni (dynamic tiler: ``min_num_patches`` set; Parakeet audio). Defaults in
docs/models.md with their sources.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import BudgetError, InvalidInputError, item_prefix
from ...family import DEFAULT_BACKEND, unsupported
from ...types import ImagePlan, RequestPlan, TileLayout
from ...validate import MAX_COUNT, check_int, check_size, check_spec, finish_counts, size_arrays, with_overrides
from .engines import RULES
from .dynamic import TEXT_RESERVE, dynamic_budgets, dynamic_grid_np, first_round_budget
from .spec import NemotronSpec
from .tiles import MAX_NUM_TILES, internvl_closest_ratio, internvl_grid_np, internvl_target_ratios


def _check_tiles(value: Any, what: str) -> int:
    """A tile count: an int in ``[1, MAX_NUM_TILES]`` (the ratio table grows as n log n)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_NUM_TILES:
        raise InvalidInputError(f"{what} must be an int in [1, {MAX_NUM_TILES}], got {value!r}")
    return int(value)


def _check_shuffle(ratio: float, prefix: str) -> None:
    """The pixel shuffle merges ``1/r`` x ``1/r`` patches: ``1/r`` must be a whole number."""
    if not 0 < ratio <= 1 or not float(1 / ratio).is_integer():
        raise InvalidInputError(f"{prefix}downsample_ratio must be 1/k for a whole k (0.5: 2x2 patches), got {ratio}")


def _check_tile_patches(s: NemotronSpec) -> None:
    """Image tiles are cut into ``image_size / patch_size`` patches a side, merged ``1/r`` at a time.

    Checked when tiling an image, not at load: the reference's video prompt text takes sizes
    that do not divide (its token formulas round), and the golden rows use them.
    """
    k = round(1 / s.downsample_ratio)
    if s.image_size % s.patch_size or (s.image_size // s.patch_size) % k:
        raise InvalidInputError(
            f"image tiles of {s.image_size} px do not split into {s.patch_size}-px patches in groups of {k} "
            f"(image_size must be a multiple of patch_size / downsample_ratio = {s.patch_size * k} px)"
        )


def _items(images: Any) -> list:
    if isinstance(images, (str, bytes)) or not hasattr(images, "__iter__"):
        raise InvalidInputError(f"images must be a list of (height, width) pairs, got {type(images).__name__}")
    return list(images)


def _pair(item: Any, index: int) -> tuple[Any, Any]:
    if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 2:
        raise InvalidInputError(f"item {index}: expected a (height, width) pair, got {item!r}")
    return item[0], item[1]


class NemotronVL:
    """Nemotron Nano VL preprocessing: ``mmprep.load("nemotron-nano-vl")`` returns one."""

    name = "nemotron"
    engine = "vllm-seed"  # mmprep.load(..., engine=) sets it; the rules: engines.RULES
    engine_rules = RULES

    def __init__(self, spec: NemotronSpec | None = None, **overrides: Any):
        self.spec = s = with_overrides(spec or NemotronSpec(), overrides)
        check_spec(s, non_negative=("video_fps", "video_pruning_rate", "video_num_frames"), any_int=("max_num_patches",),
                   small=("image_size", "patch_size", "video_patch_size", "video_num_frames", "video_max_num_tiles",
                          "audio_hop_length", "audio_n_fft", "audio_win_length", "audio_num_mel_bins",
                          "audio_subsampling_factor"))
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
        _check_tiles(s.max_num_tiles, "NemotronSpec.max_num_tiles")
        _check_shuffle(s.downsample_ratio, "")
        if s.video_downsample_ratio is not None:
            _check_shuffle(s.video_downsample_ratio, "video_")
        if s.max_model_len <= TEXT_RESERVE or s.max_model_len > MAX_COUNT:
            raise InvalidInputError(
                f"NemotronSpec.max_model_len must be in ({TEXT_RESERVE}, {MAX_COUNT}] (vLLM keeps {TEXT_RESERVE} "
                f"tokens free), got {s.max_model_len}"
            )
        if s.dynamic and (s.max_num_patches or 0) > 0 and s.min_num_patches > s.max_num_patches:
            raise InvalidInputError(
                f"min_num_patches {s.min_num_patches} exceeds max_num_patches {s.max_num_patches}"
            )
        if not 0 <= s.video_pruning_rate < 1:
            raise InvalidInputError(f"video_pruning_rate must be in [0, 1), got {s.video_pruning_rate}")

        if s.video_frame_tokens_rule not in ("prompt_update", "processor"):
            raise InvalidInputError(
                f"video_frame_tokens_rule must be 'prompt_update' or 'processor', got {s.video_frame_tokens_rule!r}"
            )
        for name, allowed in (("image_budget", ("request", "per_image")),
                              ("audio_token_rule", ("vllm", "vllm-clips", "transformers")),
                              ("resize_rule", ("pil", "torch_uint8", "torch_float"))):
            if getattr(s, name) not in allowed:
                raise InvalidInputError(f"{name} must be one of {allowed}, got {getattr(s, name)!r}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("image", "video", "audio") if self.spec.has_audio else ("image", "video")

    def __repr__(self) -> str:
        return f"NemotronVL(dynamic={self.spec.dynamic}, audio={self.spec.has_audio})"

    def edges(self):
        """Where this model's counts jump, derived from its spec: the sizes, video metadata and
        audio lengths :mod:`mmprep.testing` draws around (an :class:`~mmprep.testing.edges.Edges`)."""
        from .edges import nemotron_edges

        return nemotron_edges(self)

    # -- tiles (InternVL-style) --------------------------------------------------------------

    def _plan_tiles(self, height: int, width: int, max_num_tiles: int | None) -> ImagePlan:
        s = self.spec
        _check_tile_patches(s)
        most = s.max_num_tiles if max_num_tiles is None else _check_tiles(max_num_tiles, "max_num_tiles")
        if most < s.min_num_tiles:
            raise InvalidInputError(f"max_num_tiles {most} is below min_num_tiles {s.min_num_tiles}")
        ratios = internvl_target_ratios(s.min_num_tiles, most)
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
        sizes = [check_size(*_pair(item, i), i) for i, item in enumerate(_items(images))]
        if not sizes:
            raise InvalidInputError("plan_request needs at least one image")
        if max_model_len is None:
            max_model_len = s.max_model_len
        max_model_len = check_int(max_model_len, "max_model_len", minimum=TEXT_RESERVE + 1)
        text_len = check_int(text_len, "text_len")
        available = max_model_len - text_len - TEXT_RESERVE
        cap = s.max_num_patches if s.max_num_patches and s.max_num_patches > 0 else float("inf")
        grids, rounds, budgets, patch_budget = dynamic_budgets(
            sizes, available, s.patch_size, s.min_num_patches, cap, s.factor_max, s.patches_per_token,
            one_pass=s.image_budget == "per_image",
        )
        plans = tuple(
            ImagePlan(h, w, th * s.patch_size, tw * s.patch_size, (1, th, tw), tw * th // s.patches_per_token)
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
            _check_tile_patches(s)
            cols, rows = internvl_grid_np(h, w, s.min_num_tiles, s.max_num_tiles, s.image_size)
            blocks = cols * rows
            tiles = blocks + ((blocks != 1) & s.use_thumbnail)
            counts = tiles * s.tokens_per_tile
        else:
            cap = s.max_num_patches if s.max_num_patches and s.max_num_patches > 0 else float("inf")
            budget, per_image = first_round_budget(s.max_model_len - TEXT_RESERVE, 1, s.min_num_patches, cap,
                                                   s.patches_per_token)
            th, tw, grid_ok = dynamic_grid_np(h, w, per_image, s.patch_size, s.min_num_patches, s.factor_max)
            counts = th * tw // s.patches_per_token
            ok = ok & grid_ok
            # a single image over the whole-request budget takes further rounds: rare, do it exactly
            for i in np.flatnonzero(ok & (th * tw > budget) & (s.image_budget == "request")):
                try:
                    counts[i] = self.plan_image(int(h[i]), int(w[i])).num_tokens
                except BudgetError:
                    ok[i] = False
        return finish_counts(
            counts, ok, on_error, lambda i: f"image {h[i]}x{w[i]} cannot be planned"
        ).reshape(shape)

    def pixels(
        self, images, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np", dtype: str = "float32",
        threads: int | None = None, text_len: int = 0, max_model_len: int | None = None,
    ):
        """Tiles ``(Σ tiles, 3, S, S)`` or dynamic ``(Σ patches, 3*p*p)`` in the seed's layout.

        With the dynamic tiler all ``images`` are planned as one request (``plan_request`` with
        ``text_len`` and ``max_model_len``), as vLLM plans one prompt's images.
        """
        from .pixels import nemotron_image_pixels

        return nemotron_image_pixels(self, images, backend=backend, return_tensors=return_tensors,
                                     dtype=dtype, threads=threads, text_len=text_len, max_model_len=max_model_len)

    # -- video -------------------------------------------------------------------------------

    def plan_video(self, source, *, frame_indices=None, fps: float | None = None, frame_tokens=None,
                   loader: str = "opencv", index: int | None = None):
        """Frames (vLLM's ``loader`` rule, or your ``frame_indices`` at ``fps``), timestamps, one
        S x S tile per frame (or, under the tubelet rule, frames at ~``video_target_num_patches``
        in tubelets of ``video_temporal_patch_size``), EVS-adjusted tokens (or the model's
        measured ``frame_tokens``, one per span)."""
        from .video import nemotron_plan_video

        return nemotron_plan_video(self, source, loader=loader, frame_indices=frame_indices, fps=fps,
                                   frame_tokens=frame_tokens, index=index)

    def sample_frames(self, total_frames: int, fps: float, *, loader: str = "opencv"):
        """vLLM's video ``loader`` rule alone: which frames of the video are used."""
        from ...types import VideoMetadata
        from .video import nemotron_sample

        return nemotron_sample(self.spec, VideoMetadata(total_frames, fps), loader)

    def count_video_tokens(self, total_frames, fps, heights=1, widths=1, *, on_error: str = "raise",
                           loader: str = "opencv"):
        """Placeholder tokens of many videos from metadata alone (int64 array); equals
        ``plan_video(VideoMetadata(total, fps, h, w)).num_tokens`` item by item. Sizes matter only
        under the tubelet rule (``engine="vllm"`` / ``"transformers"`` on the Omni), where the
        default 1 x 1 means a square frame."""
        from .video import nemotron_count_video_tokens

        return nemotron_count_video_tokens(self.spec, total_frames, fps, heights, widths, on_error, loader)

    def video_pixels(self, videos, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None, loader: str = "opencv"):
        """``(Σ T, 3, S, S)`` frame tiles and grids ``(T, S/p, S/p)`` per video."""
        from .video import nemotron_video_pixels

        return nemotron_video_pixels(self, videos, backend=backend, return_tensors=return_tensors, dtype=dtype,
                                     threads=threads, loader=loader)

    # -- audio (Omni) ------------------------------------------------------------------------

    def _audio(self) -> None:
        if not self.spec.has_audio:
            raise unsupported(self, "audio")

    def count_audio_tokens(self, num_samples=None, *, seconds=None, on_error: str = "raise",
                           variant: str | None = None):
        """``<so_embedding>`` tokens per audio from its length alone (vectorized).

        The rule is the engine profile's (``spec.audio_token_rule``); ``variant`` overrides it
        for one call."""
        from .audio import nemotron_count_audio_tokens

        self._audio()
        return nemotron_count_audio_tokens(self, num_samples, seconds=seconds, variant=variant, on_error=on_error)

    def plan_audio(self, source, *, index: int | None = None, **kwargs):
        """Samples (after resampling), valid feature frames and tokens of one audio."""
        from .audio import nemotron_plan_audio

        self._audio()
        return nemotron_plan_audio(self, source, index=index, **kwargs)

    def audio_features(self, audios, *, sampling_rate: float | None = None, return_tensors: str | None = None,
                       **kwargs):
        """Parakeet log-mel features ``(B, frames, mels)`` with masks and lengths."""
        from .audio import nemotron_audio_features

        self._audio()
        return nemotron_audio_features(self, audios, sampling_rate=sampling_rate, return_tensors=return_tensors,
                                       **kwargs)

    # -- prompts -----------------------------------------------------------------------------

    def process(self, text=None, *, images=None, videos=None, audios=None, tokenizer=None, **options):
        """Tiles / dynamic patches, frames, audio features and expanded ids (seed key names)."""
        from .prompt import nemotron_process

        if audios:
            self._audio()
        return nemotron_process(self, text=text, images=images, videos=videos, audios=audios,
                                tokenizer=tokenizer, **options)

    def prompt(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """The same ``input_ids`` as :meth:`process`, from sizes, plans and lengths alone."""
        from .prompt import nemotron_prompt

        if audios:
            self._audio()
        return nemotron_prompt(self, text, images=images, videos=videos, audios=audios,
                               tokenizer=tokenizer, **options)

    # -- explain -----------------------------------------------------------------------------

    def explain_image(self, height: int, width: int):
        """Tile ratios, or the dynamic tiler's budget rounds, behind ``plan_image(height, width)``."""
        from .explain import nemotron_explain_one_image

        return nemotron_explain_one_image(self, height, width)

    def explain_video(self, source, **kwargs):
        """Loader, timestamps, frame size, spans (tubelets) and EVS behind ``plan_video(source)``."""
        from .explain import nemotron_explain_video

        return nemotron_explain_video(self, self.plan_video(source, **kwargs))

    def explain_audio(self, source, **kwargs):
        """The audio frame rule and subsampling behind ``plan_audio(source)``."""
        from .explain import nemotron_explain_audio

        self._audio()
        return nemotron_explain_audio(self, self.plan_audio(source, **kwargs))

    def explain(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """A whole prompt's account: the request's image budget, items, spans and text tokens."""
        from ...explain import explain_prompt
        from ...prompt import tokens as tk
        from .explain import nemotron_item, nemotron_request
        from .prompt import nemotron_text_len

        if audios:
            self._audio()
        text_len = options.get("text_len", 0)
        if text_len == "prompt" and tokenizer is not None:
            text_len = nemotron_text_len(self, tk.as_vocab(tokenizer), text, "prompt")
        return explain_prompt(
            self, text, images=images, videos=videos, audios=audios, tokenizer=tokenizer, **options,
            explain_item=nemotron_item(self),
            request_steps=nemotron_request(self, text_len if isinstance(text_len, int) else 0,
                                           options.get("max_model_len")),
        )

    def pack_batch(self, samples, bins, *, return_tensors=None):
        """One packed row per bin of :func:`mmprep.pack`: concatenated ids, each sample's own
        positions, ``cu_seqlens``, media in order (keys: :mod:`mmprep.prompt.packed`)."""
        from ...prompt.packed import pack_rows

        return pack_rows(samples, bins, return_tensors=return_tensors)

    def placeholder(self, plan):
        """The replacement one media item's placeholder becomes, as :class:`~mmprep.prompt.tokens.Piece` runs."""
        from .prompt import NEMOTRON

        return NEMOTRON.placeholder(self, plan)
