"""Image decoding and header-only probing, converted to RGB the way vLLM's image loader does.

vLLM (``ImageMediaIO.load_bytes`` / ``load_file``) opens the bytes with PIL and converts the
mode, and nothing else:

* **No EXIF orientation is applied** (vLLM never calls ``ImageOps.exif_transpose``; note that
  transformers' own ``load_image`` helper does, so a rotated phone JPEG gives different pixels
  there). mmprep follows vLLM: pixels and sizes are the stored ones.
* ``RGBA`` is composited onto a white background (``Image.paste`` with the alpha as mask, vLLM's
  ``rgba_to_rgb``); every other mode (L, LA, P, PA, CMYK, YCbCr, I;16, I, F, 1, ...) goes through
  PIL's ``convert("RGB")`` (so LA/PA/P-with-transparency drop alpha without compositing, 16-bit
  values are clipped to 255 by PIL, CMYK uses PIL's naive inversion).

Arrays are taken as decoded pixels: ``(H, W, 3)`` uint8 is RGB as is, ``(H, W)`` uint8 is gray
(PIL ``L``), ``(H, W, 4)`` uint8 is RGBA (composited as above). A pixel limit (decompression bomb
guard) is checked from the header before any decode.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np

from ..errors import MediaError, item_prefix
from ..types import ImageMetadata
from . import check_path

# PIL raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS; vLLM inherits that limit.
DEFAULT_MAX_PIXELS = 2 * 89_478_485


def _name(source: Any) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return None


def _open(source: Any, index: int | None):
    """Lazily open a path or bytes with PIL (header only); MediaError naming the item on failure."""
    from PIL import Image, UnidentifiedImageError

    where = item_prefix(index, _name(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError(f"{where}empty image bytes")
        fp: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        check_path(source, "image", where)
        if os.path.getsize(source) == 0:
            raise MediaError(f"{where}empty image file")
        fp = os.fspath(source)
    else:
        raise MediaError(f"{where}unsupported image source type {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as e:
        raise MediaError(f"{where}image too large: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"{where}not a readable image ({type(e).__name__}: {e})") from None


def check_limit(height: int, width: int, max_pixels: int | None, where: str) -> None:
    if height <= 0 or width <= 0:
        raise MediaError(f"{where}image has no pixels ({height}x{width})")
    if max_pixels is not None and height * width > max_pixels:
        raise MediaError(
            f"{where}image {height}x{width} = {height * width} pixels exceeds the limit of {max_pixels}"
        )


def probe_image(source: Any, *, index: int | None = None) -> ImageMetadata:
    """``(height, width)`` in pixels from the header only (no pixel decode).

    Arrays and PIL images report their size directly.
    """
    from PIL import Image

    if isinstance(source, np.ndarray):
        return ImageMetadata(*_array_size(source, item_prefix(index)))
    if isinstance(source, Image.Image):
        return ImageMetadata(source.height, source.width)
    im = _open(source, index)
    try:
        return ImageMetadata(im.height, im.width)
    finally:
        im.close()


def _array_size(arr: np.ndarray, where: str) -> tuple[int, int]:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise MediaError(f"{where}image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


def to_rgb(im, where: str = "") -> np.ndarray:
    """PIL image -> ``(H, W, 3)`` uint8 RGB as vLLM converts it (see the module docstring)."""
    from PIL import Image

    try:
        if im.mode == "RGBA":
            rgb = Image.new("RGB", im.size, (255, 255, 255))
            rgb.paste(im, mask=im.split()[3])
            im = rgb
        elif im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise MediaError(f"{where}cannot decode image ({type(e).__name__}: {e})") from None


def _array_to_rgb(arr: np.ndarray, where: str, max_pixels: int | None) -> np.ndarray:
    h, w = _array_size(arr, where)
    check_limit(h, w, max_pixels, where)
    if arr.dtype != np.uint8:
        raise MediaError(f"{where}image array must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    mode = "L" if arr.ndim == 2 else "RGBA"
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr), mode), where)


def read_image(
    source: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, index: int | None = None
) -> np.ndarray:
    """Decode one image to an ``(H, W, 3)`` uint8 RGB array.

    ``source``: a path, encoded bytes, a PIL image or a uint8 array (HxW, HxWx3, HxWx4).
    ``max_pixels``: largest accepted ``H*W`` (checked from the header before decoding; None: no
    limit). ``index``: the item's position in a batch, used in error messages.
    """
    from PIL import Image

    where = item_prefix(index, _name(source))
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, where, max_pixels)
    if isinstance(source, Image.Image):
        check_limit(source.height, source.width, max_pixels, where)
        return to_rgb(source, where)
    im = _open(source, index)
    try:
        check_limit(im.height, im.width, max_pixels, where)
        try:
            im.load()
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise MediaError(f"{where}corrupt or truncated image ({type(e).__name__}: {e})") from None
        return to_rgb(im, where)
    finally:
        im.close()
