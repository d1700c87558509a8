"""What every reader shares: the records it returns (`ParseResult`, `ImportRecord`, `BadFile`), image
validation and mask helpers; readers never touch the database (docs/data-formats.md)."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from models_registry.ml.frames import header_of

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})

# Pillow format name -> extension the stored file gets (the bytes are never re-encoded).
STORED_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "BMP": "bmp",
    "TIFF": "tif",
    "WEBP": "webp",
    "GIF": "gif",
}

# How far (in pixels) a box or polygon may stick out of the image and still be clipped to it.
BOUNDS_TOLERANCE_PIXELS = 2.0

_NO_DEFECT_NAMES = frozenset({"good", "ok", "pass", "no_defect", "nodefect", "normal", "defect_free"})


class BadInput(Exception):
    """A file that cannot be imported; the message says why. Importers turn it into a `BadFile`."""


class DatasetFormatError(Exception):
    """The data set as a whole cannot be read (layout not recognised, unreadable index file)."""


@dataclass(frozen=True)
class ImageInfo:
    """A decoded-and-verified image file: where it is, its content hash and its pixel size."""

    path: Path
    sha256: str
    width: int
    height: int
    format: str
    extension: str


@dataclass(frozen=True)
class AnnotationRecord:
    """One label, geometry in image pixels; `mask_png` is a binary 0/255 "L" PNG for masks."""

    kind: str
    label: str = ""
    geometry: dict = field(default_factory=dict)
    mask_png: bytes | None = None


@dataclass
class ImportRecord:
    """One image to import with its labels. No annotations at all means an unlabeled image."""

    source_name: str
    image: ImageInfo
    annotations: list[AnnotationRecord] = field(default_factory=list)

    @property
    def image_path(self) -> Path:
        return self.image.path


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ParseResult:
    """What an importer found: the records to import, the bad files, and the classes.

    `declared` keeps the order a source gives its classes (COCO categories, a YOLO names file);
    `classes` is that order, then the classes only met in labels, sorted (folder and file names
    have no order of their own)."""

    records: list[ImportRecord] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def declare(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.declared:
                self.declared.append(name)

    def add(self, record: ImportRecord) -> None:
        self.records.append(record)
        self.found.update(
            annotation.label
            for annotation in record.annotations
            if annotation.label and annotation.kind != "no_defect"
        )

    @property
    def classes(self) -> list[str]:
        return [*self.declared, *sorted(self.found - set(self.declared))]

    def bad(self, path: Path | str, reason: str) -> None:
        self.bad_files.append(BadFile(str(path), reason))


def is_no_defect_name(name: str) -> bool:
    """Whether a folder or choice name means "no defect" (`good`, `OK`, `MT_Free`, `no defect`...)."""
    normalized = name.strip().lower().replace("-", "_").replace(" ", "_")
    return normalized in _NO_DEFECT_NAMES or "free" in normalized


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def image_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (by extension), in a stable order."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(path for path in candidates if is_image_file(path))


def inspect_image(path: Path) -> ImageInfo:
    """Hash the file and decode it fully with Pillow; raise `BadInput` if it is not a usable image.

    Catches unreadable files, non-images (whatever the extension), truncated data and
    decompression bombs (anything over `Image.MAX_IMAGE_PIXELS`).
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"cannot read file ({error.strerror or error})") from error
    if not data:
        raise BadInput("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                header = header_of(image)
                image.load()
                # as a person (and the model: `frames.frame_decode`) sees it, EXIF orientation applied
                width, height = header.width, header.height
                image_format = image.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadInput(f"image too large (decompression bomb guard): {error}") from error
    except UnidentifiedImageError as error:
        raise BadInput("not an image Pillow can decode") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadInput(f"image cannot be decoded ({error})") from error
    extension = STORED_EXTENSIONS.get(image_format)
    if extension is None:
        raise BadInput(f"unsupported image format {image_format or 'unknown'}")
    if width <= 0 or height <= 0:
        raise BadInput("image has no pixels")
    return ImageInfo(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=image_format,
        extension=extension,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finite_numbers(values: Iterable[object], what: str) -> list[float]:
    """The values as floats; `BadInput` naming `what` if one is not a finite number."""
    numbers = []
    for value in values:
        if isinstance(value, bool):
            raise BadInput(f"{what}: {value!r} is not a number")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise BadInput(f"{what}: {value!r} is not a number") from error
        if not math.isfinite(number):
            raise BadInput(f"{what}: {value!r} is not a finite number")
        numbers.append(number)
    return numbers


def _clip(value: float, limit: int, what: str) -> float:
    if value < -BOUNDS_TOLERANCE_PIXELS or value > limit + BOUNDS_TOLERANCE_PIXELS:
        raise BadInput(what)
    return min(max(value, 0.0), float(limit))


def box_annotation(
    label: str, corners: Sequence[object], image: ImageInfo, *, what: str = "box"
) -> AnnotationRecord:
    """A box from `(xmin, ymin, xmax, ymax)` in pixels, checked against the image and clipped.

    Coordinates may exceed the image by `BOUNDS_TOLERANCE_PIXELS` (clipped); further out, or a
    box without area, is a `BadInput`.
    """
    xmin, ymin, xmax, ymax = finite_numbers(corners, what)
    if xmax <= xmin or ymax <= ymin:
        raise BadInput(
            f"{what} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has no area (needs xmax > xmin, ymax > ymin)"
        )
    outside = (
        f"{what} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {image.width}x{image.height} image"
    )
    xmin, xmax = _clip(xmin, image.width, outside), _clip(xmax, image.width, outside)
    ymin, ymax = _clip(ymin, image.height, outside), _clip(ymax, image.height, outside)
    if xmax <= xmin or ymax <= ymin:
        raise BadInput(outside)
    return AnnotationRecord(
        kind="box",
        label=label,
        geometry={"x": xmin, "y": ymin, "width": xmax - xmin, "height": ymax - ymin},
    )


def polygon_points(
    flat_or_pairs: Sequence[object], image: ImageInfo, *, what: str = "polygon"
) -> list[list[float]]:
    """Polygon vertices in pixels (from `[x, y, x, y...]` or `[[x, y], ...]`), checked and clipped."""
    if flat_or_pairs and all(isinstance(point, (list, tuple)) for point in flat_or_pairs):
        if any(len(point) != 2 for point in flat_or_pairs):  # type: ignore[arg-type]
            raise BadInput(f"{what}: every point needs exactly two coordinates")
        flat = [coordinate for point in flat_or_pairs for coordinate in point]  # type: ignore[union-attr]
    else:
        flat = list(flat_or_pairs)
    numbers = finite_numbers(flat, what)
    if len(numbers) % 2 or len(numbers) < 6:
        raise BadInput(f"{what}: needs at least three (x, y) points, got {len(numbers)} numbers")
    outside = f"{what} has a point outside the {image.width}x{image.height} image"
    return [
        [_clip(x, image.width, outside), _clip(y, image.height, outside)]
        for x, y in zip(numbers[0::2], numbers[1::2], strict=True)
    ]


def polygon_annotation(label: str, points: list[list[float]]) -> AnnotationRecord:
    return AnnotationRecord(kind="polygon", label=label, geometry={"points": points})


def polygon_bounding_box(label: str, points: list[list[float]], image: ImageInfo) -> AnnotationRecord:
    xs = [point[0] for point in points]
    ys = [point[1] for point in points]
    return box_annotation(label, (min(xs), min(ys), max(xs), max(ys)), image, what="polygon's bounding box")


def encode_mask_png(mask: np.ndarray) -> bytes:
    """A boolean (height, width) array as a binary "L" PNG: 0 background, 255 defect."""
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()


def binarize_mask(values: np.ndarray) -> np.ndarray:
    """Foreground of a grey mask: 1 in a 0/1 label mask, >= 128 in a 0-255 one (soft edges)."""
    if values.size and values.max() <= 1:
        return values > 0
    return values >= 128


def read_mask_file(path: Path, image: ImageInfo) -> np.ndarray:
    """A mask image as a boolean array; `BadInput` if it does not decode or differs in size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as mask_image:
                mask_image.load()
                if mask_image.size != (image.width, image.height):
                    raise BadInput(
                        f"mask is {mask_image.size[0]}x{mask_image.size[1]} but the image "
                        f"{image.path.name} is {image.width}x{image.height}"
                    )
                if mask_image.mode == "P":
                    values = np.array(mask_image)  # palette indices: 0 is background
                    return values > 0
                values = np.array(mask_image.convert("L"))
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadInput(f"mask too large (decompression bomb guard): {error}") from error
    except UnidentifiedImageError as error:
        raise BadInput("mask is not an image Pillow can decode") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadInput(f"mask cannot be decoded ({error})") from error
    return binarize_mask(values)


def mask_annotation(label: str, mask: np.ndarray) -> AnnotationRecord:
    """A mask annotation (the mask must have a foreground pixel); geometry keeps its box and area."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    geometry = {
        "bbox": {
            "x": int(columns[0]),
            "y": int(rows[0]),
            "width": int(columns[-1] - columns[0] + 1),
            "height": int(rows[-1] - rows[0] + 1),
        },
        "area": int(mask.sum()),
    }
    return AnnotationRecord(kind="mask", label=label, geometry=geometry, mask_png=encode_mask_png(mask))


def relative_name(path: Path, root: Path) -> str:
    """`path` relative to the data set's root, with forward slashes: the item's source name."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
