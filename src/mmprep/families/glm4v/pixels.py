"""GLM pixels: bicubic-antialias resize, ``(c, tp, py, px)`` patch vectors in 2x2 merge-window row
order, frames repeated to a multiple of temporal_patch_size."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ...io.image import DEFAULT_MAX_PIXELS
from ...pixels.batch import as_list, check_options, default_threads, finish, run_images, run_items
from ...pixels.layout import norm_table, put_planar, write_banded
from ...pixels.resize import fast_bicubic_aa, torch_bicubic_aa
from ...types import PixelBatch


def glm_image_layout(img: np.ndarray, patch: int, merge: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> channel-major ``(3, rows, patch*patch)``, rows ``(bh, bw, mh, mw)``.

    One temporal slice of GLM's layout; the writer repeats each vector over the temporal patch
    (an image is ``temporal_patch_size`` identical slices, SPEC §2.2 step 4).
    """
    h, w, _ = img.shape
    bh, bw = h // (patch * merge), w // (patch * merge)
    v = img.reshape(bh, merge, patch, bw, merge, patch, 3).transpose(6, 0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(v).reshape(3, bh * bw * merge * merge, patch * patch)


def glm_video_layout(frames: np.ndarray, patch: int, merge: int, temporal: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> channel-major ``(3, rows, temporal*patch*patch)``.

    T is padded to a multiple of ``temporal`` by repeating the last frame (Glm4vVideoProcessor);
    rows ``(t, bh, bw, mh, mw)``, each channel's vector ``(tp, py, px)``.
    """
    t, h, w, _ = frames.shape
    if t % temporal:
        pad = np.repeat(frames[-1:], temporal - t % temporal, axis=0)
        frames = np.concatenate([frames, pad], axis=0)
        t = frames.shape[0]
    gt, bh, bw = t // temporal, h // (patch * merge), w // (patch * merge)
    v = frames.reshape(gt, temporal, bh, merge, patch, bw, merge, patch, 3)
    v = v.transpose(8, 0, 2, 5, 3, 6, 1, 4, 7)  # c gt bh bw mh mw tp py px
    return np.ascontiguousarray(v).reshape(3, gt * bh * bw * merge * merge, temporal * patch * patch)


def glm_video_patches(frames: np.ndarray, height: int, width: int, spec: Any, *,
                      backend: str = "reference", dtype: str = "float32",
                      threads: int | None = None) -> np.ndarray:
    """Decoded frames ``(T, H, W, 3)`` uint8 -> ``(rows, 3*tps*p*p)`` as ``Glm4vVideoProcessor``.

    Each frame is resized to ``(height, width)`` px (bicubic, antialiased), the frame count is
    padded to a multiple of ``temporal_patch_size`` by repeating the last frame, and rows come in
    ``(t, bh, bw, mh, mw)`` order with ``(c, tp, py, px)`` vectors. rows = grid_t*gh*gw.
    """
    check_options(backend, "np", dtype, threads)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InvalidInputError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got "
                                f"{frames.shape} {frames.dtype}")
    f = spec.video_factor
    if height <= 0 or width <= 0 or height % f or width % f:
        raise InvalidInputError(f"resized frame size {height}x{width} must be positive multiples of {f}")
    threads = threads or default_threads()
    if backend == "reference":
        resized = _torch_frames(frames, height, width)
    else:
        resized = np.stack(run_items(lambda i: fast_bicubic_aa(frames[i], height, width), len(frames), threads))
    u8 = glm_video_layout(resized, spec.video_patch, spec.video_merge, spec.temporal_patch_size)
    out = np.empty((u8.shape[1], 3 * u8.shape[2]), np.uint8 if dtype == "uint8" else np.float32)
    table = None if dtype == "uint8" else norm_table(tuple(spec.image_mean), tuple(spec.image_std), spec.rescale_factor)
    put_planar(u8, table, out)
    return out


def _torch_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """The reference resize of a whole clip at once (frames are resized independently)."""
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return y.permute(0, 2, 3, 1).numpy()


def glm_image_pixels(family: Any, images: Any, *, backend: str = "reference", return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PixelBatch:
    """GLM images -> ``pixel_values (Σ gh*gw, 1176)``, ``grids (n, 3)`` int64 ``[1, gh, gw]``.

    Reference: transformers' default (torchvision) ``Glm4vImageProcessor`` /
    ``Glm46VImageProcessor``, as vLLM loads it.
    """
    check_options(backend, return_tensors, dtype, threads)
    s, items = family.spec, as_list(images)
    p, m, tp = s.patch_size, s.merge_size, s.temporal_patch_size
    table = None if dtype == "uint8" else norm_table(tuple(s.image_mean), tuple(s.image_std), s.rescale_factor)

    def write(img: np.ndarray, plan: Any, dst: np.ndarray, inner: int) -> None:
        if backend == "reference":
            r = torch_bicubic_aa(img, plan.height, plan.width)
        else:
            r = fast_bicubic_aa(img, plan.height, plan.width, inner)
        write_banded(r, p * m, lambda band: glm_image_layout(band, p, m), dst, table, inner, repeat=tp)

    out, plans = run_images(
        items, lambda sizes: [family.plan_image(h, w, index=i) for i, (h, w) in enumerate(sizes)],
        lambda plan: plan.num_patches, (3, tp * p * p), write, dtype, threads or default_threads(), max_pixels)
    grids = np.array([pl.grid for pl in plans], np.int64).reshape(-1, 3)
    values = out.reshape(out.shape[0], 3 * tp * p * p)
    return finish(values, grids, plans, s.image_mean, s.image_std, dtype, return_tensors)
