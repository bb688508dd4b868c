"""``mmprep.testing``: hypothesis strategies and invariant checks for property tests of token counts.

* :mod:`mmprep.testing.strategies` (needs hypothesis: ``pip install mmprep[testing]``): image
  sizes, video metadata, audio lengths, EVS rates and whole prompts, uniform or concentrated
  where each family's counts jump (``family.edges()``, derived from its Spec).
* :func:`check_batch` and friends (numpy only): a batch's placeholders, pixels and positions
  against its plans; failures raise :class:`BatchCheckError` naming the sample and the numbers.

See docs/testing.md for worked examples.
"""

from __future__ import annotations

import importlib
from typing import Any

from .checks import (
    BatchCheckError,
    check_batch,
    check_pixels,
    check_positions,
    check_truncation,
    media_spans,
)
from .edges import AudioEdges, Edges, EvsEdges, ImageEdges, VideoEdges

_STRATEGIES = ("image_sizes", "image_size_pairs", "video_metadata", "video_metadata_pairs", "audio_lengths",
               "audio_length_pairs", "evs_rates", "evs_rate_pairs", "prompts", "PromptCase")


def __getattr__(name: str) -> Any:
    if name == "strategies" or name in _STRATEGIES:
        try:
            mod = importlib.import_module(".strategies", __name__)
        except ModuleNotFoundError as e:
            if e.name != "hypothesis":
                raise
            raise ImportError("mmprep.testing.strategies needs hypothesis: pip install 'mmprep[testing]'") from None
        return mod if name == "strategies" else getattr(mod, name)
    raise AttributeError(f"module 'mmprep.testing' has no attribute {name!r}")


__all__ = [
    "AudioEdges", "BatchCheckError", "Edges", "EvsEdges", "ImageEdges", "PromptCase", "VideoEdges",
    "audio_length_pairs", "audio_lengths", "check_batch", "check_pixels", "check_positions",
    "check_truncation", "evs_rate_pairs", "evs_rates", "image_size_pairs", "image_sizes", "media_spans",
    "prompts", "strategies", "video_metadata", "video_metadata_pairs",
]
