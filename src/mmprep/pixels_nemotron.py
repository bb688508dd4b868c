"""Nemotron Nano VL pixels: InternVL-style tiles, the dynamic-resolution tiler, video frames.

Reference: the seed's processor (SPEC §2.3, S2 ``image_to_pixel_values``,
``DynamicResolutionImageTiler.apply_params`` / ``.stack``, ``video_to_pixel_values``): PIL
``resize`` with its default BICUBIC filter, ``ToTensor`` (``x / 255``), then
``(x - norm_mean) / norm_std``. vLLM's image loader has already converted every image to RGB
(:mod:`mmprep.media`), so the resize runs on RGB pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError
from .media import DEFAULT_MAX_PIXELS, read_image
from .pixels_batch import as_list, check_options, default_threads, finish, pack, run_items
from .pixels_layout import chw_patch_layout, norm_table, tile_layout
from .pixels_resize import fast_bicubic_aa, pil_bicubic
from .types import PixelBatch


def _resizer(backend: str, threads: int):
    if backend == "reference":
        return pil_bicubic
    return lambda img, h, w: fast_bicubic_aa(img, h, w, threads)


def _table(spec: Any) -> np.ndarray:
    return norm_table(tuple(spec.norm_mean), tuple(spec.norm_std), 1 / 255)


def nemotron_frame_tiles(frames: np.ndarray, spec: Any, *, backend: str = "fast", dtype: str = "float32",
                         threads: int | None = None) -> np.ndarray:
    """Decoded frames ``(T, H, W, 3)`` uint8 -> ``(T, 3, S, S)``: one S x S tile per frame.

    The seed's video path (``video_to_pixel_values`` with ``max_num_tiles=1``): the ratio set is
    ``[(1, 1)]``, so each frame is resized to S x S (PIL bicubic) and no thumbnail is added.
    """
    check_options(backend, "np", dtype)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InvalidInputError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got "
                                f"{frames.shape} {frames.dtype}")
    size, threads = spec.image_size, threads or default_threads()
    resize = _resizer(backend, 1)
    tiles = run_items(lambda i: tile_layout(resize(frames[i], size, size), size), len(frames), threads)
    out = pack(tiles, dtype, _table(spec), threads)
    return out.reshape(len(frames), 3, size, size)


def _tiles(img: np.ndarray, plan: Any, resize) -> np.ndarray:
    """One image -> ``(num_tiles, 3, S*S)`` uint8: row-major crops of the canvas (+ thumbnail)."""
    size = plan.tiles.tile_size
    crops = tile_layout(resize(img, plan.height, plan.width), size)
    if plan.tiles.thumbnail:
        crops = np.concatenate([crops, tile_layout(resize(img, size, size), size)])
    return crops


def nemotron_image_pixels(family: Any, images: Any, *, backend: str = "fast", return_tensors: str = "np",
                          dtype: str = "float32", text_len: int = 0, max_model_len: int | None = None,
                          threads: int | None = None,
                          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PixelBatch:
    """Tiles: ``(Σ tiles, 3, S, S)``, grids ``(n, 3)`` = ``(num_tiles, S/p, S/p)`` per image.

    Dynamic tiler (``spec.dynamic``): all images are planned as one request
    (``family.plan_request(sizes, text_len=..., max_model_len=...)``) and returned as
    ``(Σ patches, 3*p*p)`` rows with ``(c, yy, xx)`` vectors (the model-side ``stack``), grids
    ``[1, hp, wp]`` per image.
    """
    check_options(backend, return_tensors, dtype)
    s, items = family.spec, as_list(images)
    threads = threads or default_threads()
    resize = _resizer(backend, 1 if len(items) > 1 else threads)
    decoded = run_items(lambda i: read_image(items[i], max_pixels=max_pixels, index=i), len(items), threads)
    if s.dynamic:
        if not decoded:
            raise InvalidInputError("the dynamic-resolution tiler needs at least one image")
        req = family.plan_request([im.shape[:2] for im in decoded], text_len=text_len,
                                  max_model_len=max_model_len)
        plans = list(req.images)
        layouts = run_items(
            lambda i: chw_patch_layout(resize(decoded[i], plans[i].height, plans[i].width), s.patch_size),
            len(decoded), threads)
        out = pack(layouts, dtype, _table(s), threads)
        values = out.reshape(out.shape[0], -1)
    else:
        plans = [family.plan_image(im.shape[0], im.shape[1], index=i) for i, im in enumerate(decoded)]
        layouts = run_items(lambda i: _tiles(decoded[i], plans[i], resize), len(decoded), threads)
        out = pack(layouts, dtype, _table(s), threads)
        values = out.reshape(out.shape[0], 3, s.image_size, s.image_size) if layouts else out
    grids = np.array([p.grid for p in plans], np.int64).reshape(-1, 3)
    return finish(values, grids, plans, s.norm_mean, s.norm_std, dtype, return_tensors)
