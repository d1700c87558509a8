"""Every data set format by name: `PARSERS` (what `import_dataset` reads) and `WRITERS` (what
`export_dataset` writes, the layouts the parsers read back)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from labeling.formats.coco import parse_coco, write_coco
from labeling.formats.folders import parse_folders
from labeling.formats.labelstudio import parse_labelstudio, write_labelstudio
from labeling.formats.masks import parse_masks
from labeling.formats.reading import ParseResult
from labeling.formats.voc import parse_voc, write_voc
from labeling.formats.yolo import parse_yolo, write_yolo

PARSERS: dict[str, Callable[[Path], ParseResult]] = {
    "voc": parse_voc,
    "coco": parse_coco,
    "yolo": parse_yolo,
    "masks": parse_masks,
    "folders": parse_folders,
    "labelstudio": parse_labelstudio,
}
IMPORT_FORMATS = tuple(PARSERS)

WRITERS = {
    "coco": write_coco,
    "yolo": write_yolo,
    "voc": write_voc,
    "labelstudio": write_labelstudio,
}
EXPORT_FORMATS = tuple(WRITERS)
# The only format that carries model predictions.
PREDICTIONS_FORMAT = "labelstudio"
