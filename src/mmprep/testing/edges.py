"""Where a family's token counts jump, in family-neutral terms (no hypothesis, numpy only).

Each family derives its :class:`Edges` from its Spec (``family.edges()``, implemented in the
family's own package); the strategies in :mod:`mmprep.testing.strategies` and the checks in
:mod:`mmprep.testing.checks` read only these fields, so they never ask which family they serve.

Units: *px* pixels, *samples* audio samples at the spec's rate, *s* seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageEdges:
    """Image (or video frame) sizes around which the count changes.

    ``sides``: side lengths *s* (px) where the count may change between *s - 1*, *s* and *s + 1*
    for a fixed other side (rounding steps of the resize factor, the small-side upscale).
    ``areas``: areas (px²) where a clamp switches on (min/max pixels, patch budgets, size limits).
    ``ratios``: aspect ratios (long side / short side, >= 1) where the rule switches (the
    aspect-ratio limit, the tiler's ratio switch points).
    ``min_side`` / ``max_side``: the range uniform draws use (px).
    """

    sides: tuple[int, ...]
    areas: tuple[int, ...]
    ratios: tuple[float, ...]
    min_side: int = 1
    max_side: int = 8192


@dataclass(frozen=True)
class VideoEdges:
    """Video metadata around the sampler's branch thresholds and caps.

    ``durations``: seconds where the sampler switches branch or hits a cap (GLM-4.6V's fps
    thresholds, the 640-frame cap, GLM-4.1V's duration cap ...). ``frame_counts``: total frames
    where a loader rule switches (Nemotron's frame count). ``fps``: container rates (frames/s)
    worth drawing, including the rates where the sampler's own rate meets the container's.
    ``max_fps`` / ``max_seconds``: the range uniform draws use. ``sizes``: the frame sizes'
    edges when the count depends on them, else None.
    """

    durations: tuple[float, ...]
    frame_counts: tuple[int, ...]
    fps: tuple[float, ...]
    max_fps: float
    max_seconds: float
    sizes: ImageEdges | None = None


@dataclass(frozen=True)
class AudioEdges:
    """Audio lengths (samples) where the token count changes.

    The count changes between ``phase + k * step - 1`` and ``phase + k * step`` for every
    ``k >= 0`` (the encoder's subsampling steps); ``hop`` (samples per feature frame) marks the
    finer steps of the feature frames. ``min_samples`` / ``max_samples``: the shortest and longest
    audio a plan accepts.
    """

    hop: int
    step: int
    phase: int
    min_samples: int
    max_samples: int
    sampling_rate: int


@dataclass(frozen=True)
class EvsEdges:
    """Efficient Video Sampling: the tokens a frame holds and the frame counts videos sample."""

    tokens_per_frame: int
    default_rate: float
    max_frames: int


@dataclass(frozen=True)
class Edges:
    """Everything a property test needs to know about one family, derived from its Spec.

    ``placeholders``: the text a user writes for one media item, per modality. ``max_items``:
    items per prompt a modality allows (absent: no limit). ``pixel_keys``: the batch key of
    each modality's pixels (``process`` output). ``item_keys``: batch keys holding one row per
    media item, ``key -> (modality, what)`` with ``what`` one of ``"grid"`` (the plan's
    ``(t, h, w)``), ``"grid_t"`` (its ``t``), ``"size"`` (its resized ``(height, width)`` px) or
    a plan field: ``"num_tokens"``, ``"num_frames"``, ``"frame_duration_ms"``, ``"frame_indices"``
    (one row of any length per item).
    ``video_loaders``: the edges of other video loaders the family takes (``loader=`` on its
    video methods), by loader name; ``video`` holds the default loader's.
    """

    modalities: tuple[str, ...]
    image: ImageEdges | None
    video: VideoEdges | None = None
    audio: AudioEdges | None = None
    evs: EvsEdges | None = None
    placeholders: Mapping[str, str] = field(default_factory=dict)
    max_items: Mapping[str, int] = field(default_factory=dict)
    pixel_keys: Mapping[str, str] = field(default_factory=dict)
    item_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    video_loaders: Mapping[str, VideoEdges] = field(default_factory=dict)


def steps(phase: int, period: int, upto: int, also: tuple[int, ...] = ()) -> tuple[int, ...]:
    """``phase + k * period`` for k >= 0 up to ``upto`` (px), plus ``also``; sorted, unique."""
    values = set(also)
    if period > 0:
        values.update(range(phase if phase > 0 else period, upto + 1, period))
    return tuple(sorted(v for v in values if v >= 1))
