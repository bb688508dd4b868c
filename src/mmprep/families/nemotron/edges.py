"""Where Nemotron's counts jump, derived from the spec (``NemotronVL.edges()``, for :mod:`mmprep.testing`)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from ...testing.edges import AudioEdges, Edges, EvsEdges, ImageEdges, VideoEdges, steps
from .audio import MIN_VALID_FRAMES, subsampled_length, valid_frames
from .dynamic import TEXT_RESERVE
from .sampling import DYNAMIC_MAX_DURATION, DYNAMIC_TARGET_FPS
from .tiles import internvl_target_ratios

PIXEL_KEYS = {"image": "pixel_values_flat", "video": "pixel_values_flat_video"}  # nemotron_process's keys
MEDIA_KEYS = {"video_num_patches": ("video", "grid_t"), "frames_indices": ("video", "frame_indices"),
              "frame_duration_ms": ("video", "frame_duration_ms"), "audio_feature_lengths": ("audio", "num_frames")}
TILE_KEYS = {"image_num_patches": ("image", "grid_t")}  # tiles per image
DYNAMIC_KEYS = {"num_tokens_per_image": ("image", "num_tokens"), "imgs_sizes": ("image", "size")}
MAX_SIDE = 8192  # px, uniform draws


def _tile_edges(s: Any) -> ImageEdges:
    """The tiler picks the closest grid ratio (the switch sits halfway between two ratio values)
    and, among grids of one ratio, a larger one when the area exceeds half of it."""
    ratios = internvl_target_ratios(s.min_num_tiles, s.max_num_tiles)
    values = sorted({c / r for c, r in ratios})
    switches = tuple((a + b) / 2 for a, b in pairwise(values))
    groups: dict[float, list[int]] = {}
    for c, r in ratios:
        groups.setdefault(c / r, []).append(c * r)
    areas = {int(0.5 * s.image_size**2 * n) for members in groups.values() if len(members) > 1 for n in members}
    return ImageEdges(sides=(), areas=tuple(sorted(areas)), ratios=switches, min_side=1, max_side=MAX_SIDE)


def _dynamic_edges(s: Any) -> ImageEdges:
    """The dynamic tiler rounds ``h / p + 0.5`` (a step at each multiple of p), evens the grid
    (steps of 2p), and clamps at the min/max patch counts and the context's patch budget."""
    p2 = s.patch_size**2
    areas = {s.min_num_patches * p2, (s.max_model_len - TEXT_RESERVE) * s.patches_per_token * p2}
    if s.max_num_patches and s.max_num_patches > 0:
        areas.add(s.max_num_patches * p2)
    return ImageEdges(sides=steps(0, s.patch_size, MAX_SIDE), areas=tuple(sorted(areas)), ratios=(),
                      min_side=1, max_side=MAX_SIDE)


def _audio_edges(s: Any) -> AudioEdges:
    """``frames = n // hop``, then the encoder's subsampling: the steps are read off the rule itself."""
    frames = np.arange(0, 4 * s.audio_subsampling_factor + 2)
    jumps = frames[1:][np.diff(np.maximum(1, subsampled_length(frames, s.audio_subsampling_factor))) > 0]
    hop = s.audio_hop_length
    lengths = np.arange(1, (MIN_VALID_FRAMES + 2) * hop + s.audio_n_fft)
    shortest = int(lengths[valid_frames(lengths, s.audio_n_fft, hop) >= MIN_VALID_FRAMES][0])
    return AudioEdges(hop=hop, step=int(jumps[1] - jumps[0]) * hop, phase=int(jumps[0]) * hop,
                      min_samples=shortest, max_samples=int(s.audio_max_seconds * s.audio_sampling_rate),
                      sampling_rate=s.audio_sampling_rate)


LIMIT_FPS = 1000.0  # frame_duration_ms = int(1000 / fps) reaches 0 above this rate
MAX_SECONDS = 600.0  # s, uniform video draws


def _dynamic_loader_edges() -> VideoEdges:
    """vLLM's ``opencv_dynamic`` loader: ``floor(duration * 2)`` frames up to 300 s (the frame
    count steps where the container rate meets 2 fps), then 600 frames spread evenly."""
    return VideoEdges(durations=(DYNAMIC_MAX_DURATION,), frame_counts=(),
                      fps=(DYNAMIC_TARGET_FPS, LIMIT_FPS), max_fps=LIMIT_FPS, max_seconds=MAX_SECONDS)


def nemotron_edges(family: Any) -> Edges:
    s = family.spec
    rates = (float(s.video_fps),) if s.video_fps > 0 else ()
    video = VideoEdges(
        durations=(s.video_num_frames / s.video_fps,) if s.video_fps > 0 and s.video_num_frames > 0 else (),
        frame_counts=(s.video_num_frames,) if s.video_num_frames > 0 else (),
        fps=rates + (LIMIT_FPS,), max_fps=LIMIT_FPS, max_seconds=MAX_SECONDS,
    )
    placeholders = {"image": s.img_context_token, "video": s.video_context_token}
    if s.has_audio:
        placeholders["audio"] = s.audio_context_token
    return Edges(
        modalities=family.modalities, image=_dynamic_edges(s) if s.dynamic else _tile_edges(s), video=video,
        audio=_audio_edges(s) if s.has_audio else None,
        evs=EvsEdges(s.tokens_per_frame, s.video_pruning_rate, max(s.video_num_frames, 1)),
        placeholders=placeholders, pixel_keys=PIXEL_KEYS,
        item_keys={**MEDIA_KEYS, **(DYNAMIC_KEYS if s.dynamic else TILE_KEYS)},
        video_loaders={"opencv_dynamic": _dynamic_loader_edges()},
    )
