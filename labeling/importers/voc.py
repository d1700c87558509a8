"""Pascal VOC: one XML file of bounding boxes per image.

Accepted layouts (folder names matched case-insensitively): the standard `JPEGImages/` +
`Annotations/`, and NEU-DET's `IMAGES/` + `ANNOTATIONS/` with optional `Validation_Images/` +
`Validation_Annotations/`. Images and XML files are paired by file stem (the XML's
`<filename>` is often wrong in the wild and is ignored). An XML without objects means "no
defect"; an image without XML, or an XML without image, is a bad file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from labeling.importers.common import (
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
    """Read a VOC-style folder; see the module docstring for the layouts."""
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
