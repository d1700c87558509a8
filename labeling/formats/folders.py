"""Image classification folders, read only: `<class>/image.jpg`, the folder's name the class of every
image under it (`parse_folders`). Layout in docs/data-formats.md."""

from __future__ import annotations

from pathlib import Path

from labeling.formats.masks import class_folders
from labeling.formats.reading import (
    AnnotationRecord,
    BadInput,
    DatasetFormatError,
    ImportRecord,
    ParseResult,
    image_files,
    inspect_image,
    is_no_defect_name,
    relative_name,
)


def parse_folders(path: Path) -> ParseResult:
    """Read a classification-folder data set; see docs/data-formats.md."""
    result = ParseResult()
    for class_folder in class_folders(path):
        label = class_folder.name
        if is_no_defect_name(label):
            annotation = AnnotationRecord(kind="no_defect")
        else:
            annotation = AnnotationRecord(kind="class", label=label)
        for image_path in image_files(class_folder):
            try:
                image = inspect_image(image_path)
            except BadInput as error:
                result.bad(image_path, str(error))
                continue
            result.add(ImportRecord(relative_name(image_path, path), image, [annotation]))
    if not result.records and not result.bad_files:
        raise DatasetFormatError(f"{path}: no images found in its class folders")
    return result
