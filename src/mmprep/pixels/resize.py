"""Resize kernels for the pixel pipelines: the references' exact ops and the fast stand-ins.

Every function takes and returns an ``(H, W, 3)`` uint8 RGB array; sizes are pixels.

* ``torch_bicubic_aa`` / ``torch_bilinear``: the reference ops (torch, imported lazily).
  GLM's reference is transformers' torchvision backend, which calls
  ``F.interpolate(uint8 NCHW, mode="bicubic", antialias=True, align_corners=False)`` and skips
  the call when the size is unchanged; Isaac's seed calls ``F.interpolate(uint8, "bilinear",
  align_corners=False)`` (no antialias) always (SPEC §2.1, trap T1: on the uint8 tensor).
* ``pil_bicubic``: PIL ``Image.resize(size)`` with its default BICUBIC filter on an RGB image,
  Nemotron's reference op (SPEC §2.3); it is also the same separable antialiased filter as
  torch's, differing only in fixed-point rounding (at most 2 levels, measured).
* ``fast_bicubic_aa`` / ``fast_bilinear``: OpenCV where its result stays close to the reference
  (see the bounds in docs/pixels.md); larger shrinks use the exact torch kernel (PIL without torch).
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

# OpenCV's INTER_CUBIC (a = -0.75, no antialias) stays within ~7 levels / >= 45 dB of the
# antialiased a = -0.5 bicubic only while the image is not shrunk by more than this factor.
CV_CUBIC_MAX_SHRINK = 1.15


def _nchw(img: np.ndarray):
    """uint8 ``(H, W, 3)`` array -> ``(1, 3, H, W)`` channels_last tensor view.

    No copy (except of a read-only buffer): the HWC bytes are the channels_last layout, the one torch's uint8 AVX2 resize
    kernels work in (an NCHW-contiguous input is repacked to RGBA and back: 2x slower, measured).
    ``pixels._torch_frames`` already passes clips this way.
    """
    import torch

    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:  # PIL / PyAV buffers: torch warns on (and must not share) read-only memory
        arr = arr.copy()
    return torch.from_numpy(arr)[None].permute(0, 3, 1, 2)


def _hwc(y) -> np.ndarray:
    """``(1, 3, H, W)`` channels_last tensor -> ``(H, W, 3)`` array, no copy."""
    return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())


def torch_bicubic_aa(img: np.ndarray, height: int, width: int, threads: int = 1) -> np.ndarray:
    """transformers' torchvision resize: bicubic, antialias, on the uint8 tensor; same size = no-op.

    Bit-identical to ``F.interpolate(uint8 NCHW, "bicubic", antialias=True, align_corners=False)``
    (tests), run on the channels_last view of the HWC bytes (no permute copies). torch threads the
    kernel itself (``torch.set_num_threads``); ``threads`` is accepted for symmetry with the fast
    kernels and unused.
    """
    if img.shape[:2] == (height, width):
        return img
    import torch.nn.functional as F

    y = F.interpolate(_nchw(img), size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return _hwc(y)


def torch_bilinear(img: np.ndarray, height: int, width: int, threads: int = 1) -> np.ndarray:
    """Isaac's seed resize: bilinear, align_corners=False, no antialias, uint8 in and out.

    Bit-identical to the seed's ``F.interpolate(uint8 NCHW view, "bilinear")`` (tests); run on the
    channels_last view (torch's uint8 AVX2 path, no copies). Always resized, as the seed does.
    """
    import torch.nn.functional as F

    y = F.interpolate(_nchw(img), size=(height, width), mode="bilinear", align_corners=False)
    return _hwc(y)


def pil_bicubic(img: np.ndarray, height: int, width: int, threads: int = 1) -> np.ndarray:
    """PIL ``resize((width, height))`` with the default BICUBIC filter (Nemotron's op).

    With ``threads > 1`` the output rows are cut into strips, each resized from its source box:
    PIL computes the filter taps from the box in image coordinates, so the strips equal the
    whole-image resize (checked in tests).
    """
    from PIL import Image

    if img.shape[:2] == (height, width):
        return img
    im = Image.fromarray(np.ascontiguousarray(img))
    if threads <= 1 or height < 64:
        return np.asarray(im.resize((width, height), Image.BICUBIC))
    out = np.empty((height, width, 3), np.uint8)
    scale = img.shape[0] / height
    bounds = np.linspace(0, height, threads + 1).astype(int)

    def strip(k: int) -> None:
        r0, r1 = int(bounds[k]), int(bounds[k + 1])
        box = (0, r0 * scale, img.shape[1], r1 * scale)
        out[r0:r1] = np.asarray(im.resize((width, r1 - r0), Image.BICUBIC, box=box))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(strip, range(threads)))
    return out


def fast_bicubic_aa(img: np.ndarray, height: int, width: int, threads: int = 1) -> np.ndarray:
    """Antialiased bicubic, fast: OpenCV INTER_CUBIC for upscales and slight shrinks; larger
    shrinks run the exact torch kernel (:func:`torch_bicubic_aa`, 5-13x faster than PIL here)
    when torch is installed, else PIL in threaded row strips."""
    if img.shape[:2] == (height, width):
        return img
    shrink = max(img.shape[0] / height, img.shape[1] / width)
    if shrink <= CV_CUBIC_MAX_SHRINK:
        import cv2

        return cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    if _has_torch():
        return torch_bicubic_aa(img, height, width, threads)
    return pil_bicubic(img, height, width, threads)


@lru_cache(maxsize=1)
def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def fast_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV INTER_LINEAR: the same half-pixel bilinear as torch's, 11-bit fixed-point taps."""
    if img.shape[:2] == (height, width):
        return img
    import cv2

    return cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_LINEAR)
