"""Hypothesis strategies for property tests of token counts, derived from each family's edges.

Every strategy takes a family object (``mmprep.load(name)``) and reads ``family.edges()``: the
sides, areas, aspect ratios, sampler thresholds, frame counts and audio steps where that
family's counts jump, derived from its Spec. ``where`` picks the region:

* ``"uniform"``: plain draws over the whole valid range;
* an edge kind (``"sides"``, ``"areas"``, ``"ratios"``, ``"steps"`` for images; ``"durations"``,
  ``"frame_counts"``, ``"fps"`` for videos; ``"steps"``, ``"hops"`` for audio): just under, on
  and just over those edges;
* ``"boundary"``: any edge kind the family has; ``"any"`` (default): boundary or uniform.

``*_pairs`` strategies return two inputs one unit apart (a pixel, a frame, a sample, one ulp of
a rate) that straddle an edge, so a test can compare both sides. Draws shrink towards the first
edge, no offset and the other side nearest the edge's centre: a failing example shrinks onto
the boundary it found. ``valid=True`` (default) keeps only inputs the family can count.

Requires hypothesis (``pip install mmprep[testing]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from ..errors import InvalidInputError
from ..evs import retained_count
from ..types import VideoMetadata
from .edges import AudioEdges, ImageEdges, VideoEdges

# container frame rates worth drawing besides a family's own (frames/s)
COMMON_FPS = (23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0)
STEP_WINDOW = 64  # px / frames a step search scans from its start
WORDS = ("hello", " world", " the cat", " sat", "\n", " 3.5", " 12", " seconds", ": ", " a b c")

Size = tuple[int, int]


# -- images ------------------------------------------------------------------------------------


def _clip(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _side_pairs(e: ImageEdges) -> st.SearchStrategy:
    """``(s - 1, s)`` or ``(s, s + 1)`` px in one side for an edge side ``s``; the other side keeps
    the area under one of the family's edge areas (where a clamp does not hide the rounding) or
    takes any length."""

    @st.composite
    def pairs(draw):
        s = draw(st.sampled_from(e.sides))
        d = draw(st.sampled_from((0, -1)))
        area = draw(st.sampled_from((*e.areas, e.max_side * e.max_side)))
        other = draw(st.integers(e.min_side, _clip(area // max(s, 1), e.min_side, e.max_side)))
        a, b = (s + d, other), (s + d + 1, other)
        return ((a[1], a[0]), (b[1], b[0])) if draw(st.booleans()) else (a, b)

    return pairs().filter(lambda p: min(p[0]) >= 1)


def _area_pairs(e: ImageEdges) -> st.SearchStrategy:
    """Sizes whose area sits just under / on an edge area, from square (``k = 0``) to elongated."""

    def build(area: int, k: int, d: int, flip: bool):
        root = math.isqrt(area)
        h = _clip(root + k, max(1, -(-area // (2 * e.max_side))), max(1, area))
        w = max(1, area // h + d)
        a, b = (h, w), (h, w + 1)
        return ((w, h), (w + 1, h)) if flip else (a, b)

    span = max(1, e.max_side // 2)
    return st.builds(build, st.sampled_from(e.areas), st.integers(-span, span), st.sampled_from((0, -1)), st.booleans())


def _ratio_pairs(e: ImageEdges) -> st.SearchStrategy:
    """Sizes whose aspect ratio ``w / h`` sits just under / on an edge ratio."""

    def build(ratio: float, h: int, d: int):
        w = max(1, round(h * ratio) + d)
        return (h, w), (h, w + 1)

    lo = e.min_side
    return st.builds(build, st.sampled_from(e.ratios), st.integers(lo, max(lo, e.max_side // 4)), st.sampled_from((0, -1)))


def _uniform_sizes(e: ImageEdges) -> st.SearchStrategy:
    return st.tuples(st.integers(e.min_side, e.max_side), st.integers(e.min_side, e.max_side))


def _step_pairs(count, e: ImageEdges) -> st.SearchStrategy:
    """From a uniform start, the first pixel along one side where ``count`` changes (within
    ``STEP_WINDOW`` px); the start and its neighbour when none does."""

    def build(start: Size, flip: bool):
        h, w = start
        along = np.arange(STEP_WINDOW + 1) + (w if flip else h)
        fixed = np.full(along.shape, h if flip else w)
        c = count(fixed, along) if flip else count(along, fixed)
        jump = np.flatnonzero(np.diff(c) != 0)
        j = int(jump[0]) if jump.size else 0
        a, b = int(along[j]), int(along[j + 1])
        return ((h, a), (h, b)) if flip else ((a, w), (b, w))

    return st.builds(build, _uniform_sizes(e), st.booleans())


def _pair_kinds(e: ImageEdges, count) -> dict[str, st.SearchStrategy]:
    kinds = {}
    if e.sides:
        kinds["sides"] = _side_pairs(e)
    if e.areas:
        kinds["areas"] = _area_pairs(e)
    if e.ratios:
        kinds["ratios"] = _ratio_pairs(e)
    if count is not None:
        kinds["steps"] = _step_pairs(count, e)
    return kinds


def _pick(kinds: dict[str, st.SearchStrategy], uniform: st.SearchStrategy, where: str, what: str):
    if where == "uniform":
        return uniform
    if where == "boundary":
        return st.one_of(*kinds.values())
    if where == "any":
        return st.one_of(*kinds.values(), uniform)
    if where not in kinds:
        raise InvalidInputError(f"{what}: where must be 'uniform', 'boundary', 'any' or one of {sorted(kinds)}, got {where!r}")
    return kinds[where]


def _counter(family, modality: str, loader: str | None = None):
    """``count(...)`` with -1 for inputs the family cannot count (videos: with ``loader``, if given)."""
    if modality == "image":
        return lambda h, w: np.asarray(family.count_image_tokens(np.asarray(h), np.asarray(w), on_error="minus_one"))
    if modality == "audio":
        return lambda n: np.asarray(family.count_audio_tokens(np.asarray(n), on_error="minus_one"))
    extra = {} if loader is None else {"loader": loader}
    return lambda m: np.asarray(family.count_video_tokens(
        [x.total_frames for x in m], [x.fps for x in m], [x.height for x in m], [x.width for x in m],
        on_error="minus_one", **extra))


def _edges(family, modality: str):
    edges = family.edges()
    got = {"image": edges.image, "video": edges.video, "audio": edges.audio}[modality]
    if modality not in edges.modalities or got is None:
        raise InvalidInputError(f"{family!r} takes no {modality} input (it takes {', '.join(edges.modalities)})")
    return got


def _video_edges(family, loader: str | None) -> VideoEdges:
    """The default loader's video edges, or those of ``loader`` (one the family's edges list)."""
    if loader is None:
        return _edges(family, "video")
    loaders = family.edges().video_loaders
    if loader not in loaders:
        raise InvalidInputError(f"{family!r} has no video loader {loader!r} (its edges list: {sorted(loaders) or 'none'})")
    return loaders[loader]


def image_size_pairs(family, where: str = "boundary", *, valid: bool = True) -> st.SearchStrategy:
    """Two ``(height, width)`` px sizes one pixel apart in one side, straddling an edge of
    ``where`` (default: any edge kind; ``"uniform"``: a random size and its neighbour)."""
    e = _edges(family, "image")
    count = _counter(family, "image")
    uniform = st.builds(lambda s, flip: (s, (s[0], s[1] + 1) if flip else (s[0] + 1, s[1])),
                        _uniform_sizes(e), st.booleans())
    pairs = _pick(_pair_kinds(e, count), uniform, where, "image_size_pairs")
    if valid:
        pairs = pairs.filter(lambda p: bool((count([p[0][0], p[1][0]], [p[0][1], p[1][1]]) >= 0).all()))
    return pairs


def image_sizes(family, where: str = "any", *, valid: bool = True) -> st.SearchStrategy:
    """``(height, width)`` px: uniform, or just under / on / over the family's edges."""
    e = _edges(family, "image")
    count = _counter(family, "image")
    if where == "uniform":
        sizes = _uniform_sizes(e)
    else:
        one = st.builds(lambda p, i: p[i], image_size_pairs(family, "boundary" if where == "any" else where, valid=False),
                        st.sampled_from((0, 1)))
        sizes = st.one_of(one, _uniform_sizes(e)) if where == "any" else one
    if valid:
        sizes = sizes.filter(lambda s: int(count([s[0]], [s[1]])[0]) >= 0)
    return sizes


# -- videos ------------------------------------------------------------------------------------


def _rates(v: VideoEdges) -> tuple[float, ...]:
    return tuple(sorted({r for r in (*v.fps, *COMMON_FPS) if 0 < r <= v.max_fps}))


def _frame_size(v: VideoEdges) -> st.SearchStrategy:
    """Frame sizes: around the edges of ``v.sizes`` or uniform (any size when the count ignores it)."""
    if v.sizes is None:
        return _uniform_sizes(ImageEdges((), (), (), 16, 2048))
    ones = [st.builds(lambda p, i: p[i], k, st.sampled_from((0, 1))) for k in _pair_kinds(v.sizes, None).values()]
    return st.one_of(*ones, _uniform_sizes(v.sizes))


def _video_kinds(v: VideoEdges, max_seconds: float) -> dict[str, st.SearchStrategy]:
    """Pairs ``(total_frames, fps), (total_frames', fps')`` one frame (or one ulp of fps) apart."""
    rates = st.sampled_from(_rates(v))
    kinds = {}
    durations = tuple(d for d in v.durations if d <= max_seconds)
    if durations:
        def by_duration(d: float, fps: float, k: int):
            n = max(1, round(d * fps) + k)
            return (n, fps), (n + 1, fps)

        kinds["durations"] = st.builds(by_duration, st.sampled_from(durations), rates, st.sampled_from((0, -1, -2, 1)))
    if v.frame_counts:
        def by_count(n: int, fps: float, k: int):
            return (max(1, n + k), fps), (max(1, n + k) + 1, fps)

        kinds["frame_counts"] = st.builds(by_count, st.sampled_from(v.frame_counts), rates, st.sampled_from((0, -1)))
    if v.fps:
        def by_rate(fps: float, seconds: float, up: bool):
            n = max(1, int(seconds * fps))
            other = float(np.nextafter(fps, math.inf if up else 0.0))
            return (n, fps), (n, other)

        kinds["fps"] = st.builds(by_rate, st.sampled_from(v.fps), st.floats(1.0, max(1.0, min(max_seconds, 120.0))),
                                 st.booleans())
    return kinds


def _uniform_video(v: VideoEdges, max_seconds: float) -> st.SearchStrategy:
    def build(fps: float, seconds: float):
        n = max(1, int(seconds * fps))
        return (n, fps), (n + 1, fps)

    return st.builds(build, st.one_of(st.sampled_from(_rates(v)), st.floats(0.5, v.max_fps)),
                     st.floats(0.1, max_seconds))


def video_metadata_pairs(family, where: str = "boundary", *, valid: bool = True,
                         max_seconds: float | None = None, loader: str | None = None) -> st.SearchStrategy:
    """Two :class:`~mmprep.VideoMetadata` of the same frame size, one frame apart (or one ulp of
    fps apart for ``where="fps"``), straddling a sampler threshold or cap of ``where``.
    ``max_seconds`` drops edges beyond it and caps uniform draws (default: the family's range).
    ``loader``: another of the family's video loaders (``family.edges().video_loaders``); its
    edges are drawn and its counts decide validity (pass the same ``loader=`` when counting)."""
    v = _video_edges(family, loader)
    limit = v.max_seconds if max_seconds is None else max_seconds
    pairs = _pick(_video_kinds(v, limit), _uniform_video(v, limit), where, "video_metadata_pairs")

    def build(pair, size):
        return tuple(VideoMetadata(n, fps, size[0], size[1]) for n, fps in pair)

    out = st.builds(build, pairs, _frame_size(v))
    if valid:
        count = _counter(family, "video", loader)
        out = out.filter(lambda p: bool((count(p) >= 0).all()))
    return out


def video_metadata(family, where: str = "any", *, valid: bool = True, max_seconds: float | None = None,
                   loader: str | None = None) -> st.SearchStrategy:
    """One :class:`~mmprep.VideoMetadata` (total frames, fps, height, width): uniform, or around
    the sampler's branch thresholds, caps and loader rules (see :func:`video_metadata_pairs`,
    also for ``loader``)."""
    v = _video_edges(family, loader)
    limit = v.max_seconds if max_seconds is None else max_seconds
    kinds = _video_kinds(v, limit)
    if where == "any":
        pairs = st.one_of(*kinds.values(), _uniform_video(v, limit)) if kinds else _uniform_video(v, limit)
    elif where == "boundary" and not kinds:
        raise InvalidInputError(f"{family!r} has no video edges to draw around")
    else:
        pairs = _pick(kinds, _uniform_video(v, limit), where, "video_metadata")
    out = st.builds(lambda p, i, size: VideoMetadata(p[i][0], p[i][1], size[0], size[1]),
                    pairs, st.sampled_from((0, 1)), _frame_size(v))
    if valid:
        count = _counter(family, "video", loader)
        out = out.filter(lambda m: int(count([m])[0]) >= 0)
    return out


# -- audio -------------------------------------------------------------------------------------


def _audio_kinds(a: AudioEdges) -> dict[str, st.SearchStrategy]:
    last_step = max(0, (a.max_samples - a.phase) // a.step)
    return {
        "steps": st.builds(lambda k, d: (a.phase + k * a.step + d, a.phase + k * a.step + d + 1),
                           st.integers(0, last_step), st.sampled_from((-1, 0))),
        "hops": st.builds(lambda j, d: (j * a.hop + d, j * a.hop + d + 1),
                          st.integers(1, a.max_samples // a.hop - 1), st.sampled_from((-1, 0))),
    }


def audio_length_pairs(family, where: str = "boundary", *, valid: bool = True) -> st.SearchStrategy:
    """Two sample counts one sample apart, around the hop multiples and subsampling steps."""
    a = _edges(family, "audio")
    uniform = st.integers(a.min_samples if valid else 1, a.max_samples - 1).map(lambda n: (n, n + 1))
    pairs = _pick(_audio_kinds(a), uniform, where, "audio_length_pairs").filter(lambda p: p[0] >= 1)
    if valid:
        count = _counter(family, "audio")
        pairs = pairs.filter(lambda p: p[0] >= a.min_samples and bool((count(list(p)) >= 0).all()))
    return pairs


def audio_lengths(family, where: str = "any", *, valid: bool = True) -> st.SearchStrategy:
    """Audio lengths in samples (at the spec's rate): uniform, or around the steps; with
    ``valid=True`` only lengths a plan accepts (``min_samples .. max_samples``)."""
    a = _edges(family, "audio")
    uniform = st.integers(a.min_samples if valid else 1, a.max_samples)
    if where == "uniform":
        return uniform
    one = st.builds(lambda p, i: p[i], audio_length_pairs(family, "boundary" if where == "any" else where, valid=valid),
                    st.sampled_from((0, 1)))
    return st.one_of(one, uniform) if where == "any" else one


# -- EVS ---------------------------------------------------------------------------------------


def _rate_pair(tokens: int, frames: int, kept: int) -> tuple[float, float]:
    """Adjacent doubles ``q < q'`` around ``1 - kept / total`` where ``retained_count`` changes."""
    q = 1.0 - kept / (tokens * frames)
    grid = [q]
    for _ in range(4):
        grid = [float(np.nextafter(grid[0], 0.0)), *grid, float(np.nextafter(grid[-1], 1.0))]
    grid = [x for x in grid if 0.0 <= x < 1.0]
    counts = [retained_count(tokens, frames, x) for x in grid]
    for i in range(len(grid) - 1):
        if counts[i] != counts[i + 1]:
            return grid[i], grid[i + 1]
    return grid[0], grid[-1]


def evs_rate_pairs(family, num_frames: int | None = None) -> st.SearchStrategy:
    """``(q, q')``: adjacent pruning rates (doubles) between which the retained token count of a
    ``num_frames``-frame video changes (default: the loader's frame count)."""
    e = family.edges().evs
    if e is None:
        raise InvalidInputError(f"{family!r} has no EVS pruning")
    frames = e.max_frames if num_frames is None else num_frames
    total = e.tokens_per_frame * frames
    # the count is max(F, int(T * F * (1 - q))): its steps are the kept counts F + 1 .. T*F
    return st.integers(e.tokens_per_frame + 1, total).map(lambda k: _rate_pair(e.tokens_per_frame, frames, k))


def evs_rates(family, num_frames: int | None = None) -> st.SearchStrategy:
    """Pruning rates in [0, 1): the spec's default, 0, uniform, and around the retained-count steps."""
    e = family.edges().evs
    if e is None:
        raise InvalidInputError(f"{family!r} has no EVS pruning")
    edge = st.builds(lambda p, i: p[i], evs_rate_pairs(family, num_frames), st.sampled_from((0, 1)))
    return st.one_of(st.sampled_from((e.default_rate, 0.0)), edge, st.floats(0.0, 1.0, exclude_max=True))


# -- whole prompts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptCase:
    """A prompt text with one placeholder per media item and the items' metadata.

    ``family.prompt(case.text, **case.media, tokenizer=tok)`` expands it; ``images`` are
    ``(height, width)`` px, ``videos`` :class:`~mmprep.VideoMetadata`, ``audios`` sample counts.
    """

    text: str
    images: tuple[Size, ...] = ()
    videos: tuple[VideoMetadata, ...] = ()
    audios: tuple[int, ...] = ()
    media: dict[str, list] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        named = {"images": self.images, "videos": self.videos, "audios": self.audios}
        self.media.update({k: list(v) for k, v in named.items() if v})


def _interleave(words: list[str], markers: list[str]) -> str:
    out = [words[0]]
    for marker, word in zip(markers, words[1:]):
        out += [marker, word]
    return "".join(out)


@st.composite
def prompts(draw, family, *, max_items: int = 3, where: str = "any", max_video_seconds: float = 60.0) -> PromptCase:
    """Prompt texts (short words, the family's placeholders in random order) with matching media
    metadata drawn from :func:`image_sizes`, :func:`video_metadata` (at most
    ``max_video_seconds`` long) and :func:`audio_lengths`; at most ``max_items`` per modality
    (fewer where the model allows fewer per prompt)."""
    edges = family.edges()
    n = {}
    for modality in edges.modalities:
        limit = min(max_items, edges.max_items.get(modality, max_items))
        n[modality] = draw(st.integers(0, limit))
    images = tuple(draw(image_sizes(family, where)) for _ in range(n.get("image", 0)))
    videos = tuple(draw(video_metadata(family, where, max_seconds=max_video_seconds)) for _ in range(n.get("video", 0)))
    audios = tuple(draw(audio_lengths(family, where)) for _ in range(n.get("audio", 0)))
    markers = [edges.placeholders[m] for m in ("image", "video", "audio") for _ in range(n.get(m, 0))]
    # items of one modality keep their order; the modalities interleave freely
    order = draw(st.permutations(range(len(markers)))) if markers else []
    words = draw(st.lists(st.sampled_from(WORDS), min_size=len(markers) + 1, max_size=len(markers) + 1))
    slots = [markers[i] for i in order]
    return PromptCase(_interleave(words, slots), images, videos, audios)
