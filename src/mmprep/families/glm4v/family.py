"""The GLM-4.1V / GLM-4.6V family object: ``mmprep.load("glm-4.1v")`` returns one.

Defaults are the published checkpoints' (docs/models.md lists each with its source):
GLM-4.1V-9B-Thinking and GLM-4.6V / GLM-4.6V-Flash share the preprocessing and differ in the
video sampler (``version``), the timestamp text and the image/video token ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInputError, item_prefix
from ...family import DEFAULT_BACKEND, require_none, unsupported
from ...sampling import MAX_SAMPLED
from ...types import ImagePlan
from ...validate import check_size, check_spec, finish_counts, size_arrays, with_overrides
from .sizing import MAX_RATIO, smart_resize, smart_resize_np
from .engines import RULES
from .spec import VERSIONS, GlmSpec


class Glm4v:
    """GLM-4.1V / GLM-4.6V preprocessing (images and videos; no audio)."""

    name = "glm4v"
    modalities = ("image", "video")
    engine = "vllm-seed"  # mmprep.load(..., engine=) sets it; the rules: engines.RULES
    engine_rules = RULES

    def __init__(self, spec: GlmSpec | None = None, **overrides: Any):
        self.spec = with_overrides(spec or GlmSpec(), overrides)
        check_spec(self.spec, non_negative=tuple(f for f in GlmSpec.__dataclass_fields__ if f.endswith("_id")),
                   small=("patch_size", "merge_size", "temporal_patch_size", "video_patch_size", "video_merge_size"))
        if self.spec.version not in VERSIONS:
            raise InvalidInputError(f"GlmSpec.version must be one of {tuple(VERSIONS)}, got {self.spec.version!r}")
        for name, allowed in (("timestamp_rule", ("int_seconds", "frame_seconds")),
                              ("short_clip_rule", ("none", "one_frame")), ("video_token_rule", ("video", "image"))):
            if getattr(self.spec, name) not in allowed:
                raise InvalidInputError(f"{name} must be one of {allowed}, got {getattr(self.spec, name)!r}")
        for kind in ("image", "video"):
            lo, hi = getattr(self.spec, f"{kind}_min_pixels"), getattr(self.spec, f"{kind}_max_pixels")
            if lo > hi:
                raise InvalidInputError(f"GlmSpec.{kind}_min_pixels {lo} exceeds {kind}_max_pixels {hi}")
        if self.spec.video_max_duration * self.spec.video_fps > MAX_SAMPLED:  # the 4.1V sampler's list
            raise InvalidInputError(
                f"GlmSpec.video_max_duration x video_fps = {self.spec.video_max_duration * self.spec.video_fps:g} "
                f"frames, above the limit of {MAX_SAMPLED}"
            )

    def __repr__(self) -> str:
        return f"Glm4v(version={self.spec.version!r})"

    def edges(self):
        """Where this model's counts jump, derived from its spec: the sizes, video metadata and
        audio lengths :mod:`mmprep.testing` draws around (an :class:`~mmprep.testing.edges.Edges`)."""
        from .edges import glm_edges

        return glm_edges(self)

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

    def pixels(self, images, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
               dtype: str = "float32", threads: int | None = None):
        """Decode, resize and patchify images into ``(Σ patches, 3*tps*p*p)`` rows."""
        from .pixels import glm_image_pixels

        return glm_image_pixels(self, images, backend=backend, return_tensors=return_tensors, dtype=dtype,
                                threads=threads)

    # -- videos ------------------------------------------------------------------------------

    def plan_video(self, source, *, frame_indices=None, fps: float | None = None, metadata=None,
                   index: int | None = None):
        """Frame indices, int-second timestamps, resized size, grid and tokens of one video.

        ``frame_indices`` (into the original video, ``fps`` its frames/s) skips the sampler: the
        frames you chose are de-duplicated, padded to even and stamped as the sampler's would be.
        ``metadata``: the dict vLLM's loader hands the sampler (default: the container's).
        """
        from .video import glm_plan_video

        return glm_plan_video(self, source, frame_indices=frame_indices, fps=fps, metadata=metadata, index=index)

    def sample_frames(self, total_frames: int, metadata):
        """The spec's sampler alone (GLM-4.1V or 4.6V): which frames of a ``total_frames`` video
        with vLLM's ``metadata`` dict are used, and the timestamps the prompt prints."""
        from .video import glm_sample

        return glm_sample(self.spec, total_frames, metadata)

    def count_video_tokens(self, total_frames, fps, heights, widths, *, on_error: str = "raise") -> np.ndarray:
        """Placeholder tokens of many videos from metadata alone (int64 array); equals
        ``plan_video(VideoMetadata(total, fps, h, w)).num_tokens`` item by item."""
        from .video import glm_count_video_tokens

        return glm_count_video_tokens(self.spec, total_frames, fps, heights, widths, on_error)

    def video_pixels(self, videos, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None):
        """``pixel_values_videos`` ``(Σ rows, 3*tps*p*p)`` and grids, as Glm4vVideoProcessor."""
        from .video import glm_video_pixels

        return glm_video_pixels(self, videos, backend=backend, return_tensors=return_tensors, dtype=dtype,
                                threads=threads)

    # -- audio: none -------------------------------------------------------------------------

    def plan_audio(self, source, *, index: int | None = None):
        raise unsupported(self, "audio")

    def count_audio_tokens(self, num_samples=None, *, seconds=None, on_error: str = "raise"):
        raise unsupported(self, "audio")

    def audio_features(self, audios, *, sampling_rate: float | None = None, return_tensors: str = "np"):
        raise unsupported(self, "audio")

    # -- prompts -----------------------------------------------------------------------------

    def process(self, text=None, *, images=None, videos=None, audios=None, tokenizer=None, **options):
        """Model-ready batch: expanded ``input_ids``, pixels, grids, MRoPE ``position_ids``."""
        from .prompt import glm_process

        require_none(self, audios=audios)
        return glm_process(self, text=text, images=images, videos=videos, tokenizer=tokenizer, **options)

    def prompt(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """The same ``input_ids`` and positions as :meth:`process`, from plans alone."""
        from .prompt import glm_prompt

        require_none(self, audios=audios)
        return glm_prompt(self, text, images=images, videos=videos, tokenizer=tokenizer, **options)

    def pack_batch(self, samples, bins, *, return_tensors=None):
        """One packed row per bin of :func:`mmprep.pack`: concatenated ids, each sample's own
        positions, ``cu_seqlens``, media in order (keys: :mod:`mmprep.prompt.packed`)."""
        from ...prompt.packed import pack_rows

        return pack_rows(samples, bins, return_tensors=return_tensors)

    def placeholder(self, plan):
        """The replacement one media item's placeholder becomes, as :class:`~mmprep.prompt.tokens.Piece` runs."""
        from .prompt import GLM

        return GLM.placeholder(self, plan)

    # -- explain -----------------------------------------------------------------------------

    def explain_image(self, height: int, width: int):
        """The smart_resize steps behind ``plan_image(height, width)`` (:mod:`mmprep.explain`)."""
        from .explain import glm_explain_image

        return glm_explain_image(self, height, width)

    def explain_video(self, source, **kwargs):
        """Sampler branch, frames, timestamps, resize and groups behind ``plan_video(source)``."""
        from .explain import glm_explain_video

        return glm_explain_video(self, self.plan_video(source, **kwargs))

    def explain_audio(self, source, **kwargs):
        raise unsupported(self, "audio")

    def explain(self, text, *, images=(), videos=(), audios=(), tokenizer=None, **options):
        """A whole prompt's account: items, spans, text tokens, MRoPE offsets (with a tokenizer)."""
        from ...explain import explain_prompt
        from ...types import ImagePlan, VideoPlan
        from .explain import glm_explain_image, glm_explain_video

        require_none(self, audios=audios)

        def item(modality, x, i):
            if modality == "image":
                plan = x if isinstance(x, ImagePlan) else self.plan_image(*x, index=i)
                return glm_explain_image(self, plan.orig_height, plan.orig_width, plan)
            return glm_explain_video(self, x if isinstance(x, VideoPlan) else self.plan_video(x, index=i))

        return explain_prompt(self, text, images=images, videos=videos, tokenizer=tokenizer, explain_item=item,
                              **options)

    def mrope_positions(self, num_tokens: int, features):
        """``(positions (3, L) int64, delta)`` for a prompt of ``num_tokens`` with media ``features``
        (offset of the first placeholder token and the grid in patches, per item)."""
        from .positions import glm_mrope_positions

        return glm_mrope_positions(num_tokens, features, self.spec.merge_size)
