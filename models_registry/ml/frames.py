"""One decode of a camera frame, shared by the line API, storage, the model and the pages: EXIF
orientation, bit depth and colour mode handled once (docs/camera-frames.md)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

FrameSource = str | Path | bytes | Image.Image | BinaryIO

ORIENTATION_TAG = 0x0112
# EXIF orientations that turn the picture a quarter: width and height swap.
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
# Modes the browser shows exactly as `to_rgb8` converts them (8 bits a sample, opaque).
BROWSER_SAFE_MODES = ("1", "L", "P", "RGB")
BROWSER_SAFE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


@dataclass(frozen=True)
class FrameHeader:
    """What the file says of itself, read without decoding a pixel."""

    format: str
    mode: str
    stored_width: int
    stored_height: int
    orientation: int
    transparent: bool = False

    @property
    def width(self) -> int:
        """The width a person sees (after the EXIF orientation)."""
        return self.stored_height if self.orientation in TRANSPOSING_ORIENTATIONS else self.stored_width

    @property
    def height(self) -> int:
        return self.stored_width if self.orientation in TRANSPOSING_ORIENTATIONS else self.stored_height

    @property
    def browser_shows_as_decoded(self) -> bool:
        """Whether a browser given the file itself paints what `frame_decode` gives: a TIFF, a
        16-bit or CMYK image, or one with an EXIF orientation needs a rendition instead."""
        return (
            self.format in BROWSER_SAFE_FORMATS
            and self.mode in BROWSER_SAFE_MODES
            and self.orientation == 1
            and not self.transparent
        )


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame: `pixels` uint8 H x W x 3 RGB, oriented; `width` x `height` the original
    oriented size (`pixels` is smaller when the decode was reduced)."""

    pixels: np.ndarray
    width: int
    height: int
    header: FrameHeader

    @property
    def decoded_width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def decoded_height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def reduction(self) -> tuple[float, float]:
        """Original pixels per decoded pixel, in x and y (1.0 when decoded at full size)."""
        return self.width / self.decoded_width, self.height / self.decoded_height


def open_image(source: FrameSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def header_of(image: Image.Image) -> FrameHeader:
    """The header of an opened (not yet loaded) image."""
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow finds an eXIf chunk after the pixels only by decoding them all: the header is
        # what comes before them.
        orientation = 1
    else:
        orientation = image.getexif().get(ORIENTATION_TAG, 1)
    if orientation not in range(1, 9):
        orientation = 1  # a malformed tag: the browser ignores it too
    return FrameHeader(
        format=image.format or "",
        mode=image.mode,
        stored_width=image.size[0],
        stored_height=image.size[1],
        orientation=int(orientation),
        transparent=image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info,
    )


def frame_header(source: FrameSource) -> FrameHeader:
    with open_image(source) as image:
        return header_of(image)


class DecodeTooLarge(ValueError):
    """The frame would take more memory decoded than the caller allows; nothing was decoded."""


def decoded_bytes(image: Image.Image) -> int:
    """The memory an opened image takes once loaded, from its size and mode: its bands times
    the bytes of a sample (16-bit samples 2, 32-bit integer and float ones 4, others 1)."""
    mode = image.mode
    if mode.startswith("I;16"):
        per_pixel = 2
    elif mode in ("I", "F"):
        per_pixel = 4
    else:
        per_pixel = Image.getmodebands(mode)
    return image.size[0] * image.size[1] * per_pixel


def frame_decode(
    source: FrameSource,
    *,
    at_least: tuple[int, int] | None = None,
    image: Image.Image | None = None,
    max_decoded_bytes: int | None = None,
) -> Frame:
    """Decode a frame. With `at_least` (oriented width, height), a JPEG is decoded at the
    smallest DCT scale (1, 1/2, 1/4, 1/8) that still gives at least that many pixels a side,
    which is most of the cost saved on a large frame. `image` is the already opened `source`
    (the line API opens it once to check its header). With `max_decoded_bytes`, a frame whose
    decode (at that reduced scale) would take more raises `DecodeTooLarge` before any pixel is
    decoded; converting it to RGB takes more at its peak (3.3 times for RGBA: bench/RESULTS.md)."""
    image = image if image is not None else open_image(source)
    header = header_of(image)
    if at_least is not None and header.format == "JPEG":
        wanted_width, wanted_height = at_least
        if header.orientation in TRANSPOSING_ORIENTATIONS:
            wanted_width, wanted_height = wanted_height, wanted_width
        image.draft("RGB", (max(1, int(wanted_width)), max(1, int(wanted_height))))
    if max_decoded_bytes is not None and decoded_bytes(image) > max_decoded_bytes:
        width, height = image.size
        raise DecodeTooLarge(
            f"decoding it ({width}x{height} {image.mode}) would take {decoded_bytes(image):,} bytes; "
            f"the limit is {max_decoded_bytes:,} bytes"
        )
    image.load()
    if header.orientation != 1:
        image = ImageOps.exif_transpose(image)
    pixels = to_rgb8(image)
    return Frame(pixels=pixels, width=header.width, height=header.height, header=header)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """RGB, 8 bits a sample, from any mode Pillow decodes. 16-bit and 32-bit integer samples are
    scaled by their bit depth (Pillow's own `convert` would clip them to white); float samples
    are read as 0-1 when they fit, else as 0-255."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(image, dtype=np.uint16)
        return _gray_to_rgb((gray >> 8).astype(np.uint8))
    if mode == "I":
        gray = np.asarray(image, dtype=np.int64)
        # 16-bit samples held in 32-bit ints (some PNG and TIFF readers), or true 32-bit ones.
        shift = 8 if gray.max(initial=0) <= 0xFFFF else 24
        return _gray_to_rgb((np.clip(gray, 0, None) >> shift).clip(0, 255).astype(np.uint8))
    if mode == "F":
        gray = np.nan_to_num(np.asarray(image, dtype=np.float32))
        peak = float(gray.max(initial=0.0))
        scaled = gray * 255.0 if peak <= 1.0 else gray
        return _gray_to_rgb(np.clip(scaled + 0.5, 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, as a browser shows them on the page's white stage (pasted
        # through their own alpha: the same pixels as compositing over an opaque white, in fewer
        # copies of the frame).
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        picture = Image.new("RGB", rgba.size, (255, 255, 255))
        picture.paste(rgba, mask=rgba)
        return np.asarray(picture, dtype=np.uint8)
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def rendition_png(frame: Frame, *, compress_level: int = 1) -> bytes:
    """The frame as an 8-bit PNG at its decoded size: what a page shows when the browser would
    paint the stored file differently (see `FrameHeader.browser_shows_as_decoded`)."""
    buffer = io.BytesIO()
    Image.fromarray(frame.pixels, mode="RGB").save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()
