"""Sequence packing: samples (token lengths) into bins of ``max_len`` tokens.

A sample is atomic: it is never split, so no media span is ever cut. Three algorithms:

* ``"bfd"`` (default) best-fit decreasing: samples longest first, each into the open bin it
  leaves the least room in. Open bins are kept in buckets by remaining room with a sorted list of
  the distinct rooms, so a lookup is one ``bisect`` (1M samples in about a second or two).
* ``"first_fit"``: the plain greedy baseline, in input order, into the lowest-numbered bin with
  room (a max segment tree over the bins). For comparison (benchmarks) and tests.
* ``"stream"``: best fit over at most ``buffer`` open bins, in input order; when a sample fits
  nowhere and the buffer is full, the fullest bin is closed. For unbounded data
  (:class:`StreamPacker`, :func:`pack_stream`).

An optional second budget (``second`` per sample, ``max_second`` per bin: vision patches or
media items per bin, as InternVL trains) must hold too. Samples longer than ``max_len`` (or over
``max_second``) follow ``on_overflow``: ``"raise"`` (:class:`~mmprep.errors.BudgetError` naming
the sample), ``"skip"`` (reported in ``.skipped`` with the reason) or ``"shrink"`` (the largest
image/video size that fits, :mod:`.shrink`; needs the :class:`DatasetCounts` and the model).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BudgetError, InvalidInputError

POLICIES = ("raise", "skip", "shrink")
ALGORITHMS = ("bfd", "first_fit", "stream")
SCAN = 64  # bins looked at for a second-budget fit before a new bin is opened


@dataclass
class PackResult:
    """Bins of sample indices; what was skipped and why; shrunk samples' new sizes."""

    bins: list[list[int]]
    skipped: list[int]
    reasons: dict[int, str]
    lengths: np.ndarray  # int64, each sample's length as packed (after any shrink)
    max_len: int
    resized: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def num_bins(self) -> int:
        return len(self.bins)

    @property
    def num_packed(self) -> int:
        return sum(len(b) for b in self.bins)

    @property
    def fill_rate(self) -> float:
        """Packed tokens / (bins x max_len); 1.0 for no bins."""
        if not self.bins:
            return 1.0
        packed = np.fromiter((i for b in self.bins for i in b), dtype=np.int64, count=self.num_packed)
        return int(self.lengths[packed].sum()) / (len(self.bins) * self.max_len)

    def summary(self) -> dict[str, Any]:
        return {"bins": self.num_bins, "packed": self.num_packed, "skipped": len(self.skipped),
                "shrunk": len(self.resized), "fill_rate": round(self.fill_rate, 6), "max_len": self.max_len}


# -- inputs and the overflow policy ---------------------------------------------------------------


def _as_lengths(lengths: Any) -> tuple[np.ndarray, dict[int, str], Any]:
    """int64 lengths, the reasons of samples that cannot be packed at all, the counts (if any)."""
    counts = None
    reasons: dict[int, str] = {}
    if hasattr(lengths, "columns") and hasattr(lengths, "errors"):  # DatasetCounts
        counts = lengths
        for i, e in enumerate(counts.errors):
            if e is not None:
                reasons[i] = f"record {counts.ids[i]!r} failed to count: {e}"
        lengths = counts.columns["total_tokens"]
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise InvalidInputError(f"lengths must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu" and (
            arr.dtype.kind != "f" or not np.all(np.isfinite(arr) & (arr == np.round(arr)))):
        raise InvalidInputError(f"lengths must be whole token counts, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    for i in np.flatnonzero(arr <= 0).tolist():
        reasons.setdefault(i, f"sample {i} has length {arr[i]}: nothing to pack")
    return arr, reasons, counts


def _overflow(lengths, second, max_len, max_second, reasons, policy) -> list[int]:
    """Indices over a budget (not already failed); raises under ``"raise"``."""
    over = lengths > max_len
    if second is not None and max_second is not None:
        over |= second > max_second
    idx = [i for i in np.flatnonzero(over).tolist() if i not in reasons]
    if idx and policy == "raise":
        i = idx[0]
        what = (f"length {lengths[i]} > max_len {max_len}" if lengths[i] > max_len
                else f"second budget {second[i]} > max_second {max_second}")
        raise BudgetError(f"sample {i}: {what} ({len(idx)} samples over; on_overflow='skip' or 'shrink')")
    return idx


def pack(
    lengths: Any,
    max_len: int,
    *,
    on_overflow: str = "raise",
    second: Any = None,
    max_second: int | None = None,
    algorithm: str = "bfd",
    buffer: int = 1024,
    model: Any = None,
) -> PackResult:
    """Pack samples of ``lengths`` tokens (an int array, or a :class:`DatasetCounts`) into bins.

    Returns a :class:`PackResult`: ``.bins`` (lists of sample indices), ``.skipped`` (indices not
    packed: failed records, empty samples, and overflow under ``"skip"`` or unshrinkable under
    ``"shrink"``; ``.reasons[i]`` says why), ``.fill_rate``, ``.resized`` (shrunk samples).
    """
    if on_overflow not in POLICIES:
        raise InvalidInputError(f"on_overflow must be one of {POLICIES}, got {on_overflow!r}")
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise InvalidInputError(f"max_len must be a positive int, got {max_len!r}")
    lens, reasons, counts = _as_lengths(lengths)
    sec = None
    if second is not None:
        sec = np.asarray(second, dtype=np.int64)
        if sec.shape != lens.shape:
            raise InvalidInputError(f"second has shape {sec.shape}, lengths {lens.shape}")
        if max_second is None or max_second < 0:
            raise InvalidInputError(f"a second budget needs max_second >= 0, got {max_second!r}")
    over = _overflow(lens, sec, int(max_len), max_second, reasons, on_overflow)
    resized: dict[int, dict[str, Any]] = {}
    if over and on_overflow == "shrink":
        from .shrink import shrink_samples

        if counts is None or model is None:
            raise InvalidInputError("on_overflow='shrink' needs the DatasetCounts as lengths and model=")
        lens = lens.copy()
        resized = shrink_samples(model, counts, [i for i in over if lens[i] > max_len], int(max_len), reasons)
        for i, r in resized.items():
            lens[i] = r["length"]
    for i in over:
        if i not in resized:
            reasons.setdefault(i, _over_reason(i, lens, sec, int(max_len), max_second))
    if sec is not None and max_second is not None:
        for i in np.flatnonzero(sec > max_second).tolist():
            resized.pop(i, None)
            reasons.setdefault(i, _over_reason(i, lens, sec, int(max_len), max_second))
    active = np.ones(lens.size, dtype=bool)
    active[list(reasons)] = False
    idx = np.flatnonzero(active)
    if algorithm == "bfd":
        bins = best_fit_decreasing(lens, idx, int(max_len), sec, max_second)
    elif algorithm == "first_fit":
        bins = first_fit(lens, idx, int(max_len), sec, max_second)
    else:
        p = StreamPacker(int(max_len), buffer=buffer, max_second=max_second)
        bins = []
        for i in idx.tolist():
            bins += p.push(i, int(lens[i]), 0 if sec is None else int(sec[i]))
        bins += p.close()
    return PackResult(bins, sorted(reasons), reasons, lens, int(max_len), resized)


def _over_reason(i, lens, sec, max_len, max_second) -> str:
    if lens[i] > max_len:
        return f"sample {i}: length {lens[i]} > max_len {max_len}"
    return f"sample {i}: second budget {sec[i]} > max_second {max_second}"


# -- best-fit decreasing ---------------------------------------------------------------------------


def best_fit_decreasing(lengths: np.ndarray, idx: np.ndarray, max_len: int,
                        second: np.ndarray | None = None, max_second: int | None = None) -> list[list[int]]:
    """Bins of the samples ``idx`` (all ``0 < length <= max_len``), longest first, best fit."""
    order = idx[np.argsort(-lengths[idx], kind="stable")]
    if second is not None and max_second is not None:
        return _bfd_two(order, lengths, max_len, second, int(max_second))
    caps: list[int] = []  # distinct rooms of the open bins, ascending
    by_cap: dict[int, list[int]] = {}  # room -> open bins with exactly that room
    bins: list[list[int]] = []
    sizes = lengths[order].tolist()
    for i, s in zip(order.tolist(), sizes):
        j = bisect_left(caps, s)
        if j < len(caps):
            c = caps[j]
            lst = by_cap[c]
            b = lst.pop()
            if not lst:
                del caps[j]
                del by_cap[c]
        else:
            b, c = len(bins), max_len
            bins.append([])
        bins[b].append(i)
        nc = c - s
        if nc:
            lst = by_cap.get(nc)
            if lst is None:
                insort(caps, nc)
                by_cap[nc] = [b]
            else:
                lst.append(b)
    return bins


def _bfd_two(order, lengths, max_len, second, max_second) -> list[list[int]]:
    """Best fit on tokens among the bins whose second budget also has room (scan bounded by SCAN)."""
    caps: list[int] = []
    by_cap: dict[int, list[int]] = {}
    bins: list[list[int]] = []
    room2: list[int] = []
    for i, s, s2 in zip(order.tolist(), lengths[order].tolist(), second[order].tolist()):
        b = c = None
        j = bisect_left(caps, s)
        seen = 0
        while j < len(caps) and seen < SCAN and b is None:
            lst = by_cap[caps[j]]
            for k in range(len(lst) - 1, -1, -1):
                seen += 1
                if room2[lst[k]] >= s2:
                    c, b = caps[j], lst.pop(k)
                    if not lst:
                        del by_cap[c]
                        del caps[j]
                    break
                if seen >= SCAN:
                    break
            j += 1
        if b is None:
            b, c = len(bins), max_len
            bins.append([])
            room2.append(max_second)
        bins[b].append(i)
        room2[b] -= s2
        nc = c - s
        if nc:
            if nc not in by_cap:
                insort(caps, nc)
                by_cap[nc] = []
            by_cap[nc].append(b)
    return bins


# -- plain first fit (the baseline) ---------------------------------------------------------------


def first_fit(lengths: np.ndarray, idx: np.ndarray, max_len: int,
              second: np.ndarray | None = None, max_second: int | None = None) -> list[list[int]]:
    """Greedy first fit in input order: each sample into the lowest-numbered bin with room."""
    if second is not None and max_second is not None:
        return _first_fit_two(lengths, idx, max_len, second, int(max_second))
    n = max(1, idx.size)
    size = 1 << (n - 1).bit_length()
    tree = [max_len] * (2 * size)  # max room under each node; unused bins have max_len
    bins: list[list[int]] = []
    for i, s in zip(idx.tolist(), lengths[idx].tolist()):
        node = 1
        while node < size:
            node = 2 * node if tree[2 * node] >= s else 2 * node + 1
        b = node - size
        if b == len(bins):
            bins.append([])
        bins[b].append(i)
        tree[node] -= s
        node >>= 1
        while node:
            left, right = tree[2 * node], tree[2 * node + 1]
            tree[node] = left if left > right else right  # noqa: FURB136 - max() is slower here
            node >>= 1
    return bins


def _first_fit_two(lengths, idx, max_len, second, max_second) -> list[list[int]]:
    room: list[int] = []
    room2: list[int] = []
    bins: list[list[int]] = []
    for i, s, s2 in zip(idx.tolist(), lengths[idx].tolist(), second[idx].tolist()):
        for b in range(len(bins)):
            if room[b] >= s and room2[b] >= s2:
                break
        else:
            b = len(bins)
            bins.append([])
            room.append(max_len)
            room2.append(max_second)
        bins[b].append(i)
        room[b] -= s
        room2[b] -= s2
    return bins


# -- streaming: best fit over a bounded buffer of open bins -----------------------------------------


class StreamPacker:
    """Packs an unbounded stream with at most ``buffer`` open bins; closed bins come back from
    :meth:`push` as soon as they close, the rest from :meth:`close`.

    Samples over a budget are raised (``on_overflow="raise"``) or listed in ``.skipped`` as
    ``(index, reason)`` (``"skip"``).
    """

    def __init__(self, max_len: int, *, buffer: int = 1024, max_second: int | None = None,
                 on_overflow: str = "raise"):
        if buffer < 1:
            raise InvalidInputError(f"buffer must be >= 1, got {buffer}")
        if on_overflow not in ("raise", "skip"):
            raise InvalidInputError(f"a stream takes on_overflow 'raise' or 'skip', got {on_overflow!r}")
        self.max_len, self.buffer, self.max_second, self.policy = int(max_len), int(buffer), max_second, on_overflow
        self.skipped: list[tuple[int, str]] = []
        self._caps: list[int] = []
        self._by_cap: dict[int, list[int]] = {}
        self._open: dict[int, tuple[list[int], int]] = {}  # bin id -> (samples, second room)
        self._next = 0

    def push(self, index: int, length: int, second: int = 0) -> list[list[int]]:
        """Add one sample; returns the bins this closed (usually none)."""
        if length <= 0 or length > self.max_len or (self.max_second is not None and second > self.max_second):
            reason = (f"sample {index}: length {length} does not fit max_len {self.max_len}" if length > 0 and
                      length > self.max_len else f"sample {index}: length {length}" if length <= 0 else
                      f"sample {index}: second budget {second} > max_second {self.max_second}")
            if self.policy == "raise":
                raise BudgetError(reason)
            self.skipped.append((index, reason))
            return []
        closed = []
        b, c = self._find(length, second)
        if b is None:
            if len(self._open) >= self.buffer:
                closed.append(self._close_fullest())
            b, c = self._next, self.max_len
            self._next += 1
            self._open[b] = ([], self.max_second if self.max_second is not None else 0)
        samples, r2 = self._open[b]
        samples.append(index)
        self._open[b] = (samples, r2 - second)
        nc = c - length
        if nc:
            if nc not in self._by_cap:
                insort(self._caps, nc)
                self._by_cap[nc] = []
            self._by_cap[nc].append(b)
        else:
            closed.append(self._open.pop(b)[0])
        return closed

    def _find(self, length: int, second: int) -> tuple[int | None, int | None]:
        j = bisect_left(self._caps, length)
        seen = 0
        while j < len(self._caps) and seen < SCAN:
            c = self._caps[j]
            lst = self._by_cap[c]
            for k in range(len(lst) - 1, -1, -1):
                seen += 1
                if self.max_second is None or self._open[lst[k]][1] >= second:
                    b = lst.pop(k)
                    if not lst:
                        del self._by_cap[c]
                        del self._caps[j]
                    return b, c
            j += 1
        return None, None

    def _close_fullest(self) -> list[int]:
        c = self._caps[0]
        lst = self._by_cap[c]
        b = lst.pop()
        if not lst:
            del self._by_cap[c]
            del self._caps[0]
        return self._open.pop(b)[0]

    def close(self) -> list[list[int]]:
        """Every bin still open, fullest first."""
        out = []
        while self._caps:
            out.append(self._close_fullest())
        return out


def pack_stream(lengths: Iterable[int], max_len: int, *, buffer: int = 1024, second: Iterable[int] | None = None,
                max_second: int | None = None, on_overflow: str = "raise",
                skipped: list | None = None) -> Iterator[list[int]]:
    """Bins (lists of positions in the stream) as they close, over an unbounded ``lengths``.

    ``skipped``: a list that receives ``(index, reason)`` of samples skipped under ``"skip"``.
    """
    p = StreamPacker(max_len, buffer=buffer, max_second=max_second, on_overflow=on_overflow)
    seconds = iter(second) if second is not None else None
    for i, n in enumerate(lengths):
        yield from p.push(i, int(n), int(next(seconds)) if seconds is not None else 0)
        if skipped is not None and p.skipped:
            skipped.extend(p.skipped)
            p.skipped.clear()
    yield from p.close()
