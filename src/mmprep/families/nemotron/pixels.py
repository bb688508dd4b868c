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

from ...errors import InvalidInputError
from ...io.image import DEFAULT_MAX_PIXELS
from ...pixels.batch import as_list, check_options, default_threads, finish, run_images, run_items
from ...pixels.layout import chw_patch_layout, norm_table, put_planar, tile_layout, write_banded
from ...pixels.resize import fast_bicubic_aa, pil_bicubic, torch_bicubic_aa
from ...types import PixelBatch


def _resizer(backend: str, rule: str = "pil"):
    """``resize(img, height, width, threads)``: the engine's kernel (reference) or the fast stand-in.

    ``rule`` (``spec.resize_rule``): ``"pil"`` the seed's PIL bicubic on uint8; ``"torch_uint8"``
    current vLLM's ``F.interpolate(uint8, bicubic, antialias=True)``. transformers' float resize
    (``"torch_float"``) keeps overshoot outside [0, 255] that a uint8 writer cannot hold: refused.
    """
    if backend != "reference":
        return fast_bicubic_aa
    if rule == "torch_uint8":
        return torch_bicubic_aa
    return lambda img, h, w, threads=1: pil_bicubic(img, h, w)


def _float_rule(spec: Any, backend: str, dtype: str) -> bool:
    """True when pixels take transformers' float path (``resize_rule="torch_float"``, reference)."""
    if spec.resize_rule != "torch_float" or backend != "reference":
        return False
    if dtype == "uint8":
        raise InvalidInputError("resize_rule 'torch_float' keeps the float resize's overshoot: no uint8 pixels")
    return True


def float_resized(img: np.ndarray, height: int, width: int, spec: Any) -> np.ndarray:
    """transformers' Omni image path: ``F.interpolate`` on float32 (bicubic, antialias), no
    rounding or clamping, then ``(x - 255 mean) / (255 std)`` (its fused rescale + normalize).
    ``(3, height, width)`` float32."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(torch.float32)
    if tuple(img.shape[:2]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(spec.norm_mean, dtype=torch.float64).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.norm_std, dtype=torch.float64).view(1, 3, 1, 1) * 255.0
    x = (x - mean.to(torch.float32)) / std.to(torch.float32)
    return x[0].numpy()


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
    """``(3, H, W)`` -> ``(H/size * W/size, 3, size*size)`` blocks, row-major, ``(c, yy, xx)`` each."""
    c, h, w = x.shape
    v = x.reshape(c, h // size, size, w // size, size).transpose(1, 3, 0, 2, 4)
    return v.reshape(-1, c, size * size)


def _table(spec: Any) -> np.ndarray:
    return norm_table(tuple(spec.norm_mean), tuple(spec.norm_std), 1 / 255)


def nemotron_frame_tiles(frames: np.ndarray, spec: Any, *, backend: str = "reference", dtype: str = "float32",
                         threads: int | None = None, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Decoded frames ``(T, H, W, 3)`` uint8 -> ``(T, 3, height, width)``, one resized frame each.

    The seed's video path (``video_to_pixel_values`` with ``max_num_tiles=1``): each frame is
    resized to S x S (the default size) and no thumbnail is added. With the tubelet rule the plan's
    frame size (``video_target_num_patches``) is passed; frames stay one row each, as vLLM's
    ``video_to_pixel_values`` returns them (the model groups tubelets).
    """
    check_options(backend, "np", dtype, threads)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InvalidInputError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got "
                                f"{frames.shape} {frames.dtype}")
    fh, fw = height or spec.image_size, width or spec.image_size
    threads = threads or default_threads()
    resize = _resizer(backend, spec.resize_rule)
    use_float = _float_rule(spec, backend, dtype)
    out = np.empty((len(frames), 3, fh * fw), np.uint8 if dtype == "uint8" else np.float32)
    table = None if dtype == "uint8" else _table(spec)

    def one(i: int) -> None:
        if use_float:
            out[i] = float_resized(frames[i], fh, fw, spec).reshape(3, fh * fw)
            return
        r = resize(frames[i], fh, fw, 1)
        put_planar(np.ascontiguousarray(r.transpose(2, 0, 1)).reshape(3, 1, fh * fw), table, out[i:i + 1])

    run_items(one, len(frames), threads)
    return out.reshape(len(frames), 3, fh, fw)


def _write_tiles(img: np.ndarray, plan: Any, dst: np.ndarray, table, resize, inner: int) -> None:
    """One image -> its tiles ``(num_tiles, 3, S*S)``: row-major canvas crops, then the thumbnail."""
    size, blocks = plan.tiles.tile_size, plan.tiles.cols * plan.tiles.rows
    layout = lambda band: tile_layout(band, size)  # noqa: E731
    write_banded(resize(img, plan.height, plan.width, inner), size, layout, dst[:blocks], table, inner)
    if plan.tiles.thumbnail:
        write_banded(resize(img, size, size, inner), size, layout, dst[blocks:], table, 1)


def nemotron_image_pixels(family: Any, images: Any, *, backend: str = "reference", return_tensors: str = "np",
                          dtype: str = "float32", text_len: int = 0, max_model_len: int | None = None,
                          threads: int | None = None,
                          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PixelBatch:
    """Tiles: ``(Σ tiles, 3, S, S)``, grids ``(n, 3)`` = ``(num_tiles, S/p, S/p)`` per image.

    Dynamic tiler (``spec.dynamic``): all images are planned as one request
    (``family.plan_request(sizes, text_len=..., max_model_len=...)``) and returned as
    ``(Σ patches, 3*p*p)`` rows with ``(c, yy, xx)`` vectors (the model-side ``stack``), grids
    ``[1, hp, wp]`` per image.
    """
    check_options(backend, return_tensors, dtype, threads)
    s, items = family.spec, as_list(images)
    table = None if dtype == "uint8" else _table(s)
    use_float = _float_rule(s, backend, dtype)
    resize = _resizer(backend, s.resize_rule)
    if s.dynamic:
        if not items:
            raise InvalidInputError("the dynamic-resolution tiler needs at least one image")
        p = s.patch_size

        def plan_all(sizes):
            return family.plan_request(sizes, text_len=text_len, max_model_len=max_model_len).images

        def write(img, plan, dst, inner):
            if use_float:
                dst[:] = _blocks(float_resized(img, plan.height, plan.width, s), p)
                return
            r = resize(img, plan.height, plan.width, inner)
            write_banded(r, p, lambda band: chw_patch_layout(band, p), dst, table, inner)

        tail = (3, p * p)
    else:
        def plan_all(sizes):
            return [family.plan_image(h, w, index=i) for i, (h, w) in enumerate(sizes)]

        def write(img, plan, dst, inner):
            if use_float:
                blocks, size = plan.tiles.cols * plan.tiles.rows, plan.tiles.tile_size
                dst[:blocks] = _blocks(float_resized(img, plan.height, plan.width, s), size)
                if plan.tiles.thumbnail:
                    dst[blocks:] = _blocks(float_resized(img, size, size, s), size)
                return
            _write_tiles(img, plan, dst, table, resize, inner)

        tail = (3, s.image_size * s.image_size)
    out, plans = run_images(items, plan_all, lambda plan: plan.grid[0] if not s.dynamic else plan.num_patches,
                            tail, write, dtype, threads or default_threads(), max_pixels)
    if s.dynamic:
        values = out.reshape(out.shape[0], 3 * s.patch_size**2)
    else:
        values = out.reshape(out.shape[0], 3, s.image_size, s.image_size)
    grids = np.array([pl.grid for pl in plans], np.int64).reshape(-1, 3)
    return finish(values, grids, plans, s.norm_mean, s.norm_std, dtype, return_tensors)
