"""What every writer shares: the items it writes (`ExportItem`), what a detection format can say of
an item (`detection_view`), file naming and image copying; writers never touch the database."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import unquote

import numpy as np

BOX, POLYGON, MASK, IMAGE_CLASS, NO_DEFECT = "box", "polygon", "mask", "class", "no_defect"
SHAPE_KINDS = frozenset({POLYGON, MASK})
LOCATED_KINDS = frozenset({BOX, POLYGON, MASK})

# A box whose edges are this close (pixels) to a polygon's or mask's bounding box, with the same
# label, is taken as that shape's box: the importers store a box beside most shapes.
PAIRING_TOLERANCE_PIXELS = 1.0
_STEM_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM_LENGTH = 80
_COPY_CHUNK = 1 << 20

Bounds = tuple[float, float, float, float]  # x, y, width, height in pixels


class DatasetExportError(Exception):
    """The export cannot start or failed; the message says why. Nothing is left in the folder."""


@dataclass(frozen=True)
class ExportAnnotation:
    """One stored label as the exporters see it (geometry in image pixels, as in `Annotation`).

    `read_mask` loads a mask's boolean (height, width) array; it is a callable so that formats
    which only need the mask's box never decode the PNG.
    """

    kind: str
    label: str = ""
    geometry: dict = field(default_factory=dict)
    read_mask: Callable[[], np.ndarray] | None = None

    def mask(self) -> np.ndarray:
        if self.read_mask is None:
            raise DatasetExportError(f"{self.kind} annotation {self.label!r} has no mask file")
        return self.read_mask()


@dataclass(frozen=True)
class ExportItem:
    """One image to export with its labels and, for Label Studio, its model prediction.

    `predictions` is None when no prediction is available, else the predicted regions (dicts
    with `x`, `y`, `width`, `height` in pixels, `label`, `score`; an empty tuple means the model
    found nothing).
    """

    sha256: str
    source_name: str
    width: int
    height: int
    extension: str
    split: str
    annotations: tuple[ExportAnnotation, ...]
    open_image: Callable[[], AbstractContextManager[IO[bytes]]]
    predictions: tuple[dict, ...] | None = None


@dataclass
class ExportCounts:
    """What a writer wrote, left out and approximated; the service turns it into the summary."""

    images: int = 0
    no_defect: int = 0
    unlabeled: int = 0
    objects: Counter[str] = field(default_factory=Counter)
    with_predictions: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    approximated: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Instance:
    """A located defect: an annotated box, a polygon or mask, or a shape with its box."""

    label: str
    box: Bounds | None
    shape: ExportAnnotation | None

    @property
    def bounds(self) -> Bounds:
        """The instance's box: the annotated one when there is one, else the shape's."""
        if self.box is not None:
            return self.box
        assert self.shape is not None
        return shape_bounds(self.shape)


@dataclass(frozen=True)
class DetectionView:
    """What a detection format can write for an item: `status` is "objects", "no_defect",
    "unlabeled" (left out) or "unlocated" (left out: a defect class without a location)."""

    status: str
    instances: tuple[Instance, ...] = ()
    unlocated_classes: tuple[str, ...] = ()
    implied_classes: int = 0


def box_bounds(geometry: dict) -> Bounds:
    return (
        float(geometry["x"]),
        float(geometry["y"]),
        float(geometry["width"]),
        float(geometry["height"]),
    )


def mask_bounds(mask: np.ndarray) -> Bounds:
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        raise DatasetExportError("mask without a foreground pixel")
    return (
        float(columns[0]),
        float(rows[0]),
        float(columns[-1] - columns[0] + 1),
        float(rows[-1] - rows[0] + 1),
    )


def shape_bounds(annotation: ExportAnnotation) -> Bounds:
    """The bounding box of a box, polygon or mask annotation, in pixels."""
    if annotation.kind == BOX:
        return box_bounds(annotation.geometry)
    if annotation.kind == POLYGON:
        xs = [float(point[0]) for point in annotation.geometry["points"]]
        ys = [float(point[1]) for point in annotation.geometry["points"]]
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    if annotation.kind == MASK:
        stored = annotation.geometry.get("bbox")
        return box_bounds(stored) if stored else mask_bounds(annotation.mask())
    raise ValueError(f"a {annotation.kind} annotation has no bounds")


def _close(first: Bounds, second: Bounds) -> bool:
    first_edges = (first[0], first[1], first[0] + first[2], first[1] + first[3])
    second_edges = (second[0], second[1], second[0] + second[2], second[1] + second[3])
    return all(abs(a - b) <= PAIRING_TOLERANCE_PIXELS for a, b in zip(first_edges, second_edges, strict=True))


def item_instances(annotations: Sequence[ExportAnnotation]) -> list[Instance]:
    """The located defects of an item: each polygon or mask with the same-label box that is its
    bounding box (the box the importers store beside it), then the boxes left over."""
    boxes = [
        (annotation.label, box_bounds(annotation.geometry))
        for annotation in annotations
        if annotation.kind == BOX
    ]
    used: set[int] = set()
    instances = []
    for annotation in annotations:
        if annotation.kind not in SHAPE_KINDS:
            continue
        bounds = shape_bounds(annotation)
        match = next(
            (
                index
                for index, (label, box) in enumerate(boxes)
                if index not in used and label == annotation.label and _close(box, bounds)
            ),
            None,
        )
        if match is not None:
            used.add(match)
        instances.append(Instance(annotation.label, None if match is None else boxes[match][1], annotation))
    instances += [Instance(label, box, None) for index, (label, box) in enumerate(boxes) if index not in used]
    return instances


def detection_view(item: ExportItem) -> DetectionView:
    """What COCO, YOLO and VOC can say about an item (see docs/data-formats.md)."""
    located = [annotation for annotation in item.annotations if annotation.kind in LOCATED_KINDS]
    located_labels = {annotation.label for annotation in located}
    class_labels = [annotation.label for annotation in item.annotations if annotation.kind == IMAGE_CLASS]
    unlocated = sorted(set(class_labels) - located_labels)
    if unlocated:
        return DetectionView("unlocated", unlocated_classes=tuple(unlocated))
    if located:
        return DetectionView(
            "objects", instances=tuple(item_instances(item.annotations)), implied_classes=len(class_labels)
        )
    if any(annotation.kind == NO_DEFECT for annotation in item.annotations):
        return DetectionView("no_defect")
    return DetectionView("unlabeled")


def count_left_out(counts: ExportCounts, view: DetectionView) -> bool:
    """Count what a detection format cannot write of an item: the item itself (then True: leave
    it out), or its image-level classes, dropped because its located defects imply them."""
    if view.status == "unlabeled":
        counts.left_out["unlabeled (the format reads an image without labels as 'no defect')"] += 1
        return True
    if view.status == "unlocated":
        counts.left_out[
            f"with a defect class that has no box, polygon or mask ({', '.join(view.unlocated_classes)})"
        ] += 1
        return True
    if view.implied_classes:
        counts.approximated["image-level class dropped (implied by its located defects)"] += (
            view.implied_classes
        )
    return False


def shape_as_box_note(instance: Instance) -> str:
    """How a box-only format wrote a polygon or mask: the note the summary counts."""
    assert instance.shape is not None
    if instance.box is not None:
        return f"{instance.shape.kind} dropped (the box stored with it is kept)"
    return f"{instance.shape.kind} written as its bounding box"


class FileNames:
    """Unique, safe file stems for the exported images.

    The stem comes from the item's source name (its last path part, without URL query or
    extension), restricted to letters, digits, `.`, `_` and `-`; a stem already taken (compared
    without case, since the labels are paired with images by stem) gets the image hash appended.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def stem(self, item: ExportItem) -> str:
        name = item.source_name.replace("\\", "/")
        if "?d=" in name:
            name = name.split("?d=", 1)[1]
        name = unquote(name.split("?", 1)[0]).rstrip("/").rsplit("/", 1)[-1]
        base = name.rsplit(".", 1)[0] if "." in name else name
        stem = _STEM_CHARACTERS.sub("_", base).strip("._-")[:_MAX_STEM_LENGTH] or item.sha256[:16]
        for candidate in (stem, f"{stem}-{item.sha256[:8]}", f"{stem}-{item.sha256}"):
            if candidate.lower() not in self._taken:
                self._taken.add(candidate.lower())
                return candidate
        raise DatasetExportError(f"{item.source_name}: the same image appears twice")


def copy_image(item: ExportItem, target: Path) -> None:
    """Copy the stored image's bytes to `target` unchanged, checking them against its hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with item.open_image() as source, target.open("wb") as destination:
            for chunk in iter(lambda: source.read(_COPY_CHUNK), b""):
                digest.update(chunk)
                destination.write(chunk)
    except FileNotFoundError as error:
        raise DatasetExportError(f"{item.source_name}: the stored image file is missing ({error})") from error
    if digest.hexdigest() != item.sha256:
        raise DatasetExportError(f"{item.source_name}: the stored image no longer matches its SHA-256")


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    xs = np.array([float(point[0]) for point in points])
    ys = np.array([float(point[1]) for point in points])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


class ClassIds:
    """Class ids in the data set's class order; a label missing from its classes is appended."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.names: list[str] = []
        for name in classes:
            self.id(name)

    def id(self, label: str) -> int:
        if label not in self.names:
            self.names.append(label)
        return self.names.index(label)
