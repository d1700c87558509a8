"""Writers for the data set formats `export_dataset` produces: the layouts `import_dataset` reads.

Each writer takes a folder, the items (`ExportItem`, one at a time) and the data set's ordered
classes, writes the format's files and copies the images' original bytes, and returns what it
wrote, left out and approximated (`ExportCounts`), without touching the database;
`labeling.exporters.services.dataset_export` reads the rows and owns the output folder.
"""

from __future__ import annotations

from labeling.exporters.coco import write_coco
from labeling.exporters.common import DatasetExportError, ExportAnnotation, ExportCounts, ExportItem
from labeling.exporters.labelstudio import write_labelstudio
from labeling.exporters.voc import write_voc
from labeling.exporters.yolo import write_yolo

WRITERS = {
    "coco": write_coco,
    "yolo": write_yolo,
    "voc": write_voc,
    "labelstudio": write_labelstudio,
}
FORMATS = tuple(WRITERS)
# The only format that carries model predictions.
PREDICTIONS_FORMAT = "labelstudio"

__all__ = [
    "FORMATS",
    "PREDICTIONS_FORMAT",
    "WRITERS",
    "DatasetExportError",
    "ExportAnnotation",
    "ExportCounts",
    "ExportItem",
]
