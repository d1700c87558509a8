"""Pascal VOC: `JPEGImages/` + `Annotations/` (one XML per image, paired by stem), plus
`ImageSets/Main/{train,val,test}.txt` for the items that have a split.

VOC has boxes only: a polygon or mask is written as its box (the box stored beside it at
import, else its bounding box). Coordinates are whole pixels, rounded to the nearest, as the
importer reads them (edges, not VOC's historical 1-based pixel indices). An XML without objects
means "no defect"; unlabeled images and images with a defect class but no location are left out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from labeling.exporters.common import (
    Bounds,
    ExportCounts,
    ExportItem,
    FileNames,
    copy_image,
    count_left_out,
    detection_view,
    shape_as_box_note,
)

IMAGES_FOLDER = "JPEGImages"
ANNOTATIONS_FOLDER = "Annotations"
SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}


def whole_pixel_edges(bounds: Bounds, width: int, height: int) -> tuple[int, int, int, int]:
    """`(xmin, ymin, xmax, ymax)` rounded to whole pixels inside the image, never without area."""
    x, y, box_width, box_height = bounds

    def edges(start: float, size: float, limit: int) -> tuple[int, int]:
        low = min(max(round(start), 0), limit - 1)
        high = min(max(round(start + size), low + 1), limit)
        return low, high

    xmin, xmax = edges(x, box_width, width)
    ymin, ymax = edges(y, box_height, height)
    return xmin, ymin, xmax, ymax


def _sub(parent: ElementTree.Element, tag: str, text: object) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    element.text = str(text)
    return element


def _depth(path: Path) -> int:
    with Image.open(path) as image:  # reads the header only
        return len(image.getbands())


def annotation_xml(file_name: str, item: ExportItem, depth: int, objects: list[tuple[str, Bounds]]) -> bytes:
    root = ElementTree.Element("annotation")
    _sub(root, "folder", IMAGES_FOLDER)
    _sub(root, "filename", file_name)
    size = ElementTree.SubElement(root, "size")
    _sub(size, "width", item.width)
    _sub(size, "height", item.height)
    _sub(size, "depth", depth)
    _sub(root, "segmented", 0)
    for label, bounds in objects:
        element = ElementTree.SubElement(root, "object")
        _sub(element, "name", label)
        _sub(element, "pose", "Unspecified")
        _sub(element, "truncated", 0)
        _sub(element, "difficult", 0)
        box = ElementTree.SubElement(element, "bndbox")
        for tag, value in zip(
            ("xmin", "ymin", "xmax", "ymax"), whole_pixel_edges(bounds, item.width, item.height), strict=True
        ):
            _sub(box, tag, value)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def write_voc(folder: Path, items: Iterable[ExportItem], *, classes: Sequence[str]) -> ExportCounts:
    """Write the items into `folder` (see the module docstring). `classes` is not stored: VOC
    has no class list."""
    counts = ExportCounts()
    names = FileNames()
    stems_by_split: dict[str, list[str]] = {}
    for item in items:
        view = detection_view(item)
        if count_left_out(counts, view):
            continue
        stem = names.stem(item)
        file_name = f"{stem}.{item.extension}"
        image_path = folder / IMAGES_FOLDER / file_name
        copy_image(item, image_path)
        objects = []
        for instance in view.instances:
            objects.append((instance.label, instance.bounds))
            counts.objects["box"] += 1
            if instance.shape is not None:
                counts.approximated[shape_as_box_note(instance)] += 1
        xml = annotation_xml(file_name, item, _depth(image_path), objects)
        (folder / ANNOTATIONS_FOLDER).mkdir(parents=True, exist_ok=True)
        (folder / ANNOTATIONS_FOLDER / f"{stem}.xml").write_bytes(xml)
        counts.images += 1
        counts.no_defect += view.status == "no_defect"
        if item.split in SPLIT_FILES:
            stems_by_split.setdefault(SPLIT_FILES[item.split], []).append(stem)
    for split, stems in stems_by_split.items():
        path = folder / "ImageSets" / "Main" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{stem}\n" for stem in stems), encoding="utf-8")
    return counts
