"""COCO object detection / instance segmentation JSON.

PATH is the JSON file, or a folder holding exactly one JSON file (at its top, else in
`annotations/`). Image `file_name`s are resolved against the JSON's folder, then its `images/`
subfolder (also by base name). Each annotation gives a box from `bbox`, plus polygons for a
polygon `segmentation` or a mask for an RLE one (uncompressed `counts` list or the compressed
string, decoded here without pycocotools). Images without annotations are "no defect"; every
category name becomes a class.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from labeling.importers.common import (
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


def decode_compressed_counts(counts: str) -> list[int]:
    """Run lengths from COCO's compressed RLE string (pycocotools' `rleFrString`)."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = 0
        shift = 0
        more = True
        while more:
            if position >= len(counts):
                raise BadInput("compressed RLE ends in the middle of a number")
            chunk = ord(counts[position]) - 48
            if not 0 <= chunk < 64:
                raise BadInput(f"compressed RLE has an invalid character {counts[position]!r}")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def decode_rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    """A boolean (height, width) mask from a COCO RLE (runs of 0 then 1, column-major)."""
    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2 or [int(size[0]), int(size[1])] != [height, width]:
        raise BadInput(f"RLE size {size} differs from the image's [{height}, {width}]")
    counts = segmentation.get("counts")
    if isinstance(counts, str):
        runs = decode_compressed_counts(counts)
    elif isinstance(counts, list) and all(
        isinstance(run, int) and not isinstance(run, bool) for run in counts
    ):
        runs = counts
    else:
        raise BadInput("RLE counts must be a list of integers or a compressed string")
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise BadInput(f"RLE runs cover {sum(runs)} pixels, the image has {height * width}")
    flat = np.zeros(height * width, dtype=bool)
    position = 0
    for index, run in enumerate(runs):
        if index % 2:
            flat[position : position + run] = True
        position += run
    return flat.reshape((width, height)).T


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
    """Read a COCO JSON file; see the module docstring."""
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
