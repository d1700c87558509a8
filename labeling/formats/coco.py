"""COCO instance JSON: `parse_coco` reads a COCO file; `write_coco` writes `annotations.json` beside
`images/`. Masks go through the one COCO codec, `models_registry.ml.coco`; layouts in docs/data-formats.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from labeling.formats.reading import (
    AnnotationRecord,
    BadInput,
    DatasetFormatError,
    ImageInfo,
    ImportRecord,
    ParseResult,
    box_annotation,
    finite_numbers,
    inspect_image,
    is_no_defect_name,
    mask_annotation,
    polygon_annotation,
    polygon_points,
)
from labeling.formats.writing import (
    MASK,
    ExportCounts,
    ExportItem,
    FileNames,
    Instance,
    copy_image,
    count_left_out,
    detection_view,
    polygon_area,
)
from models_registry.ml.coco import CocoWriter, coco_rle_to_mask, mask_to_coco_rle

ANNOTATIONS_FILE = "annotations.json"
IMAGES_FOLDER = "images"


def decode_rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    """A boolean (height, width) mask from a COCO RLE of an image of that size (`BadInput` if not)."""
    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2 or [int(size[0]), int(size[1])] != [height, width]:
        raise BadInput(f"RLE size {size} differs from the image's [{height}, {width}]")
    try:
        return coco_rle_to_mask(segmentation)
    except ValueError as error:
        raise BadInput(str(error)) from error


def _find_json(path: Path) -> Path:
    if path.is_file():
        return path
    for folder in (path, path / "annotations"):
        candidates = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            names = ", ".join(candidate.name for candidate in candidates)
            raise DatasetFormatError(f"{folder}: several JSON files ({names}); pass the one to import")
    raise DatasetFormatError(f"{path}: no COCO JSON file found")


def _resolve_image(file_name: str, base: Path) -> Path | None:
    relative = Path(file_name)
    for candidate in (
        base / relative,
        base / "images" / relative,
        base / relative.name,
        base / "images" / relative.name,
    ):
        if candidate.is_file():
            return candidate
    return None


def _annotation_records(annotation: dict, label: str, image: ImageInfo) -> list[AnnotationRecord]:
    records = []
    bbox = annotation.get("bbox")
    if bbox is not None:
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise BadInput(f"bbox {bbox!r} is not [x, y, width, height]")
        x, y, width, height = finite_numbers(bbox, f"bbox {bbox}")
        records.append(box_annotation(label, (x, y, x + width, y + height), image, what=f"bbox {bbox}"))
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list):
                raise BadInput("polygon segmentation must be lists of numbers")
            records.append(
                polygon_annotation(label, polygon_points(polygon, image, what="segmentation polygon"))
            )
    elif isinstance(segmentation, dict):
        mask = decode_rle(segmentation, image.height, image.width)
        if mask.any():
            records.append(mask_annotation(label, mask))
    elif segmentation is not None:
        raise BadInput("segmentation is neither polygons nor RLE")
    if not records:
        raise BadInput("annotation has neither bbox nor segmentation")
    return records


def _load(json_path: Path) -> dict:
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetFormatError(f"{json_path}: not a readable JSON file ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DatasetFormatError(f"{json_path}: not a COCO file (no 'images' list)")
    for key in ("annotations", "categories"):
        if not isinstance(document.get(key, []), list):
            raise DatasetFormatError(f"{json_path}: '{key}' is not a list")
    return document


def parse_coco(path: Path) -> ParseResult:
    """Read a COCO JSON file; see docs/data-formats.md."""
    json_path = _find_json(path)
    document = _load(json_path)
    base = json_path.parent
    result = ParseResult()

    categories: dict[object, str] = {}
    for category in document.get("categories", []):
        if (
            not isinstance(category, dict)
            or "id" not in category
            or not str(category.get("name", "")).strip()
        ):
            raise DatasetFormatError(f"{json_path}: category {category!r} needs an id and a name")
        categories[category["id"]] = str(category["name"]).strip()
    result.declare(name for name in categories.values() if not is_no_defect_name(name))

    images: dict[object, dict] = {}
    for entry in document["images"]:
        if not isinstance(entry, dict) or "id" not in entry or not entry.get("file_name"):
            result.bad(json_path, f"image entry {entry!r} needs an id and a file_name")
            continue
        images[entry["id"]] = entry

    by_image: dict[object, list[dict]] = defaultdict(list)
    for annotation in document.get("annotations", []):
        if not isinstance(annotation, dict):
            result.bad(json_path, f"annotation {annotation!r} is not an object")
        elif annotation.get("image_id") not in images:
            result.bad(
                json_path,
                f"annotation {annotation.get('id')}: unknown image_id {annotation.get('image_id')!r}",
            )
        else:
            by_image[annotation["image_id"]].append(annotation)

    for image_id, entry in images.items():
        file_name = str(entry["file_name"])
        image_path = _resolve_image(file_name, base)
        if image_path is None:
            result.bad(base / file_name, "image file not found (also looked in images/)")
            continue
        try:
            image = inspect_image(image_path)
        except BadInput as error:
            result.bad(image_path, str(error))
            continue
        try:
            declared = (int(entry.get("width") or 0), int(entry.get("height") or 0))
            if declared != (0, 0) and declared != (image.width, image.height):
                raise BadInput(
                    f"JSON says {declared[0]}x{declared[1]} but the image is {image.width}x{image.height}"
                )
            annotations = []
            for annotation in by_image.get(image_id, []):
                label = categories.get(annotation.get("category_id"))
                if label is None:
                    category_id = annotation.get("category_id")
                    raise BadInput(f"annotation {annotation.get('id')}: unknown category_id {category_id!r}")
                annotations.extend(_annotation_records(annotation, label, image))
        except (BadInput, TypeError, ValueError) as error:
            result.bad(image_path, f"{error} (in {json_path.name})")
            continue
        result.add(ImportRecord(file_name, image, annotations or [AnnotationRecord(kind="no_defect")]))
    return result


# --- Writing ------------------------------------------------------------------------------------


def _shape(instance: Instance, *, counts: ExportCounts) -> tuple[list, float, dict | list]:
    """The instance's COCO `bbox`, `area` and `segmentation`, counted in `counts`."""
    x, y, width, height = instance.bounds
    bbox = [x, y, width, height]
    shape = instance.shape
    if shape is None:
        counts.objects["box"] += 1
        return bbox, width * height, []
    counts.objects[f"box+{shape.kind}"] += 1
    if instance.box is None:
        counts.approximated[f"box added to a {shape.kind} without one (COCO needs a bbox)"] += 1
    if shape.kind == MASK:
        mask = shape.mask()
        return bbox, int(mask.sum()), mask_to_coco_rle(mask)
    points = shape.geometry["points"]
    return bbox, polygon_area(points), [[float(value) for point in points for value in point]]


def write_coco(folder: Path, items: Iterable[ExportItem], *, classes: Sequence[str]) -> ExportCounts:
    """Write the items into `folder`: `annotations.json` (every class a category, in the data set's
    order) beside `images/`; see docs/data-formats.md."""
    counts = ExportCounts()
    coco = CocoWriter(list(classes))
    names = FileNames()
    for item in items:
        view = detection_view(item)
        if count_left_out(counts, view):
            continue
        file_name = f"{names.stem(item)}.{item.extension}"
        copy_image(item, folder / IMAGES_FOLDER / file_name)
        image_id = coco.add_image(file_name, item.width, item.height)
        counts.images += 1
        counts.no_defect += view.status == "no_defect"
        for instance in view.instances:
            bbox, area, segmentation = _shape(instance, counts=counts)
            coco.add_annotation(image_id, instance.label, bbox=bbox, area=area, segmentation=segmentation)
    coco.write(folder / ANNOTATIONS_FILE, info={"description": "Loupe data set export"})
    return counts
