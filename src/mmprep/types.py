"""Frozen plan objects and batch containers shared by every family.

A *plan* is computed by a pure function from ints and a family spec; counting, pixels,
placeholders and positions all read the same plan and never recompute a size.

Units are named in every field: *px* = pixels, *patches* = ViT input patches before the spatial
merge / pixel shuffle, *tokens* = LLM placeholder tokens after it, *tiles* = Nemotron crops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class ImageMetadata(NamedTuple):
    """What an image header says (``mmprep.probe_image``); unpacks as ``height, width``."""

    height: int  # px
    width: int  # px


class AudioMetadata(NamedTuple):
    """What an audio header says (``mmprep.probe_audio``); unpacks as ``num_samples, rate, duration``."""

    num_samples: int  # samples at sampling_rate (after resampling when a target rate was asked)
    sampling_rate: float  # Hz
    duration: float  # seconds


@dataclass(frozen=True)
class TileLayout:
    """InternVL-style tiling of one image (Nemotron Nano VL)."""

    cols: int  # tiles across (width direction)
    rows: int  # tiles down
    tile_size: int  # px, side of one square tile
    thumbnail: bool  # whether a thumbnail tile follows the grid tiles
    num_tiles: int  # cols * rows (+1 with the thumbnail)


@dataclass(frozen=True)
class ImagePlan:
    """How one image is resized and how many tokens it costs.

    ``height``/``width`` are the resized pixels the model sees (for InternVL tiling: the canvas
    ``rows*S`` x ``cols*S`` that is cut into tiles). ``grid`` is ``(t, h, w)`` in patches; for
    tiling it is ``(num_tiles, S/p, S/p)``. ``num_tokens`` counts placeholder tokens only,
    without wrappers such as ``<img>``/``</img>`` or begin/end-of-image.
    """

    orig_height: int  # px
    orig_width: int  # px
    height: int  # px, resized
    width: int  # px, resized
    grid: tuple[int, int, int]  # (t, h, w) patches
    num_tokens: int  # tokens
    tiles: TileLayout | None = None

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w


@dataclass(frozen=True)
class RequestPlan:
    """Nemotron's dynamic-resolution tiler plans all images of one request together."""

    images: tuple[ImagePlan, ...]
    text_len: int  # tokens of the prompt without any image placeholder
    max_model_len: int  # tokens
    num_tokens_available: int  # tokens: max_model_len - text_len - 4
    patch_budget: int  # patches, after x4 and the min_num_patches * n floor
    rounds: int  # budget passes taken (1..10)
    final_per_image_patch_budget: tuple[int, ...]  # patches, last round's budgets

    @property
    def num_tokens_per_image(self) -> tuple[int, ...]:
        return tuple(p.num_tokens for p in self.images)

    @property
    def total_tokens(self) -> int:
        return sum(p.num_tokens for p in self.images)

    @property
    def total_patches(self) -> int:
        return sum(p.num_patches for p in self.images)

    @property
    def fits_context(self) -> bool:
        """False when vLLM would still return this plan although it exceeds the budget."""
        return self.total_tokens <= self.num_tokens_available


@dataclass(frozen=True)
class VideoMetadata:
    """What a sampler needs to know about a video, without its pixels."""

    total_frames: int  # frames in the stream
    fps: float  # frames per second
    height: int | None = None  # px
    width: int | None = None  # px
    duration: float | None = None  # seconds; defaults to total_frames / fps where needed
    rotation: int = 0  # degrees counterclockwise already applied: height/width are as displayed

    @property
    def seconds(self) -> float:
        return self.duration if self.duration is not None else self.total_frames / self.fps


@dataclass(frozen=True)
class VideoPlan:
    """Which frames of a video are used, when they were taken and what they cost.

    ``timestamps`` are what the prompt prints: one per temporal group for GLM (int seconds), one
    per frame for Nemotron (float seconds). ``frame_tokens`` lists the placeholder tokens of each
    prompt span (per temporal group for GLM, per frame for Nemotron, EVS-adjusted when pruning).
    """

    frame_indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    height: int  # px, resized frame height
    width: int  # px, resized frame width
    grid: tuple[int, int, int]  # (t, h, w) patches for the whole video
    tokens_per_frame: int  # tokens of one temporal group / frame before any pruning
    num_tokens: int  # tokens, placeholder tokens in the prompt (after EVS when on)
    frame_tokens: tuple[int, ...] = ()
    frame_duration_ms: int | None = None  # Nemotron only
    metadata: VideoMetadata | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # sampler details (target fps, ...)

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True)
class AudioPlan:
    """Samples in, feature frames and tokens out (Nemotron's Parakeet path)."""

    num_samples: int  # at sampling_rate
    sampling_rate: int  # Hz
    num_frames: int  # feature frames (valid ones)
    num_tokens: int  # tokens after the encoder's subsampling


@dataclass
class PixelBatch:
    """Pixels in the layout the model's patch embedding expects, packed (never padded)."""

    pixel_values: Any  # np.ndarray or torch.Tensor
    grids: Any  # (n, 3) int array of (t, h, w), or the tile layout per image
    plans: tuple[Any, ...]
    mean: tuple[float, ...] | None = None  # set when pixel_values are raw uint8
    std: tuple[float, ...] | None = None


@dataclass
class AudioBatch:
    features: Any  # (B, frames, mels)
    attention_mask: Any  # (B, frames)
    lengths: Any  # (B,) valid frames
    plans: tuple[AudioPlan, ...]


class Batch(Mapping):
    """A model-ready batch with transformers' key names that behaves like ``BatchFeature``:
    ``batch["input_ids"]``, ``batch.input_ids``, ``keys()``, ``"x" in batch``, ``.to(device)``.

    The per-item plans ride along in ``.plans`` (not a key, so ``model(**batch)`` stays clean).
    """

    def __init__(self, data: dict[str, Any], plans: Mapping[str, Any] | None = None):
        self._data = dict(data)
        self.plans = dict(plans or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(f"Batch has no key or attribute {name!r}; keys: {list(data or ())}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to(self, *args: Any, **kwargs: Any) -> Batch:
        """Move every torch tensor (``tensor.to(*args, **kwargs)``); other values stay as they are.
        Like ``BatchFeature.to``, a dtype only applies to floating-point tensors."""
        out = {}
        for key, value in self._data.items():
            if hasattr(value, "to") and hasattr(value, "is_floating_point"):
                if value.is_floating_point():
                    value = value.to(*args, **kwargs)
                else:  # ids, masks and grids keep their integer dtype
                    dev = [a for a in args if not _is_dtype(a)]
                    kw = {k: v for k, v in kwargs.items() if k != "dtype"}
                    value = value.to(*dev, **kw) if dev or kw else value
            out[key] = value
        return Batch(out, self.plans)

    def __repr__(self) -> str:
        def shape(v: Any) -> str:
            s = getattr(v, "shape", None)
            return f"shape={tuple(s)}" if s is not None else type(v).__name__

        body = ", ".join(f"{k}: {shape(v)}" for k, v in self._data.items())
        return f"Batch({body})"


def _is_dtype(x: Any) -> bool:
    return type(x).__name__ == "dtype" and type(x).__module__ == "torch"
