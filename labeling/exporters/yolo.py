"""YOLO (Ultralytics) text labels: `images/<split>/x.jpg` ↔ `labels/<split>/x.txt` and a
`data.yaml` with the split folders and the class names (ids in the data set's class order).

The split folders are `train`, `val` and `test`; items without a split go to `unassigned`. A
box is a line `class cx cy w h`, a polygon a line `class x1 y1 x2 y2 ...` (normalised, six
decimals): the importer reads a polygon line back as the polygon plus its bounding box, as it
was stored. YOLO has no masks: a mask is written as its box (the box stored beside it at import,
else its bounding box). An empty label file means "no defect"; unlabeled images and images with
a defect class but no location are left out. A data set without classes gets the single name
`no_defect`, which the importer does not count as a class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from labeling.exporters.common import (
    NO_DEFECT,
    POLYGON,
    Bounds,
    ClassIds,
    ExportCounts,
    ExportItem,
    FileNames,
    Instance,
    copy_image,
    count_left_out,
    detection_view,
    shape_as_box_note,
)

DATA_FILE = "data.yaml"
SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
UNASSIGNED_FOLDER = "unassigned"


def box_line(class_id: int, bounds: Bounds, width: int, height: int) -> str:
    x, y, box_width, box_height = bounds
    center_x, center_y = (x + box_width / 2) / width, (y + box_height / 2) / height
    return f"{class_id} {center_x:.6f} {center_y:.6f} {box_width / width:.6f} {box_height / height:.6f}"


def polygon_line(class_id: int, points: Sequence[Sequence[float]], width: int, height: int) -> str:
    values = " ".join(f"{float(x) / width:.6f} {float(y) / height:.6f}" for x, y in points)
    return f"{class_id} {values}"


def _line(instance: Instance, item: ExportItem, *, class_ids: ClassIds, counts: ExportCounts) -> str:
    class_id = class_ids.id(instance.label)
    shape = instance.shape
    if shape is not None and shape.kind == POLYGON:
        counts.objects["polygon"] += 1
        if instance.box is None:
            counts.approximated["box added to a polygon without one (YOLO reads a polygon with its box)"] += 1
        return polygon_line(class_id, shape.geometry["points"], item.width, item.height)
    counts.objects["box"] += 1
    if shape is not None:
        counts.approximated[shape_as_box_note(instance)] += 1
    return box_line(class_id, instance.bounds, item.width, item.height)


def data_yaml(folders: set[str], names: list[str]) -> str:
    """Ultralytics' dataset file: paths relative to its own folder (no `path:` key)."""
    document: dict[str, object] = {}
    for key, folder in (("train", "train"), ("val", "val"), ("test", "test")):
        if folder in folders:
            document[key] = f"images/{folder}"
    if not document:
        document = {"train": f"images/{UNASSIGNED_FOLDER}", "val": f"images/{UNASSIGNED_FOLDER}"}
    # The importer (and Ultralytics) need at least one name; "no_defect" is read as no class.
    document["names"] = dict(enumerate(names or [NO_DEFECT]))
    header = "# Loupe data set export (YOLO)\n"
    if UNASSIGNED_FOLDER in folders and len(folders) > 1:
        header += f"# images/{UNASSIGNED_FOLDER}: items with no split assigned yet\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def write_yolo(folder: Path, items: Iterable[ExportItem], *, classes: Sequence[str]) -> ExportCounts:
    """Write the items into `folder` (see the module docstring)."""
    counts = ExportCounts()
    class_ids = ClassIds(classes)
    names = FileNames()
    split_folders: set[str] = set()
    for item in items:
        view = detection_view(item)
        if count_left_out(counts, view):
            continue
        split_folder = SPLIT_FOLDERS.get(item.split, UNASSIGNED_FOLDER)
        split_folders.add(split_folder)
        stem = names.stem(item)
        copy_image(item, folder / "images" / split_folder / f"{stem}.{item.extension}")
        lines = [_line(instance, item, class_ids=class_ids, counts=counts) for instance in view.instances]
        label_path = folder / "labels" / split_folder / f"{stem}.txt"
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        counts.images += 1
        counts.no_defect += view.status == "no_defect"
    (folder / DATA_FILE).write_text(data_yaml(split_folders, class_ids.names), encoding="utf-8")
    return counts
