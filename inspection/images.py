"""Checking an uploaded unit image before anything is stored.

The header is read first (format, size, pixel count, and the memory its decode would take: a
decompression bomb, or a frame larger than the station's camera sends, is refused before a single
pixel is decoded), then the whole file is decoded once by `models_registry.ml.frames`,
at the reduced JPEG scale the model needs, which also proves the file is not truncated. An
image is accepted by what it holds, whatever its name says: it is stored under the extension of
its real format, and the name the line sent is kept on the unit. The decoded frame is handed to
the predictor, so a unit's image is never decoded twice on the request path.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile
from PIL import Image, UnidentifiedImageError

from models_registry.ml.frames import (
    DecodeTooLarge,
    Frame,
    FrameHeader,
    frame_decode,
    frame_header,
    header_of,
    rendition_png,
)

# Formats a line camera produces, with the file extension each is stored under (and others it
# may carry).
ACCEPTED_FORMATS = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"),
    "PNG": ("png",),
    "BMP": ("bmp",),
    "TIFF": ("tif", "tiff"),
    "WEBP": ("webp",),
}
# Without a model to size the decode for, a JPEG is still decoded whole (at 1/8 scale at most):
# that proves it complete.
CHECK_DECODE_SIZE = (256, 256)
RENDITIONS = "renditions"

DecodeSize = Callable[[int, int], tuple[int, int]]


class ImageRejected(ValueError):
    """The upload is not an image Loupe accepts; the message names the problem."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    extension: str
    width: int  # as a person sees it: after the EXIF orientation
    height: int
    sha256: str
    header: FrameHeader
    # Decoded (at a reduced scale for JPEG), ready for the predictor.
    frame: Frame


def image_check(
    data: bytes,
    *,
    filename: str,
    max_bytes: int,
    max_pixels: int,
    max_decode_bytes: int,
    decode_size: DecodeSize | None = None,
) -> CheckedImage:
    """Validate an upload and decode it once; raise `ImageRejected` naming the problem.

    `max_pixels` is checked from the header; `max_decode_bytes` bounds the decoded picture (at
    the reduced JPEG scale), from its size, mode and bit depth, before decoding.
    `decode_size(width, height)` is the least decoded size the model needs for a frame of that
    original size (its geometry's `decode_size`); without it the check decodes small.
    """
    if not data:
        raise ImageRejected("the image file is empty", code="empty_image")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"the image is {len(data):,} bytes; the limit is {max_bytes:,} bytes", code="image_too_large"
        )
    named = filename or "the upload"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        if isinstance(error, UnidentifiedImageError):
            raise ImageRejected(
                f"{named} is not an image Loupe can read (accepted: {', '.join(ACCEPTED_FORMATS)})",
                code="not_an_image",
            ) from error
        raise ImageRejected(
            f"the image has too many pixels to decode safely: {error}", code="too_many_pixels"
        ) from error
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            f"{named} holds {image.format} data; accepted: {', '.join(ACCEPTED_FORMATS)}",
            code="unsupported_format",
        )
    header = header_of(image)
    width, height = header.width, header.height
    if width < 1 or height < 1:
        raise ImageRejected(f"the image has no pixels ({width}x{height})", code="not_an_image")
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} "
            "(a decompression bomb, or a camera set to the wrong resolution)",
            code="too_many_pixels",
        )
    wanted = decode_size(width, height) if decode_size is not None else CHECK_DECODE_SIZE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            frame = frame_decode(data, at_least=wanted, image=image, max_decoded_bytes=max_decode_bytes)
    except DecodeTooLarge as error:
        raise ImageRejected(
            f"the {header.format} image is too large to decode safely: {error}", code="too_many_bytes_decoded"
        ) from error
    except (OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(
            f"the {header.format} image cannot be decoded: {error} (a truncated or corrupt file?)",
            code="corrupt_image",
        ) from error
    return CheckedImage(
        data=data,
        format=header.format,
        extension=ACCEPTED_FORMATS[header.format][0],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        header=header,
        frame=frame,
    )


def image_display(*, stored: FieldFile, sha256: str) -> tuple[BinaryIO, str]:
    """The picture a page shows for a stored image, and its content type: the file itself when
    the browser paints it as `frame_decode` decodes it, else a PNG rendition of that decode (a
    TIFF, a 16-bit or CMYK image, one with an EXIF orientation), made once and kept beside the
    originals under its content hash. The stored file is never changed."""
    with stored.open("rb") as file:
        header = frame_header(file)
    if header.browser_shows_as_decoded:
        return stored.open("rb"), f"image/{header.format.lower()}"
    name = f"{RENDITIONS}/{sha256[:2]}/{sha256}.png"
    if not default_storage.exists(name):
        with stored.open("rb") as file:
            png = rendition_png(frame_decode(file.read()))
        if not default_storage.exists(name):  # another request may have made it meanwhile
            default_storage.save(name, ContentFile(png))
    return default_storage.open(name, "rb"), "image/png"


THUMBNAIL_WIDTH = 384


def image_thumbnail(*, stored: FieldFile, sha256: str, width: int = THUMBNAIL_WIDTH) -> BinaryIO:
    """A JPEG `width` pixels wide of the picture a page shows (EXIF orientation applied, so a
    unit's regions, in its oriented pixels, scale onto it), made once and kept under its content
    hash like the renditions. A JPEG is decoded at the reduced DCT scale that still covers it."""
    name = f"{RENDITIONS}/{sha256[:2]}/{sha256}-w{width}.jpg"
    if not default_storage.exists(name):
        with stored.open("rb") as file:
            data = file.read()
        header = frame_header(io.BytesIO(data))
        height = max(1, round(header.height * width / header.width))
        frame = frame_decode(data, at_least=(width, height))
        picture = Image.fromarray(frame.pixels, mode="RGB").resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=82, optimize=True)
        if not default_storage.exists(name):  # another request may have made it meanwhile
            default_storage.save(name, ContentFile(buffer.getvalue()))
    return default_storage.open(name, "rb")
