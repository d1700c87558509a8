"""Readers for the data set formats `import_dataset` accepts.

Each reader takes the data set's path and returns a `ParseResult` (records to import, bad files,
classes) without touching the database; `labeling.services.dataset_import` does the writing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from labeling.importers.coco import parse_coco
from labeling.importers.common import BadFile, DatasetFormatError, ImportRecord, ParseResult
from labeling.importers.folders import parse_folders
from labeling.importers.labelstudio import parse_labelstudio
from labeling.importers.masks import parse_masks
from labeling.importers.voc import parse_voc
from labeling.importers.yolo import parse_yolo

PARSERS: dict[str, Callable[[Path], ParseResult]] = {
    "voc": parse_voc,
    "coco": parse_coco,
    "yolo": parse_yolo,
    "masks": parse_masks,
    "folders": parse_folders,
    "labelstudio": parse_labelstudio,
}
FORMATS = tuple(PARSERS)

__all__ = ["FORMATS", "PARSERS", "BadFile", "DatasetFormatError", "ImportRecord", "ParseResult"]
