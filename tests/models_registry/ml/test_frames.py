"""One decode for every consumer: bit depth, EXIF orientation, colour modes, reduced JPEG decodes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from models_registry.ml.frames import ORIENTATION_TAG, frame_decode, frame_header, rendition_png


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 96, height: int = 64) -> np.ndarray:
    """An 8-bit grey picture with structure (so a clipped or white decode shows)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return ((xs * 2 + ys * 3) % 256).astype(np.uint8)


def png_48_bit(pixels16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = pixels16.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + pixels16[row].astype(">u2").tobytes() for row in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped_to_white(fmt):
    # given the same picture in 8 and in 16 bits a sample (Pillow's own convert clips 16 bits to white)
    eight = gradient()
    sixteen = Image.fromarray(eight.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    # when both are decoded
    frame = frame_decode(encoded(sixteen, fmt))
    # then the model and the page see the same 8-bit picture
    assert frame.header.mode == "I;16"
    np.testing.assert_array_equal(frame.pixels[..., 0], eight)
    assert frame.pixels.shape == (64, 96, 3)
    assert not frame.header.browser_shows_as_decoded


def test_16_bit_rgb_png_decodes_like_its_8_bit_picture():
    rgb = np.stack([gradient(), gradient()[::-1], 255 - gradient()], axis=2)
    frame = frame_decode(png_48_bit(rgb.astype(np.uint16) * 257))
    assert np.abs(frame.pixels.astype(int) - rgb).max() <= 1


def test_float_tiff_in_0_to_1_is_read_as_brightness():
    values = gradient().astype(np.float32) / 255.0
    frame = frame_decode(encoded(Image.fromarray(values, mode="F"), "TIFF"))
    assert np.abs(frame.pixels[..., 0].astype(int) - gradient()).max() <= 1


def test_exif_orientation_is_applied_once_and_the_size_is_as_seen():
    # given a 96x64 picture with a bright corner, stored turned a quarter with orientation 6
    seen = np.zeros((64, 96, 3), np.uint8)
    seen[:16, :24] = 255
    stored = Image.fromarray(seen).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    data = encoded(stored, "JPEG", quality=95, exif=exif)
    # when decoded
    header = frame_header(data)
    frame = frame_decode(data)
    # then the frame is the picture a person sees, with its size
    assert (header.stored_width, header.stored_height) == (64, 96)
    assert (header.width, header.height) == (96, 64) == (frame.width, frame.height)
    assert frame.pixels.shape == (64, 96, 3)
    assert frame.pixels[:12, :20].mean() > 200 and frame.pixels[40:, 60:].mean() < 50
    assert not header.browser_shows_as_decoded


def test_a_reduced_jpeg_decode_keeps_the_original_size():
    picture = Image.fromarray(
        np.repeat(np.kron(gradient(48, 27), np.ones((40, 40), np.uint8))[..., None], 3, 2)
    )
    data = encoded(picture, "JPEG", quality=90)
    assert picture.size == (1920, 1080)
    frame = frame_decode(data, at_least=(256, 144))
    assert (frame.width, frame.height) == (1920, 1080)
    assert (frame.decoded_width, frame.decoded_height) == (480, 270)  # 1/4: the least scale that serves
    assert frame.reduction == (4.0, 4.0)
    whole = frame_decode(data)
    assert (whole.decoded_width, whole.decoded_height) == (1920, 1080)


def test_a_rotated_jpeg_is_reduced_in_its_stored_orientation():
    stored = Image.new("RGB", (1080, 1920), (90, 90, 90))
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 8
    frame = frame_decode(encoded(stored, "JPEG", exif=exif), at_least=(512, 288))
    assert (frame.width, frame.height) == (1920, 1080)
    assert (frame.decoded_width, frame.decoded_height) == (960, 540)


def test_transparency_is_shown_over_white_and_needs_a_rendition():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    frame = frame_decode(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(frame.pixels[0, 0]) == (200, 0, 0) and tuple(frame.pixels[7, 7]) == (255, 255, 255)
    assert not frame.header.browser_shows_as_decoded


def test_cmyk_jpeg_decodes_to_rgb():
    frame = frame_decode(encoded(Image.new("CMYK", (32, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    red, green, blue = frame.pixels[8, 16]
    assert red > 200 and green < 60 and blue < 60
    assert not frame.header.browser_shows_as_decoded


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_plain_8_bit_images_are_served_as_they_are(fmt):
    data = encoded(Image.fromarray(np.stack([gradient()] * 3, axis=2)), fmt)
    assert frame_header(data).browser_shows_as_decoded


def test_a_rendition_is_the_decoded_picture():
    sixteen = Image.fromarray(gradient().astype(np.uint16) * 257)
    frame = frame_decode(encoded(sixteen, "TIFF"))
    with Image.open(io.BytesIO(rendition_png(frame))) as rendition:
        np.testing.assert_array_equal(np.asarray(rendition.convert("RGB")), frame.pixels)
