"""Label Studio JSON tasks: `tasks.json` beside an `images/` folder, with `labeling_config.xml`
(the project's labeling interface: every control and label the tasks use).

Every stored label has a Label Studio result, so this is the lossless format: boxes become
`rectanglelabels`, polygons `polygonlabels` (both in percent of the image), masks `brushlabels`
(Label Studio's RLE, pixel-exact), image-level classes and "no defect" one `choices` result; an
unlabeled image is a task without annotations. A model prediction, when there is one, is the
task's `predictions` entry (`rectanglelabels` with a score each), which the importer ignores.

`data.image` is `/data/local-files/?d=images/<file>`: Label Studio serves it once the export
folder is its `LOCAL_FILES_DOCUMENT_ROOT` with a local storage on `images/`, and the importer
resolves it against the JSON's folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from labeling.exporters.common import (
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
    """Write the items into `folder` (see the module docstring); `model_version` names the model
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
