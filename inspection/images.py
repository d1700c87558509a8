"""Checking an uploaded unit image before anything is stored.

The header is read first (format, size, pixel count: a decompression bomb is refused before a
single pixel is decoded), then the whole file is decoded once, at the reduced JPEG scale the model
needs, which also proves the file is not truncated. The decoded image is handed to the predictor,
so a unit's image is never decoded twice on the request path.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats a line camera produces, with the file extensions that may carry each.
ACCEPTED_FORMATS = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"),
    "PNG": ("png",),
    "BMP": ("bmp",),
    "TIFF": ("tif", "tiff"),
    "WEBP": ("webp",),
}
EXTENSION_FORMATS = {
    extension: name for name, extensions in ACCEPTED_FORMATS.items() for extension in extensions
}


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
    width: int
    height: int
    sha256: str
    # Decoded (at a reduced scale for JPEG), ready for the predictor.
    decoded: Image.Image


def image_check(
    data: bytes, *, filename: str, max_bytes: int, max_pixels: int, draft_size: int
) -> CheckedImage:
    """Validate an upload and decode it once; raise `ImageRejected` naming the problem."""
    if not data:
        raise ImageRejected("the image file is empty", code="empty_image")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"the image is {len(data):,} bytes; the limit is {max_bytes:,} bytes", code="image_too_large"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        if isinstance(error, UnidentifiedImageError):
            raise ImageRejected(
                f"{filename or 'the upload'} is not an image Loupe can read "
                f"(accepted: {', '.join(ACCEPTED_FORMATS)})",
                code="not_an_image",
            ) from error
        raise ImageRejected(
            f"the image has too many pixels to decode safely: {error}", code="too_many_pixels"
        ) from error
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            f"{image.format} images are not accepted (accepted: {', '.join(ACCEPTED_FORMATS)})",
            code="unsupported_format",
        )
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension and EXTENSION_FORMATS.get(extension) != image.format:
        claimed = EXTENSION_FORMATS.get(extension)
        raise ImageRejected(
            f"{filename} holds {image.format} data, not the {claimed or extension.upper()} its extension "
            "names",
            code="extension_mismatch",
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected(f"the image has no pixels ({width}x{height})", code="not_an_image")
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} "
            "(a decompression bomb, or a camera set to the wrong resolution)",
            code="too_many_pixels",
        )
    if image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(
            f"the {image.format} image cannot be decoded: {error} (a truncated or corrupt file?)",
            code="corrupt_image",
        ) from error
    return CheckedImage(
        data=data,
        format=image.format,
        extension=ACCEPTED_FORMATS[image.format][0],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        decoded=image,
    )
