"""DefectNet's training targets for a batch of views: CenterNet heatmaps, box sizes and offsets
at `DETECTION_STRIDE`, masks at `MASK_STRIDE`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_registry.ml.data import PreparedSample
from models_registry.ml.layout import DETECTION_STRIDE, MASK_STRIDE


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift keeping IoU above `min_overlap`."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


@dataclass
class BatchTargets:
    images: np.ndarray  # B x H x W x 3 uint8
    defective: np.ndarray  # B, -1 unknown
    class_target: np.ndarray  # B x C
    class_weight: np.ndarray  # B
    heatmap: np.ndarray  # B x C x H x W
    geometry_weight: np.ndarray  # B
    size: np.ndarray  # B x 2 x H x W (log of box size in cells)
    offset: np.ndarray  # B x 2 x H x W
    centre_mask: np.ndarray  # B x H x W
    mask: np.ndarray  # B x 1 x H/4 x W/4
    mask_weight: np.ndarray  # B


def build_targets(batch: Sequence[PreparedSample], num_classes: int) -> BatchTargets:
    height, width = batch[0].pixels.shape[:2]
    rows, columns = height // DETECTION_STRIDE, width // DETECTION_STRIDE
    b = len(batch)
    heatmap = np.zeros((b, num_classes, rows, columns), np.float32)
    box_size = np.zeros((b, 2, rows, columns), np.float32)
    offset = np.zeros((b, 2, rows, columns), np.float32)
    centre_mask = np.zeros((b, rows, columns), np.float32)
    masks = np.zeros((b, 1, height // MASK_STRIDE, width // MASK_STRIDE), np.float32)
    class_target = np.zeros((b, num_classes), np.float32)
    class_weight = np.zeros(b, np.float32)
    ys, xs = np.mgrid[0:rows, 0:columns].astype(np.float32)
    for i, sample in enumerate(batch):
        if sample.class_target is not None:
            class_target[i] = sample.class_target
            class_weight[i] = 1.0
        if sample.mask is not None:
            masks[i, 0] = sample.mask
        for (x1, y1, x2, y2), label in zip(sample.boxes, sample.box_labels, strict=True):
            w, h = (x2 - x1) / DETECTION_STRIDE, (y2 - y1) / DETECTION_STRIDE
            if w <= 0 or h <= 0:
                continue
            cx, cy = (x1 + x2) / 2 / DETECTION_STRIDE, (y1 + y2) / 2 / DETECTION_STRIDE
            ix, iy = min(int(cx), columns - 1), min(int(cy), rows - 1)
            sigma = max(0.0, gaussian_radius(h, w)) / 3 + 1 / 3
            gaussian = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            np.maximum(heatmap[i, label], gaussian, out=heatmap[i, label])
            heatmap[i, label, iy, ix] = 1.0
            box_size[i, :, iy, ix] = (math.log(w), math.log(h))
            offset[i, :, iy, ix] = (min(max(cx - ix, 0.0), 1.0), min(max(cy - iy, 0.0), 1.0))
            centre_mask[i, iy, ix] = 1.0
    return BatchTargets(
        images=np.stack([s.pixels for s in batch]),
        defective=np.asarray([s.defective for s in batch], np.float32),
        class_target=class_target,
        class_weight=class_weight,
        heatmap=heatmap,
        geometry_weight=np.asarray([1.0 if s.has_geometry else 0.0 for s in batch], np.float32),
        size=box_size,
        offset=offset,
        centre_mask=centre_mask,
        mask=masks,
        mask_weight=np.asarray([s.mask_weight for s in batch], np.float32),
    )
