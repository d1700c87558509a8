"""COCO instance JSON: `annotations.json` beside an `images/` folder (the synthetic generator's
layout, read by `import_dataset --format coco`).

Each located defect is one annotation: a polygon or mask with its box (the box stored beside
it at import, else its bounding box) as `bbox` plus the shape as `segmentation` (polygons, or a
mask as an uncompressed RLE, pixel-exact); a box alone gets an empty `segmentation`. Every class
of the data set is a category, in the data set's order. An image without annotations means
"no defect"; unlabeled images and images with a defect class but no location are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from labeling.exporters.common import (
    MASK,
    ClassIds,
    ExportCounts,
    ExportItem,
    FileNames,
    Instance,
    copy_image,
    count_left_out,
    detection_view,
    polygon_area,
)

ANNOTATIONS_FILE = "annotations.json"
IMAGES_FOLDER = "images"


def mask_to_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a boolean (height, width) mask: column-major runs, zeros first."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(run) for run in counts]}


def _annotation(instance: Instance, *, class_ids: ClassIds, counts: ExportCounts) -> dict:
    x, y, width, height = instance.bounds
    annotation = {
        "category_id": class_ids.id(instance.label) + 1,
        "bbox": [x, y, width, height],
        "area": width * height,
        "segmentation": [],
        "iscrowd": 0,
    }
    shape = instance.shape
    if shape is None:
        counts.objects["box"] += 1
        return annotation
    counts.objects[f"box+{shape.kind}"] += 1
    if instance.box is None:
        counts.approximated[f"box added to a {shape.kind} without one (COCO needs a bbox)"] += 1
    if shape.kind == MASK:
        mask = shape.mask()
        annotation["segmentation"] = mask_to_rle(mask)
        annotation["area"] = int(mask.sum())
    else:
        points = shape.geometry["points"]
        annotation["segmentation"] = [[float(value) for point in points for value in point]]
        annotation["area"] = polygon_area(points)
    return annotation


def write_coco(folder: Path, items: Iterable[ExportItem], *, classes: Sequence[str]) -> ExportCounts:
    """Write the items into `folder` (see the module docstring)."""
    counts = ExportCounts()
    class_ids = ClassIds(classes)
    names = FileNames()
    images: list[dict] = []
    annotations: list[dict] = []
    for item in items:
        view = detection_view(item)
        if count_left_out(counts, view):
            continue
        file_name = f"{names.stem(item)}.{item.extension}"
        copy_image(item, folder / IMAGES_FOLDER / file_name)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "width": item.width, "height": item.height})
        counts.images += 1
        counts.no_defect += view.status == "no_defect"
        for instance in view.instances:
            annotation = _annotation(instance, class_ids=class_ids, counts=counts)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **annotation})
    document = {
        "info": {"description": "Loupe data set export"},
        "licenses": [],
        "categories": [
            {"id": index + 1, "name": name, "supercategory": "defect"}
            for index, name in enumerate(class_ids.names)
        ],
        "images": images,
        "annotations": annotations,
    }
    (folder / ANNOTATIONS_FILE).write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    return counts
