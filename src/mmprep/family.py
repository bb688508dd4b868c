"""The one API every family implements, stated once as a :class:`typing.Protocol`.

``mmprep.load(...)`` returns an object with exactly these methods, whatever the family. All
counting methods are vectorized over numpy arrays, take ``on_error="raise" | "minus_one"`` and
equal their ``plan_*`` twin item by item. Media arguments of ``process``/``prompt`` are keyword
only and default to none. A modality the model lacks (Isaac video, GLM audio, the 12B Nemotron
without a sound encoder) raises :class:`~mmprep.errors.UnsupportedModalityError` from every
method of that modality, so callers learn it at the first call, never from a wrong answer.

Units: *px* pixels, *patches* ViT input patches, *tokens* LLM placeholder tokens.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import UnsupportedModalityError
from .types import AudioBatch, AudioPlan, Batch, ImagePlan, PixelBatch, VideoPlan

DEFAULT_BACKEND = "reference"  # exact pixels by default; "fast" is the named approximation
ON_ERROR_DEFAULT = "raise"


@runtime_checkable
class Family(Protocol):
    """What ``mmprep.load`` returns for every model."""

    name: str  # family name: "glm4v", "isaac", "nemotron"
    spec: Any  # the family's frozen Spec dataclass
    modalities: tuple[str, ...]  # what this checkpoint takes, e.g. ("image", "video")
    engine: str  # whose rules where engines differ: "vllm-seed" (default), "transformers", "vllm"
    engine_rules: tuple[Any, ...]  # the family's mmprep.engines.EngineRule table

    # -- plans: pure functions of metadata; every other method reads them --------------------
    def plan_image(self, height: int, width: int, *, index: int | None = None) -> ImagePlan: ...

    def plan_video(self, source: Any, *, frame_indices: Any = None, fps: float | None = None,
                   index: int | None = None) -> VideoPlan: ...

    def plan_audio(self, source: Any, *, index: int | None = None) -> AudioPlan: ...

    # -- counts: vectorized, equal to the plans item by item ---------------------------------
    def count_image_tokens(self, heights: Any, widths: Any, *, on_error: str = "raise") -> np.ndarray: ...

    def count_video_tokens(self, total_frames: Any, fps: Any, heights: Any, widths: Any, *,
                           on_error: str = "raise") -> np.ndarray: ...

    def count_audio_tokens(self, num_samples: Any = None, *, seconds: Any = None,
                           on_error: str = "raise") -> Any: ...

    # -- model inputs ------------------------------------------------------------------------
    def pixels(self, images: Any, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
               dtype: str = "float32", threads: int | None = None) -> PixelBatch: ...

    def video_pixels(self, videos: Any, *, backend: str = DEFAULT_BACKEND, return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None) -> PixelBatch: ...

    def audio_features(self, audios: Any, *, sampling_rate: float | None = None,
                       return_tensors: str = "np") -> AudioBatch: ...

    def process(self, text: Any = None, *, images: Any = None, videos: Any = None, audios: Any = None,
                tokenizer: Any = None, **options: Any) -> Batch: ...

    def prompt(self, text: Any, *, images: Any = (), videos: Any = (), audios: Any = (),
               tokenizer: Any = None, **options: Any) -> Batch: ...

    # -- explain: each decision with its numbers, ending at the plan's figures (mmprep.explain) --
    def explain_image(self, height: int, width: int) -> Any: ...

    def explain_video(self, source: Any, **kwargs: Any) -> Any: ...

    def explain_audio(self, source: Any, **kwargs: Any) -> Any: ...

    def explain(self, text: Any, *, images: Any = (), videos: Any = (), audios: Any = (),
                tokenizer: Any = None, **options: Any) -> Any: ...

    def pack_batch(self, samples: Any, bins: Any, *, return_tensors: str | None = None) -> list[Batch]: ...

    # -- testing: where the counts jump, derived from the spec (mmprep.testing reads it) -------
    def edges(self) -> Any: ...


def unsupported(family: Any, modality: str) -> UnsupportedModalityError:
    """The error every method of a modality the model lacks raises (return it, then raise it)."""
    return UnsupportedModalityError(
        f"{family!r} takes no {modality} input: the model has no {modality} encoder "
        f"(it takes {', '.join(family.modalities)})"
    )


def require_none(family: Any, **media: Any) -> None:
    """Raise :func:`unsupported` for any media keyword given to a family without that modality."""
    for key, value in media.items():
        if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 0):
            raise unsupported(family, key.rstrip("s"))
