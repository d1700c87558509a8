"""YOLO text labels (detection and segmentation).

PATH holds `images/` and `labels/` with mirrored subfolders (`images/train/a.jpg` ↔
`labels/train/a.txt`), or subfolders each holding such a pair (`train/images`, `train/labels`).
Class names come from `classes.txt`, `obj.names` or `data.yaml`/`dataset.yaml` (`names:` as a
list or an id → name mapping), looked up in PATH and then in `labels/`. A line
`class cx cy w h` (normalised) is a box; a longer line `class x1 y1 x2 y2 ...` is a polygon
(stored with its bounding box). A missing or empty label file is a background ("no defect")
image, as in YOLO itself.
"""

from __future__ import annotations

from pathlib import Path

from labeling.importers.common import (
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
    """Read a YOLO folder; see the module docstring."""
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
