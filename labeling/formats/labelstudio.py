"""Label Studio JSON tasks, the lossless format: `parse_labelstudio` reads an export; `write_labelstudio`
writes `tasks.json`, `images/` and `labeling_config.xml`, with predictions. See docs/data-formats.md.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import quoteattr

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
    polygon_bounding_box,
    polygon_points,
)
from labeling.formats.writing import (
    BOX,
    IMAGE_CLASS,
    MASK,
    NO_DEFECT,
    POLYGON,
    ClassIds,
    DatasetExportError,
    ExportAnnotation,
    ExportCounts,
    ExportItem,
    FileNames,
    copy_image,
)

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(?P<name>.+)$")
IGNORED_RESULT_TYPES = frozenset({"relation"})


class _BitReader:
    """Reads big-endian bit fields from a byte string, as Label Studio's RLE writer packs them."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.total_bits = len(data) * 8

    def read(self, size: int) -> int:
        end = self.position + size
        if end > self.total_bits:
            raise BadInput("brush RLE ends early")
        first_byte, last_byte = self.position // 8, (end + 7) // 8
        chunk = int.from_bytes(self.data[first_byte:last_byte], "big")
        self.position = end
        return (chunk >> (last_byte * 8 - end)) & ((1 << size) - 1)


def decode_brush_rle(rle: list[int], height: int, width: int) -> np.ndarray:
    """A boolean (height, width) mask from a `brushlabels` RLE (label-studio-converter's format).

    The RLE packs the RGBA canvas (height x width x 4 values); the alpha channel is the mask.
    """
    if not isinstance(rle, list) or not all(isinstance(value, int) and 0 <= value <= 255 for value in rle):
        raise BadInput("brush 'rle' must be a list of bytes (0-255)")
    reader = _BitReader(bytes(rle))
    count = reader.read(32)
    word_size = reader.read(5) + 1
    run_sizes = [reader.read(4) + 1 for _ in range(4)]
    if count != height * width * 4:
        raise BadInput(
            f"brush mask holds {count} values, a {width}x{height} RGBA image needs {height * width * 4}"
        )
    values = np.zeros(count, dtype=np.uint8)
    index = 0
    while index < count:
        repeated = reader.read(1)
        end = index + 1 + reader.read(run_sizes[reader.read(2)])
        if end > count:
            raise BadInput("brush RLE run goes past the end of the image")
        if repeated:
            values[index:end] = min(reader.read(word_size), 255)
            index = end
        else:
            while index < end:
                values[index] = min(reader.read(word_size), 255)
                index += 1
    return values.reshape(height, width, 4)[:, :, 3] >= 128


def _find_json(path: Path) -> Path:
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.json"))
    if len(candidates) != 1:
        found = ", ".join(candidate.name for candidate in candidates) or "none"
        raise DatasetFormatError(f"{path}: expected exactly one Label Studio JSON export, found {found}")
    return candidates[0]


def resolve_image(reference: str, base: Path) -> Path | None:
    """The local file a task's `data.image` points to, or None."""
    parsed = urlparse(reference)
    candidates: list[Path] = []
    query_path = parse_qs(parsed.query).get("d", [""])[0]
    if query_path:
        relative = Path(unquote(query_path))
        candidates += [base / relative, base / "images" / relative]
        name = relative.name
    elif parsed.scheme and len(parsed.scheme) > 1:  # a URL (a one-letter scheme is a Windows drive)
        name = Path(unquote(parsed.path)).name
    else:
        local = Path(reference)
        candidates += [local] if local.is_absolute() else [base / local, base / "images" / local]
        name = local.name
    names = [name]
    prefixed = UPLOAD_PREFIX.match(name)
    if prefixed:
        names.append(prefixed.group("name"))
    candidates += [folder / candidate for candidate in names for folder in (base, base / "images")]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def _labels(value: dict, key: str) -> list[str]:
    labels = value.get(key)
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(label, str) and label.strip() for label in labels)
    ):
        raise BadInput(f"{key} region without a label")
    return [label.strip() for label in labels]


def _rectangle(value: dict, image: ImageInfo) -> tuple[str, list[list[float]] | None, tuple[float, ...]]:
    x, y, width, height = finite_numbers(
        [value.get("x"), value.get("y"), value.get("width"), value.get("height")], "rectangle"
    )
    x, width = x * image.width / 100, width * image.width / 100
    y, height = y * image.height / 100, height * image.height / 100
    rotation = finite_numbers([value.get("rotation", 0) or 0], "rectangle rotation")[0]
    if abs(rotation) < 1e-6:
        return "box", None, (x, y, x + width, y + height)
    # Label Studio rotates the rectangle clockwise (y down) around its top-left corner.
    cosine, sine = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    points = [[x + dx * cosine - dy * sine, y + dx * sine + dy * cosine] for dx, dy in corners]
    return "polygon", points, ()


def result_annotations(result: dict, image: ImageInfo) -> list[AnnotationRecord]:
    """The annotations one Label Studio result gives; `BadInput` on anything malformed."""
    value = result.get("value")
    if not isinstance(value, dict):
        raise BadInput("result without a 'value' object")
    result_type = result.get("type")
    records: list[AnnotationRecord] = []
    if result_type == "rectanglelabels":
        shape, points, corners = _rectangle(value, image)
        for label in _labels(value, "rectanglelabels"):
            if shape == "box":
                records.append(box_annotation(label, corners, image, what="rectangle"))
            else:
                clipped = polygon_points(points, image, what="rotated rectangle")
                records += [polygon_annotation(label, clipped), polygon_bounding_box(label, clipped, image)]
    elif result_type == "polygonlabels":
        raw_points = value.get("points")
        if not isinstance(raw_points, list) or not all(
            isinstance(point, list) and len(point) == 2 for point in raw_points
        ):
            raise BadInput("polygon 'points' must be a list of [x, y] percentages")
        scaled = [
            [x * image.width / 100, y * image.height / 100]
            for x, y in (finite_numbers(point, "polygon point") for point in raw_points)
        ]
        points = polygon_points(scaled, image)
        records += [polygon_annotation(label, points) for label in _labels(value, "polygonlabels")]
    elif result_type == "brushlabels":
        if value.get("format", "rle") != "rle":
            raise BadInput(f"brush format {value.get('format')!r} is not supported (only 'rle')")
        mask = decode_brush_rle(value.get("rle"), image.height, image.width)
        if mask.any():
            records += [mask_annotation(label, mask) for label in _labels(value, "brushlabels")]
    elif result_type == "choices":
        for choice in _labels(value, "choices"):
            if is_no_defect_name(choice):
                records.append(AnnotationRecord(kind="no_defect"))
            else:
                records.append(AnnotationRecord(kind="class", label=choice))
    return records


def _chosen_annotation(task: dict) -> dict | None:
    annotations = task.get("annotations", task.get("completions")) or []
    if not isinstance(annotations, list):
        raise BadInput("'annotations' is not a list")
    for annotation in annotations:
        if isinstance(annotation, dict) and not annotation.get("was_cancelled"):
            return annotation
    return None


def _load_tasks(json_path: Path) -> list:
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetFormatError(f"{json_path}: not a readable JSON file ({error})") from error
    if isinstance(document, dict) and "data" in document:
        return [document]
    if not isinstance(document, list):
        raise DatasetFormatError(f"{json_path}: a Label Studio export is a list of tasks")
    return document


def parse_labelstudio(path: Path) -> ParseResult:
    """Read a Label Studio JSON export; see docs/data-formats.md."""
    json_path = _find_json(path)
    base = json_path.parent
    result = ParseResult()
    ignored_types: Counter[str] = Counter()
    for position, task in enumerate(_load_tasks(json_path), start=1):
        task_name = f"task {task.get('id', f'#{position}') if isinstance(task, dict) else f'#{position}'}"
        data = task.get("data") if isinstance(task, dict) else None
        reference = data.get("image") if isinstance(data, dict) else None
        if not isinstance(reference, str) or not reference.strip():
            result.bad(json_path, f"{task_name}: no data.image")
            continue
        image_path = resolve_image(reference, base)
        if image_path is None:
            result.bad(
                reference,
                f"{task_name}: image file not found (looked beside {json_path.name} and in images/)",
            )
            continue
        try:
            image = inspect_image(image_path)
        except BadInput as error:
            result.bad(image_path, f"{task_name}: {error}")
            continue
        annotations: list[AnnotationRecord] = []
        try:
            chosen = _chosen_annotation(task)
            results = chosen.get("result", []) if chosen else []
            if not isinstance(results, list):
                raise BadInput("'result' is not a list")
            for item in results:
                if not isinstance(item, dict):
                    raise BadInput("a result is not an object")
                kind = str(item.get("type"))
                if kind not in {"rectanglelabels", "polygonlabels", "brushlabels", "choices"}:
                    if kind not in IGNORED_RESULT_TYPES:
                        ignored_types[kind] += 1
                    continue
                annotations += result_annotations(item, image)
        except (BadInput, TypeError, ValueError) as error:
            result.bad(image_path, f"{task_name}: {error}")
            continue
        result.add(ImportRecord(reference[:500], image, annotations))
    for kind, count in sorted(ignored_types.items()):
        result.warnings.append(f"ignored {count} result(s) of unsupported type {kind!r}")
    return result


# --- Writing ------------------------------------------------------------------------------------


TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"
IMAGES_FOLDER = "images"
FROM_NAMES = {BOX: "box", POLYGON: "polygon", MASK: "brush", IMAGE_CLASS: "class"}
RESULT_TYPES = {BOX: "rectanglelabels", POLYGON: "polygonlabels", MASK: "brushlabels"}

# Label Studio's brush RLE (label-studio-converter's `encode_rle`): 8-bit words and four run
# length field sizes; every run is written as a repeat chunk.
_BRUSH_WORD_BITS = 8
_BRUSH_RUN_BITS = (3, 4, 8, 16)


def encode_brush_rle(mask: np.ndarray) -> list[int]:
    """Label Studio's `brushlabels` RLE of a boolean (height, width) mask, as a list of bytes.

    The RLE packs an RGBA canvas; the mask's pixels are opaque white, the rest transparent.
    """
    values = np.repeat(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8).ravel(), 4)
    bits = [f"{values.size:032b}", f"{_BRUSH_WORD_BITS - 1:05b}"]
    bits += [f"{size - 1:04b}" for size in _BRUSH_RUN_BITS]
    if values.size:
        starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1))
        lengths = np.diff(np.concatenate((starts, [values.size])))
        longest = 1 << _BRUSH_RUN_BITS[-1]
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            word = f"{int(values[start]):0{_BRUSH_WORD_BITS}b}"
            while length > 0:
                chunk = min(length, longest)
                size_index = next(i for i, size in enumerate(_BRUSH_RUN_BITS) if chunk - 1 < 1 << size)
                size = _BRUSH_RUN_BITS[size_index]
                bits.append(f"1{size_index:02b}{chunk - 1:0{size}b}{word}")
                length -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return list(int(stream, 2).to_bytes(len(stream) // 8, "big"))


def _percent(value: float, size: int) -> float:
    return float(value) * 100.0 / size


def _result(item: ExportItem, kind: str, value: dict, result_id: str) -> dict:
    return {
        "id": result_id,
        "type": RESULT_TYPES.get(kind, "choices"),
        "from_name": FROM_NAMES[kind],
        "to_name": "image",
        "original_width": item.width,
        "original_height": item.height,
        "image_rotation": 0,
        "value": value,
    }


def _box_value(item: ExportItem, x: float, y: float, width: float, height: float, label: str) -> dict:
    return {
        "x": _percent(x, item.width),
        "y": _percent(y, item.height),
        "width": _percent(width, item.width),
        "height": _percent(height, item.height),
        "rotation": 0,
        "rectanglelabels": [label],
    }


def _annotation_value(item: ExportItem, annotation: ExportAnnotation) -> dict:
    if annotation.kind == BOX:
        geometry = annotation.geometry
        return _box_value(
            item, geometry["x"], geometry["y"], geometry["width"], geometry["height"], annotation.label
        )
    if annotation.kind == POLYGON:
        points = [
            [_percent(x, item.width), _percent(y, item.height)] for x, y in annotation.geometry["points"]
        ]
        return {"points": points, "closed": True, "polygonlabels": [annotation.label]}
    return {"format": "rle", "rle": encode_brush_rle(annotation.mask()), "brushlabels": [annotation.label]}


def _results(item: ExportItem, task_id: int, counts: ExportCounts) -> list[dict]:
    results = []
    choices = []
    for annotation in item.annotations:
        if annotation.kind in RESULT_TYPES:
            value = _annotation_value(item, annotation)
            results.append(_result(item, annotation.kind, value, f"{task_id}-{len(results) + 1}"))
            counts.objects[annotation.kind] += 1
        elif annotation.kind == IMAGE_CLASS:
            choices.append(annotation.label)
            counts.objects[IMAGE_CLASS] += 1
        elif annotation.kind == NO_DEFECT:
            choices.append(NO_DEFECT)
    if choices:
        value = {"choices": choices}
        results.append(_result(item, IMAGE_CLASS, value, f"{task_id}-{len(results) + 1}"))
    return results


def _region_number(region: Mapping, key: str, where: str) -> float:
    value = region.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetExportError(f"{where}: predicted region {key} {value!r} is not a finite number")
    return float(value)


def prediction_entry(
    item: ExportItem, regions: Sequence[Mapping], *, model_version: str, task_id: int
) -> dict:
    """One Label Studio prediction: the regions (pixels) as scored `rectanglelabels` (percent),
    clipped to the image; the prediction's score is its best region's."""
    where = item.source_name
    results = []
    for region in regions:
        x, y, width, height, score = (
            _region_number(region, key, where) for key in ("x", "y", "width", "height", "score")
        )
        label = str(region.get("label") or "").strip()
        if not label:
            raise DatasetExportError(f"{where}: predicted region without a label")
        left, top = min(max(x, 0.0), item.width), min(max(y, 0.0), item.height)
        right, bottom = min(max(x + width, left), item.width), min(max(y + height, top), item.height)
        value = _box_value(item, left, top, right - left, bottom - top, label)
        result = _result(item, BOX, value, f"{task_id}-p{len(results) + 1}")
        results.append({**result, "score": score})
    entry: dict = {"model_version": model_version, "result": results}
    if results:
        entry["score"] = max(result["score"] for result in results)
    return entry


def labeling_config(class_ids: ClassIds, predicted_labels: set[str]) -> str:
    """A Label Studio labeling interface with a control for every result type the tasks use."""
    names = [*class_ids.names, *sorted(predicted_labels - set(class_ids.names))]
    labels = "".join(f"\n    <Label value={quoteattr(name)}/>" for name in names)
    choices = "".join(f"\n    <Choice value={quoteattr(name)}/>" for name in [NO_DEFECT, *class_ids.names])
    return (
        "<View>\n"
        '  <Image name="image" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="box" toName="image">{labels}\n  </RectangleLabels>\n'
        f'  <PolygonLabels name="polygon" toName="image">{labels}\n  </PolygonLabels>\n'
        f'  <BrushLabels name="brush" toName="image">{labels}\n  </BrushLabels>\n'
        f'  <Choices name="class" toName="image" choice="multiple">{choices}\n  </Choices>\n'
        "</View>\n"
    )


def write_labelstudio(
    folder: Path, items: Iterable[ExportItem], *, classes: Sequence[str], model_version: str = ""
) -> ExportCounts:
    """Write the items into `folder` (see docs/data-formats.md); `model_version` names the model
    of the items' predictions."""
    counts = ExportCounts()
    class_ids = ClassIds(classes)
    names = FileNames()
    predicted_labels: set[str] = set()
    tasks = []
    for item in items:
        file_name = f"{names.stem(item)}.{item.extension}"
        copy_image(item, folder / IMAGES_FOLDER / file_name)
        task_id = len(tasks) + 1
        results = _results(item, task_id, counts)
        for annotation in item.annotations:
            if annotation.kind in RESULT_TYPES or annotation.kind == IMAGE_CLASS:
                class_ids.id(annotation.label)
        task: dict = {
            "id": task_id,
            "data": {"image": f"/data/local-files/?d={IMAGES_FOLDER}/{file_name}"},
            "annotations": [{"id": task_id, "result": results, "was_cancelled": False}] if results else [],
        }
        if item.predictions is not None:
            entry = prediction_entry(item, item.predictions, model_version=model_version, task_id=task_id)
            predicted_labels.update(result["value"]["rectanglelabels"][0] for result in entry["result"])
            task["predictions"] = [entry]
            counts.with_predictions += 1
        tasks.append(task)
        counts.images += 1
        kinds = {annotation.kind for annotation in item.annotations}
        counts.no_defect += kinds == {NO_DEFECT}
        counts.unlabeled += not kinds
    (folder / TASKS_FILE).write_text(json.dumps(tasks, separators=(",", ":")), encoding="utf-8")
    (folder / CONFIG_FILE).write_text(labeling_config(class_ids, predicted_labels), encoding="utf-8")
    return counts
