"""Isaac (Perceptron): binary-search patch sizing, SigLIP2 patches, pixel shuffle, MRoPE.

Defaults are PerceptronAI/Isaac-0.1's processor_config.json (docs/models.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInputError, item_prefix
from ...family import DEFAULT_BACKEND, require_none, unsupported
from ...types import ImagePlan
from ...validate import check_size, check_spec, finish_counts, size_arrays, with_overrides
from .engines import RULES
from .positions import MROPE_RULES
from .sizing import MAX_EPS, MIN_EPS, isaac_target_size, isaac_target_size_np
from .spec import IsaacSpec


class Isaac:
    """Isaac preprocessing (images only): ``mmprep.load("isaac")`` returns one."""

    name = "isaac"
    modalities = ("image",)
    engine = "vllm-seed"  # mmprep.load(..., engine=) sets it; the rules: engines.RULES
    engine_rules = RULES

    def __init__(self, spec: IsaacSpec | None = None, **overrides: Any):
        self.spec = with_overrides(spec or IsaacSpec(), overrides)
        check_spec(self.spec, small=("patch_size", "pixel_shuffle_scale", "text_head_dim"))
        if self.spec.mrope_rule not in MROPE_RULES:
            raise InvalidInputError(f"IsaacSpec.mrope_rule must be one of {MROPE_RULES}, got {self.spec.mrope_rule!r}")
        s = self.spec
        if s.min_num_patches is not None and s.min_num_patches > s.max_num_patches:
            raise InvalidInputError(
                f"min_num_patches {s.min_num_patches} exceeds max_num_patches {s.max_num_patches}"
            )
        if not MIN_EPS <= s.eps <= MAX_EPS:
            # below float spacing near the scale bound the bisection never ends; at >= 1 it never
            # starts and returns a scale of eps / 10 or 100
            raise InvalidInputError(f"IsaacSpec.eps must be in [{MIN_EPS}, {MAX_EPS}], got {s.eps!r}")

    def __repr__(self) -> str:
        return "Isaac()"

    def edges(self):
        """Where this model's counts jump, derived from its spec: the sizes, video metadata and
        audio lengths :mod:`mmprep.testing` draws around (an :class:`~mmprep.testing.edges.Edges`)."""
        from .edges import isaac_edges

        return isaac_edges(self)

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

    def pixels(self, images, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
               dtype: str = "float32", threads: int | None = None):
        """Decode, resize (bilinear on uint8) and patchify into ``(Σ patches, p*p*3)`` rows."""
        from .pixels import isaac_image_pixels

        return isaac_image_pixels(self, images, backend=backend, return_tensors=return_tensors, dtype=dtype,
                                  threads=threads)

    # -- video and audio: none ---------------------------------------------------------------

    def plan_video(self, source, *, frame_indices=None, fps: float | None = None, index: int | None = None):
        raise unsupported(self, "video")

    def sample_frames(self, *args, **kwargs):
        raise unsupported(self, "video")

    def count_video_tokens(self, total_frames, fps, heights, widths, *, on_error: str = "raise"):
        raise unsupported(self, "video")

    def video_pixels(self, videos, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None):
        raise unsupported(self, "video")

    def plan_audio(self, source, *, index: int | None = None):
        raise unsupported(self, "audio")

    def count_audio_tokens(self, num_samples=None, *, seconds=None, on_error: str = "raise"):
        raise unsupported(self, "audio")

    def audio_features(self, audios, *, sampling_rate: float | None = None, return_tensors: str = "np"):
        raise unsupported(self, "audio")

    # -- prompts -----------------------------------------------------------------------------

    def process(self, text=None, *, images=None, videos=None, audios=None, tokenizer=None, **options):
        """Model-ready batch: expanded ``input_ids``, pixels, grids, MRoPE ``position_ids``."""
        from .prompt import isaac_process

        require_none(self, videos=videos, audios=audios)
        return isaac_process(self, text=text, images=images, tokenizer=tokenizer, **options)

    def prompt(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """The same ``input_ids`` and positions as :meth:`process`, from plans alone."""
        from .prompt import isaac_prompt

        require_none(self, videos=videos, audios=audios)
        return isaac_prompt(self, text, images=images, tokenizer=tokenizer, **options)

    def pack_batch(self, samples, bins, *, return_tensors=None):
        """One packed row per bin of :func:`mmprep.pack`: concatenated ids, each sample's own
        positions, ``cu_seqlens``, media in order (keys: :mod:`mmprep.prompt.packed`)."""
        from ...prompt.packed import pack_rows

        return pack_rows(samples, bins, return_tensors=return_tensors)

    def placeholder(self, plan):
        """The replacement one image's placeholder becomes, as :class:`~mmprep.prompt.tokens.Piece` runs."""
        from .prompt import ISAAC

        return ISAAC.placeholder(self, plan)

    # -- explain -----------------------------------------------------------------------------

    def explain_image(self, height: int, width: int):
        """The sizing decisions behind ``plan_image(height, width)`` (:mod:`mmprep.explain`)."""
        from .explain import isaac_explain_image

        return isaac_explain_image(self, height, width)

    def explain_video(self, source, **kwargs):
        raise unsupported(self, "video")

    def explain_audio(self, source, **kwargs):
        raise unsupported(self, "audio")

    def explain(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """A whole prompt's account: items, spans, text tokens, MRoPE offsets (with a tokenizer)."""
        from ...explain import explain_prompt
        from .explain import isaac_explain_image

        require_none(self, videos=videos, audios=audios)
        return explain_prompt(
            self, text, images=images, tokenizer=tokenizer, **options,
            explain_item=lambda m, x, i: isaac_explain_image(self, *_size(x), plan=_plan(x)),
        )

    def mrope_positions(self, num_tokens: int, features):
        """``(positions (3, L) int64, delta)`` for a prompt of ``num_tokens`` with media ``features``
        (offset of the first placeholder token and the grid in patches, per item)."""
        from .positions import isaac_mrope_positions

        return isaac_mrope_positions(num_tokens, features, self.spec.pixel_shuffle_scale,
                                     self.spec.mrope_rule)


def _plan(x):
    return x if isinstance(x, ImagePlan) else None


def _size(x):
    return (x.orig_height, x.orig_width) if isinstance(x, ImagePlan) else tuple(x)
