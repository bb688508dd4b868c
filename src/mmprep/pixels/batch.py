"""Batch plumbing shared by the pixel pipelines: option checks, threads, packing, results."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InvalidInputError, MediaError, MmprepError, item_prefix
from ..io.image import check_limit, probe_image, read_image
from ..types import PixelBatch

BACKENDS = ("fast", "reference")
DTYPES = ("float32", "uint8")
RETURN_TENSORS = ("np", "pt")


def default_threads() -> int:
    """Worker threads for a batch: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


MAX_THREADS = 256


def check_options(backend: str, return_tensors: str, dtype: str, threads: Any = None) -> None:
    for name, value, allowed in (("backend", backend, BACKENDS), ("return_tensors", return_tensors, RETURN_TENSORS),
                                 ("dtype", dtype, DTYPES)):
        if not isinstance(value, str) or value not in allowed:
            raise InvalidInputError(f"{name} must be one of {allowed}, got {value!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or not 1 <= threads <= MAX_THREADS):
        raise InvalidInputError(f"threads must be None or an int in [1, {MAX_THREADS}], got {threads!r}")


def as_list(images: Any) -> list:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def run_items(fn: Callable[[int], Any], n: int, threads: int) -> list:
    """``[fn(i) for i in range(n)]`` on a thread pool; errors name the item and keep their type."""

    def call(i: int) -> Any:
        try:
            return fn(i)
        except MmprepError as e:
            if str(e).startswith((f"item {i}:", f"item {i} (")):
                raise
            raise type(e)(f"{item_prefix(i)}{e}") from None
        except (ValueError, OSError, RuntimeError, MemoryError) as e:  # decoder / kernel failures
            raise MmprepError(f"{item_prefix(i)}{type(e).__name__}: {e}") from e

    if threads <= 1 or n <= 1:
        return [call(i) for i in range(n)]
    with ThreadPoolExecutor(min(threads, n)) as pool:
        return list(pool.map(call, range(n)))


def finish(values: np.ndarray, grids: np.ndarray, plans: Sequence, mean, std, dtype: str,
            return_tensors: str) -> PixelBatch:
    """Wrap into a PixelBatch; mean/std ride along only for raw uint8 values."""
    raw = dtype == "uint8"
    if return_tensors == "pt":
        import torch

        values, grids = torch.from_numpy(values), torch.from_numpy(grids)
    return PixelBatch(values, grids, tuple(plans), tuple(mean) if raw else None,
                      tuple(std) if raw else None)


def run_images(items: list, plan_all: Callable[[list[tuple[int, int]]], list], rows_of: Callable[[Any], int],
               tail: tuple[int, ...], write: Callable[[np.ndarray, Any, np.ndarray, int], None],
               dtype: str, threads: int, max_pixels: int | None) -> tuple[np.ndarray, list]:
    """Plan from headers, allocate the packed output once, then decode + write items in parallel.

    ``plan_all(sizes)`` returns one plan per ``(height, width)``; ``rows_of(plan)`` its output
    rows; ``write(img, plan, dst, inner_threads)`` fills the item's slice ``dst`` of the output
    ``(Σ rows, *tail)``. Sizes come from :func:`mmprep.media.probe_image` (header only), so the
    pixel limit is enforced before anything is decoded.
    """
    sizes = []
    for i, item in enumerate(items):
        h, w = probe_image(item, index=i)
        check_limit(h, w, max_pixels, item_prefix(i))
        sizes.append((h, w))
    plans = list(plan_all(sizes))
    counts = [int(rows_of(p)) for p in plans]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    out = np.empty((int(offsets[-1]),) + tail, np.uint8 if dtype == "uint8" else np.float32)
    inner = threads if len(items) == 1 else 1

    def one(i: int) -> None:
        img = read_image(items[i], max_pixels=max_pixels, index=i)
        if img.shape[:2] != sizes[i]:
            raise MediaError(f"header says {sizes[i][0]}x{sizes[i][1]} but decoded {img.shape[0]}x{img.shape[1]}")
        write(img, plans[i], out[offsets[i]:offsets[i + 1]], inner)

    run_items(one, len(items), threads)
    return out, plans
