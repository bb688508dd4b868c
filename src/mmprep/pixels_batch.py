"""Batch plumbing shared by the pixel pipelines: option checks, threads, packing, results."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InvalidInputError, MmprepError, item_prefix
from .pixels_layout import normalize_interleaved, normalize_planar
from .types import PixelBatch

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


def check_options(backend: str, return_tensors: str, dtype: str) -> None:
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if return_tensors not in RETURN_TENSORS:
        raise InvalidInputError(f"return_tensors must be one of {RETURN_TENSORS}, got {return_tensors!r}")
    if dtype not in DTYPES:
        raise InvalidInputError(f"dtype must be one of {DTYPES}, got {dtype!r}")


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
            if str(e).startswith(item_prefix(i).strip(": ")):
                raise
            raise type(e)(f"{item_prefix(i)}{e}") from None

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


def pack(layouts: list[np.ndarray], dtype: str, table: np.ndarray, threads: int,
          interleaved: bool = False) -> np.ndarray:
    """Concatenate per-item uint8 layouts into one buffer, normalizing in the same single write."""
    n = sum(x.shape[0] for x in layouts)
    shape = (n,) + layouts[0].shape[1:] if layouts else (0, 0)
    out = np.empty(shape, np.uint8 if dtype == "uint8" else np.float32)
    row = 0
    for x in layouts:
        dst = out[row:row + x.shape[0]]
        if dtype == "uint8":
            dst[...] = x
        elif interleaved:
            normalize_interleaved(x, table, dst, threads)
        else:
            normalize_planar(x, table, dst, threads)
        row += x.shape[0]
    return out
