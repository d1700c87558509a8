"""Pascal VOC XML boxes: `parse_voc` reads the standard and NEU-DET layouts; `write_voc` writes
`JPEGImages/` + `Annotations/` + `ImageSets/Main/`. Layouts in docs/data-formats.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from labeling.formats.reading import (
    AnnotationRecord,
    BadInput,
    DatasetFormatError,
    ImageInfo,
    ImportRecord,
    ParseResult,
    box_annotation,
    image_files,
    inspect_image,
    relative_name,
)
from labeling.formats.writing import (
    Bounds,
    ExportCounts,
    ExportItem,
    FileNames,
    copy_image,
    count_left_out,
    detection_view,
    shape_as_box_note,
)

FOLDER_PAIRS = (
    ("jpegimages", "annotations"),
    ("images", "annotations"),
    ("validation_images", "validation_annotations"),
)


def _folder_pairs(root: Path) -> list[tuple[Path, Path]]:
    folders = {child.name.lower(): child for child in root.iterdir() if child.is_dir()}
    return [
        (folders[images], folders[annotations])
        for images, annotations in FOLDER_PAIRS
        if images in folders and annotations in folders
    ]


def _text(element: ElementTree.Element, tag: str) -> str:
    found = element.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise BadInput(f"<{tag}> missing")
    return found.text.strip()


def parse_voc_annotation(xml_path: Path, image: ImageInfo) -> list[AnnotationRecord]:
    """The boxes of one VOC XML file, validated against the image; `BadInput` on any problem."""
    try:
        root = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        raise BadInput(f"malformed XML ({error})") from error
    except OSError as error:
        raise BadInput(f"cannot read file ({error.strerror or error})") from error
    if root.tag != "annotation":
        raise BadInput(f"root element is <{root.tag}>, expected <annotation>")

    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        try:
            declared = (int(float(_text(size, "width"))), int(float(_text(size, "height"))))
        except ValueError as error:
            raise BadInput(f"<size> is not numeric ({error})") from error
        # Some tools write 0x0 when they did not know the size; only a real disagreement counts.
        if declared != (0, 0) and declared != (image.width, image.height):
            raise BadInput(
                f"<size> says {declared[0]}x{declared[1]} but the image is {image.width}x{image.height}"
            )

    annotations = []
    for number, obj in enumerate(root.findall("object"), start=1):
        label = _text(obj, "name")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise BadInput(f"object {number} ({label}) has no <bndbox>")
        corners = [_text(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        annotations.append(box_annotation(label, corners, image, what=f"object {number} ({label}) box"))
    if not annotations:
        annotations.append(AnnotationRecord(kind="no_defect"))
    return annotations


def parse_voc(path: Path) -> ParseResult:
    """Read a VOC-style folder; see docs/data-formats.md for the layouts."""
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: a VOC data set is a folder")
    pairs = _folder_pairs(path)
    if not pairs:
        raise DatasetFormatError(
            f"{path}: no JPEGImages/ + Annotations/ or IMAGES/ + ANNOTATIONS/ folders found"
        )
    result = ParseResult()
    for images_folder, annotations_folder in pairs:
        xml_files = {
            xml.relative_to(annotations_folder).with_suffix("").as_posix(): xml
            for xml in sorted(annotations_folder.rglob("*"))
            if xml.is_file() and xml.suffix.lower() == ".xml"
        }
        matched: set[str] = set()
        for image_path in image_files(images_folder):
            key = image_path.relative_to(images_folder).with_suffix("").as_posix()
            xml_path = xml_files.get(key)
            if xml_path is None:
                result.bad(image_path, "no annotation file")
                continue
            matched.add(key)
            try:
                image = inspect_image(image_path)
            except BadInput as error:
                result.bad(image_path, str(error))
                continue
            try:
                annotations = parse_voc_annotation(xml_path, image)
            except BadInput as error:
                result.bad(xml_path, str(error))
                continue
            result.add(ImportRecord(relative_name(image_path, path), image, annotations))
        for key in sorted(set(xml_files) - matched):
            result.bad(xml_files[key], "no image for this annotation file")
    return result


# --- Writing ------------------------------------------------------------------------------------


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
    """Write the items into `folder` (see docs/data-formats.md). `classes` is not stored: VOC
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
