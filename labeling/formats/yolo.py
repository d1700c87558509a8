"""YOLO text labels (boxes and polygons): `parse_yolo` reads them with their class names; `write_yolo`
writes `images/<split>/`, `labels/<split>/` and `data.yaml`. Layouts in docs/data-formats.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from labeling.formats.reading import (
    AnnotationRecord,
    BadInput,
    DatasetFormatError,
    ImageInfo,
    ImportRecord,
    ParseResult,
    box_annotation,
    finite_numbers,
    image_files,
    inspect_image,
    is_no_defect_name,
    polygon_annotation,
    polygon_bounding_box,
    polygon_points,
    relative_name,
)
from labeling.formats.writing import (
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

NAME_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml", "data.yml", "dataset.yml")


def _names_from_yaml(path: Path) -> list[str]:
    import yaml  # PyYAML, only needed here

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetFormatError(f"{path}: not readable YAML ({error})") from error
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, list):
        return [str(name).strip() for name in names]
    if isinstance(names, dict):
        try:
            by_id = {int(key): str(value).strip() for key, value in names.items()}
        except (TypeError, ValueError) as error:
            raise DatasetFormatError(f"{path}: 'names' keys must be class ids") from error
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetFormatError(f"{path}: class ids in 'names' must be 0..{len(by_id) - 1}")
        return [by_id[index] for index in range(len(by_id))]
    raise DatasetFormatError(f"{path}: no 'names' list or mapping")


def load_class_names(root: Path) -> tuple[list[str], Path]:
    """The class names by id and the file they came from; `DatasetFormatError` if none."""
    for folder in (root, root / "labels"):
        for file_name in NAME_FILES:
            path = folder / file_name
            if not path.is_file():
                continue
            if path.suffix in {".yaml", ".yml"}:
                names = _names_from_yaml(path)
            else:
                try:
                    names = [
                        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                    ]
                except (OSError, UnicodeDecodeError) as error:
                    raise DatasetFormatError(f"{path}: not readable ({error})") from error
            if not all(names):
                raise DatasetFormatError(f"{path}: an empty class name")
            return names, path
    raise DatasetFormatError(f"{root}: no classes.txt, obj.names or data.yaml with the class names")


def parse_yolo_labels(label_path: Path, image: ImageInfo, names: list[str]) -> list[AnnotationRecord]:
    """The annotations of one label file; `BadInput` naming the line on any problem."""
    try:
        lines = label_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read label file ({error})") from error
    annotations: list[AnnotationRecord] = []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {line_number}"
        try:
            class_id = int(fields[0])
        except ValueError as error:
            raise BadInput(f"{where}: class id {fields[0]!r} is not an integer") from error
        if not 0 <= class_id < len(names):
            raise BadInput(f"{where}: unknown class id {class_id} (names has {len(names)})")
        label = names[class_id]
        values = finite_numbers(fields[1:], where)
        if len(values) == 4:
            center_x, center_y, width, height = values
            corners = (
                (center_x - width / 2) * image.width,
                (center_y - height / 2) * image.height,
                (center_x + width / 2) * image.width,
                (center_y + height / 2) * image.height,
            )
            annotations.append(box_annotation(label, corners, image, what=f"{where} box"))
        elif len(values) >= 6 and len(values) % 2 == 0:
            scaled = [
                value * (image.width if index % 2 == 0 else image.height)
                for index, value in enumerate(values)
            ]
            points = polygon_points(scaled, image, what=f"{where} polygon")
            annotations.append(polygon_annotation(label, points))
            annotations.append(polygon_bounding_box(label, points, image))
        else:
            raise BadInput(
                f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', "
                f"got {len(fields)} fields"
            )
    return annotations or [AnnotationRecord(kind="no_defect")]


def _image_label_folders(root: Path) -> list[tuple[Path, Path]]:
    if (root / "images").is_dir():
        return [(root / "images", root / "labels")]
    return [
        (child / "images", child / "labels")
        for child in sorted(root.iterdir())
        if (child / "images").is_dir()
    ]


def parse_yolo(path: Path) -> ParseResult:
    """Read a YOLO folder; see docs/data-formats.md."""
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: a YOLO data set is a folder")
    folders = _image_label_folders(path)
    if not folders:
        raise DatasetFormatError(f"{path}: no images/ (and labels/) folder found")
    names, names_file = load_class_names(path)
    result = ParseResult(declared=[name for name in names if not is_no_defect_name(name)])
    for images_folder, labels_folder in folders:
        used_labels: set[Path] = set()
        for image_path in image_files(images_folder):
            label_path = labels_folder / image_path.relative_to(images_folder).with_suffix(".txt")
            used_labels.add(label_path)
            try:
                image = inspect_image(image_path)
            except BadInput as error:
                result.bad(image_path, str(error))
                continue
            if label_path.is_file():
                try:
                    annotations = parse_yolo_labels(label_path, image, names)
                except BadInput as error:
                    result.bad(label_path, str(error))
                    continue
            else:
                annotations = [AnnotationRecord(kind="no_defect")]
            result.add(ImportRecord(relative_name(image_path, path), image, annotations))
        if labels_folder.is_dir():
            for label_path in sorted(labels_folder.rglob("*.txt")):
                if (
                    label_path not in used_labels
                    and label_path != names_file
                    and label_path.name != "classes.txt"
                ):
                    result.bad(label_path, "no image for this label file")
    return result


# --- Writing ------------------------------------------------------------------------------------


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
    """Write the items into `folder` (see docs/data-formats.md)."""
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
