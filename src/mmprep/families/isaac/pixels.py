"""Isaac pixels: bilinear resize on uint8, ``(py, px, c)`` patch vectors, the real patch grid."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...io.image import DEFAULT_MAX_PIXELS
from ...pixels.batch import as_list, check_options, default_threads, finish, run_images
from ...pixels.layout import norm_table, write_banded
from ...pixels.resize import fast_bilinear, torch_bilinear
from ...types import PixelBatch


def isaac_layout(img: np.ndarray, patch: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> ``(hp*wp, patch*patch*3)`` uint8, ``(py, px, c)`` vectors."""
    h, w, _ = img.shape
    hp, wp = h // patch, w // patch
    v = img.reshape(hp, patch, wp, patch, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(v).reshape(hp * wp, patch * patch * 3)


def isaac_image_pixels(family: Any, images: Any, *, backend: str = "reference", return_tensors: str = "np",
                       dtype: str = "float32", threads: int | None = None) -> PixelBatch:
    """Isaac images -> ``pixel_values (Σ hp*wp, p*p*3)`` with ``(py, px, c)`` vectors,
    ``grids (n, 3)`` int64 ``[1, hp, wp]`` (the real patch grid, trap T3).

    Reference: the seed's path (SPEC §2.1): bilinear ``F.interpolate`` on the uint8 tensor,
    ``x * (1/255)``, mean/std 0.5. Images above ``spec.max_image_pixels`` are rejected.
    """
    check_options(backend, return_tensors, dtype, threads)
    s, items = family.spec, as_list(images)
    p = s.patch_size
    table = None if dtype == "uint8" else norm_table(tuple(s.image_mean), tuple(s.image_std), s.rescale_factor)
    resize = torch_bilinear if backend == "reference" else fast_bilinear

    def write(img: np.ndarray, plan: Any, dst: np.ndarray, inner: int) -> None:
        r = resize(img, plan.height, plan.width)
        write_banded(r, p, lambda band: isaac_layout(band, p), dst, table, inner, interleaved=True)

    limit = DEFAULT_MAX_PIXELS if s.max_image_pixels is None else s.max_image_pixels
    out, plans = run_images(
        items, lambda sizes: [family.plan_image(h, w, index=i) for i, (h, w) in enumerate(sizes)],
        lambda plan: plan.num_patches, (p * p * 3,), write, dtype, threads or default_threads(), limit)
    grids = np.array([pl.grid for pl in plans], np.int64).reshape(-1, 3)
    return finish(out, grids, plans, s.image_mean, s.image_std, dtype, return_tensors)
