"""mmprep.media: RGB decoding as vLLM's image loader does it, header probes, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mmprep import MediaError, MmprepError, probe_image, read_image


def _scene(h: int = 37, w: int = 53) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x ^ y) & 255], -1).astype(np.uint8)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _vllm_rgb(im: Image.Image) -> np.ndarray:
    """vLLM's ImageMediaIO conversion, re-expressed: RGBA over white, else convert('RGB')."""
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.split()[3])
        return np.asarray(bg)
    return np.asarray(im.convert("RGB"))


def _modes() -> dict[str, Image.Image]:
    rgb = Image.fromarray(_scene())
    alpha = Image.fromarray((_scene()[:, :, 0] // 2 + 60).astype(np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    la = rgb.convert("L")
    la.putalpha(alpha)
    pt = rgb.convert("P")
    pt.info["transparency"] = 3
    i16 = Image.fromarray(_scene()[:, :, 0].astype(np.uint16) * 300)  # mode I;16
    return {"L": rgb.convert("L"), "1": rgb.convert("1"), "P": rgb.convert("P"), "P+tRNS": pt,
            "RGBA": rgba, "LA": la, "CMYK": rgb.convert("CMYK"), "I;16": i16, "I": rgb.convert("I"),
            "F": rgb.convert("F"), "YCbCr": rgb.convert("YCbCr")}


@pytest.mark.parametrize("mode", list(_modes()))
def test_pil_modes_convert_like_vllm(mode):
    im = _modes()[mode]
    got = read_image(im)
    assert got.dtype == np.uint8 and got.shape == (im.height, im.width, 3)
    np.testing.assert_array_equal(got, _vllm_rgb(im))


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "P"), ("PNG", "I;16"),
                                      ("PNG", "L"), ("TIFF", "CMYK"), ("JPEG", "CMYK"), ("JPEG", "L"),
                                      ("JPEG", "RGB"), ("WEBP", "RGBA"), ("GIF", "P"), ("BMP", "RGB")])
def test_encoded_modes_decode_like_vllm(fmt, mode, tmp_path):
    im = Image.fromarray(_scene()) if mode == "RGB" else _modes()[mode]
    data = _encode(im, fmt)
    want = _vllm_rgb(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(read_image(data), want)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_image(path), want)
    np.testing.assert_array_equal(read_image(str(path)), want)


def test_rgba_composites_on_white_not_black():
    rgba = np.zeros((4, 5, 4), np.uint8)  # fully transparent black
    assert (read_image(rgba) == 255).all()


def test_arrays_gray_rgb_rgba():
    rgb = _scene()
    assert read_image(rgb) is rgb  # no copy for the common case
    gray = rgb[:, :, 0]
    np.testing.assert_array_equal(read_image(gray), np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(read_image(gray[:, :, None]), read_image(gray))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(read_image(rgba), rgb)


def test_exif_orientation_is_not_applied():
    im = Image.fromarray(_scene(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": vLLM ignores it, so do we
    data = _encode(im, "JPEG", exif=exif.tobytes(), quality=95)
    assert read_image(data).shape == (20, 40, 3)
    assert probe_image(data) == (20, 40)


def test_probe_reads_header_only():
    data = _encode(Image.fromarray(_scene(300, 400)), "JPEG")
    truncated = data[: len(data) // 3]  # pixels are gone, the header is intact
    assert probe_image(truncated) == (300, 400)
    with pytest.raises(MediaError, match="item 2"):
        read_image(truncated, index=2)
    assert probe_image(_scene(7, 9)) == (7, 9)
    assert probe_image(Image.new("RGB", (9, 7))) == (7, 9)


def test_pixel_limit_is_checked_before_decoding():
    data = _encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(MediaError, match=r"item 4: image 200x300 = 60000 pixels exceeds the limit of 59999"):
        read_image(data, max_pixels=59_999, index=4)
    assert read_image(data, max_pixels=60_000).shape == (200, 300, 3)
    assert read_image(data, max_pixels=None).shape == (200, 300, 3)
    with pytest.raises(MediaError, match="exceeds the limit"):
        read_image(np.zeros((10, 10, 3), np.uint8), max_pixels=99)


@pytest.mark.parametrize("bad,why", [(b"", "empty"), (b"not an image at all", "not a readable image"),
                                     (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "not a readable image"),
                                     (np.zeros((0, 5, 3), np.uint8), "no pixels"),
                                     (np.zeros((5, 5, 3), np.float32), "uint8"),
                                     (np.zeros((5, 5, 2), np.uint8), "shape"),
                                     (12345, "unsupported image source")])
def test_bad_input_raises_media_error_naming_item(bad, why):
    with pytest.raises(MediaError, match=f"item 7.*{why}"):
        read_image(bad, index=7)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(MediaError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.jpg.*empty"):
        probe_image(empty)
    corrupt = tmp_path / "bad.jpg"
    data = bytearray(_encode(Image.fromarray(_scene(64, 64)), "JPEG"))
    corrupt.write_bytes(bytes(data[: len(data) - 200]))
    with pytest.raises(MmprepError, match="bad.jpg"):
        read_image(corrupt, index=0)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), fmt=st.sampled_from(["PNG", "JPEG", "BMP"]))
def test_probe_equals_decoded_size(h, w, fmt):
    data = _encode(Image.fromarray(_scene(h, w)), fmt)
    assert probe_image(data) == (h, w) == read_image(data).shape[:2]
