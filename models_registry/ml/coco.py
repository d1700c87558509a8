"""COCO instance files, the one codec: masks to and from RLE, and the `annotations.json` document
that the synthetic generator and the data set export both write (`CocoWriter`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SUPERCATEGORY = "defect"


def mask_to_coco_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a boolean HxW mask: column-major runs, the first one of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return {"size": list(mask.shape), "counts": []}
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(run) for run in counts]}


def decode_compressed_counts(counts: str) -> list[int]:
    """Run lengths from COCO's compressed RLE string (pycocotools' `rleFrString`); ValueError if
    the string is not one."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = 0
        shift = 0
        more = True
        while more:
            if position >= len(counts):
                raise ValueError("compressed RLE ends in the middle of a number")
            chunk = ord(counts[position]) - 48
            if not 0 <= chunk < 64:
                raise ValueError(f"compressed RLE has an invalid character {counts[position]!r}")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def coco_rle_to_mask(rle: dict) -> np.ndarray:
    """The boolean (height, width) mask of a COCO RLE, uncompressed (`counts` a list) or compressed
    (a string): inverse of `mask_to_coco_rle`. ValueError if the RLE is malformed."""
    size = rle.get("size")
    if not isinstance(size, list) or len(size) != 2:
        raise ValueError(f"RLE size {size} is not [height, width]")
    height, width = int(size[0]), int(size[1])
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = decode_compressed_counts(counts)
    elif isinstance(counts, list) and all(
        isinstance(run, int) and not isinstance(run, bool) for run in counts
    ):
        runs = counts
    else:
        raise ValueError("RLE counts must be a list of integers or a compressed string")
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise ValueError(f"RLE runs cover {sum(runs)} pixels, the image has {height * width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((width, height)).T.copy()


class CocoWriter:
    """An `annotations.json` being filled: categories in order (ids from 1, a name met first in an
    annotation is appended), images and annotations numbered from 1 as they are added."""

    def __init__(self, categories: tuple[str, ...] | list[str] = ()) -> None:
        self.categories: list[str] = []
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        for name in categories:
            self.category_id(name)

    def category_id(self, name: str) -> int:
        if name not in self.categories:
            self.categories.append(name)
        return self.categories.index(name) + 1

    def add_image(self, file_name: str, width: int, height: int) -> int:
        """Add an image; return its id."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        return image_id

    def add_annotation(
        self, image_id: int, label: str, *, bbox: list, area: float, segmentation: dict | list
    ) -> None:
        """One object (`iscrowd` 0: a single object, which loaders such as torchvision keep)."""
        self.annotations.append(
            {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": self.category_id(label),
                "bbox": bbox,
                "area": area,
                "segmentation": segmentation,
                "iscrowd": 0,
            }
        )

    def document(self, info: dict) -> dict:
        return {
            "info": info,
            "licenses": [],
            "categories": [
                {"id": number, "name": name, "supercategory": SUPERCATEGORY}
                for number, name in enumerate(self.categories, start=1)
            ],
            "images": self.images,
            "annotations": self.annotations,
        }

    def write(self, path: Path, *, info: dict) -> None:
        """Write the document to `path` as compact JSON."""
        Path(path).write_text(json.dumps(self.document(info), separators=(",", ":")), encoding="utf-8")
