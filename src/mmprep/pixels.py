"""Per-family pixel pipelines: decode -> resize -> (fused) rescale, normalize, patchify.

Every function reads the family's plan (``family.plan_image`` / ``family.plan_request``) and
never recomputes a size. Two backends, one contract:

* ``backend="reference"``: the reference resize op itself (torch for GLM and Isaac, PIL for
  Nemotron); the output equals the reference within 1e-5 after normalization.
* ``backend="fast"`` (default): OpenCV / threaded PIL resize (see :mod:`mmprep.pixels_resize`),
  differing from the reference only in resize rounding (bounds in docs/pixels.md).

Both share the layout and the single fused normalize pass of :mod:`mmprep.pixels_layout`.
``dtype="uint8"`` returns the resized, patchified bytes instead and sets ``PixelBatch.mean`` /
``.std`` so a GPU can normalize them: ``(x / 255 - mean[c]) / std[c]`` per channel ``c``.
Batches are packed (rows concatenated), never padded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError
from .media import DEFAULT_MAX_PIXELS
from .pixels_batch import as_list, check_options, default_threads, finish, run_images, run_items
from .pixels_layout import glm_image_layout, glm_video_layout, isaac_layout, norm_table, put_planar, write_banded
from .pixels_nemotron import nemotron_frame_tiles, nemotron_image_pixels
from .pixels_resize import fast_bicubic_aa, fast_bilinear, torch_bicubic_aa, torch_bilinear
from .types import PixelBatch

# -- GLM-4.1V / 4.6V --------------------------------------------------------------------------

def glm_video_patches(frames: np.ndarray, height: int, width: int, spec: Any, *,
                      backend: str = "fast", dtype: str = "float32",
                      threads: int | None = None) -> np.ndarray:
    """Decoded frames ``(T, H, W, 3)`` uint8 -> ``(rows, 3*tps*p*p)`` as ``Glm4vVideoProcessor``.

    Each frame is resized to ``(height, width)`` px (bicubic, antialiased), the frame count is
    padded to a multiple of ``temporal_patch_size`` by repeating the last frame, and rows come in
    ``(t, bh, bw, mh, mw)`` order with ``(c, tp, py, px)`` vectors. rows = grid_t*gh*gw.
    """
    check_options(backend, "np", dtype)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InvalidInputError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got "
                                f"{frames.shape} {frames.dtype}")
    f = spec.patch_size * spec.merge_size
    if height <= 0 or width <= 0 or height % f or width % f:
        raise InvalidInputError(f"resized frame size {height}x{width} must be positive multiples of {f}")
    threads = threads or default_threads()
    if backend == "reference":
        resized = _torch_frames(frames, height, width)
    else:
        resized = np.stack(run_items(lambda i: fast_bicubic_aa(frames[i], height, width), len(frames), threads))
    u8 = glm_video_layout(resized, spec.patch_size, spec.merge_size, spec.temporal_patch_size)
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


def glm_image_pixels(family: Any, images: Any, *, backend: str = "fast", return_tensors: str = "np",
                     dtype: str = "float32", threads: int | None = None,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PixelBatch:
    """GLM images -> ``pixel_values (Σ gh*gw, 1176)``, ``grids (n, 3)`` int64 ``[1, gh, gw]``.

    Reference: transformers' default (torchvision) ``Glm4vImageProcessor`` /
    ``Glm46VImageProcessor``, as vLLM loads it.
    """
    check_options(backend, return_tensors, dtype)
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


# -- Isaac -----------------------------------------------------------------------------------

def isaac_image_pixels(family: Any, images: Any, *, backend: str = "fast", return_tensors: str = "np",
                       dtype: str = "float32", threads: int | None = None) -> PixelBatch:
    """Isaac images -> ``pixel_values (Σ hp*wp, p*p*3)`` with ``(py, px, c)`` vectors,
    ``grids (n, 3)`` int64 ``[1, hp, wp]`` (the real patch grid, trap T3).

    Reference: the seed's path (SPEC §2.1): bilinear ``F.interpolate`` on the uint8 tensor,
    ``x * (1/255)``, mean/std 0.5. Images above ``spec.max_image_pixels`` are rejected.
    """
    check_options(backend, return_tensors, dtype)
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


__all__ = [
    "glm_image_pixels", "glm_video_patches", "isaac_image_pixels", "nemotron_frame_tiles",
    "nemotron_image_pixels", "check_options", "default_threads",
]
