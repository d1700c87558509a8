"""Turning `Sample`s into network inputs and targets.

Images are decoded once, at the network's input size, and kept in memory (a few hundred MB
for thousands of images); augmentation and target drawing happen per batch in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from models_registry.ml.layout import DETECTION_STRIDE, MASK_STRIDE
from models_registry.ml.preprocessing import load_image, load_mask
from models_registry.ml.types import Sample

# Box-derived masks are a coarse guess at the defect's pixels: they count for less.
BOX_MASK_WEIGHT = 0.3


@dataclass
class PreparedSample:
    key: str
    pixels: np.ndarray  # uint8 S x S x 3
    defective: float  # 1, 0, or -1 when unknown
    class_target: np.ndarray | None  # C, sums to 1, for defective samples with known classes
    boxes: np.ndarray  # N x 4 (x1, y1, x2, y2) in input pixels
    box_labels: np.ndarray  # N class indices
    mask: np.ndarray | None  # S x S float 0/1
    mask_weight: float
    has_geometry: bool  # the absence of a box/mask here is meaningful (labelled or known good)
    original_size: tuple[int, int]


def _polygon_mask(points: Sequence[Sequence[float]], scale_x: float, scale_y: float, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(x * scale_x, y * scale_y) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=np.float32)


def boxes_from_mask(
    mask: np.ndarray, min_area: int = 4, join_distance: int = 3
) -> list[tuple[float, float, float, float]]:
    """Connected components of a binary mask as boxes; nearby fragments (a broken crack) join."""
    joined = ndimage.binary_dilation(mask > 0.5, iterations=join_distance) if join_distance else mask > 0.5
    labelled, count = ndimage.label(joined)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        if found is None:
            continue
        component = (labelled[found] == index) & (mask[found] > 0.5)
        if component.sum() < min_area:
            continue
        ys, xs = np.nonzero(component)
        y0, x0 = found[0].start + ys.min(), found[1].start + xs.min()
        y1, x1 = found[0].start + ys.max() + 1, found[1].start + xs.max() + 1
        boxes.append((float(x0), float(y0), float(x1), float(y1)))
    return boxes


def prepare_sample(sample: Sample, classes: Sequence[str], input_size: int) -> PreparedSample:
    index = {name: i for i, name in enumerate(classes)}
    loaded = load_image(sample.image_path, input_size)
    scale_x = input_size / loaded.original_width
    scale_y = input_size / loaded.original_height
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    for box in sample.boxes:
        if box.label not in index:
            continue
        boxes.append((box.x * scale_x, box.y * scale_y, box.x2 * scale_x, box.y2 * scale_y))
        labels.append(index[box.label])

    mask = None
    derived_boxes: list[tuple[tuple[float, float, float, float], int]] = []
    for label, points in sample.polygons:
        polygon = _polygon_mask(points, scale_x, scale_y, input_size)
        mask = polygon if mask is None else np.maximum(mask, polygon)
        if label in index:
            derived_boxes += [(b, index[label]) for b in boxes_from_mask(polygon, join_distance=0)]
    for label, path in sample.mask_paths:
        painted = load_mask(path, input_size)
        mask = painted if mask is None else np.maximum(mask, painted)
        if label in index:
            derived_boxes += [(b, index[label]) for b in boxes_from_mask(painted)]
    mask_weight = 1.0 if mask is not None else 0.0
    if not boxes and derived_boxes:
        boxes = [b for b, _ in derived_boxes]
        labels = [label for _, label in derived_boxes]
    if mask is None and boxes:
        mask = np.zeros((input_size, input_size), np.float32)
        for x1, y1, x2, y2 in boxes:
            mask[int(y1) : int(math.ceil(y2)), int(x1) : int(math.ceil(x2))] = 1.0
        mask_weight = BOX_MASK_WEIGHT
    if mask is None and sample.defective is False:
        mask = np.zeros((input_size, input_size), np.float32)
        mask_weight = 1.0

    known_classes = [index[c] for c in sample.classes if c in index] or sorted(set(labels))
    class_target = None
    if known_classes:
        class_target = np.zeros(len(classes), np.float32)
        class_target[known_classes] = 1.0
        class_target /= class_target.sum()
    defective = sample.defective
    if defective is None and (boxes or known_classes):
        defective = True
    return PreparedSample(
        key=sample.key,
        pixels=loaded.pixels,
        defective=-1.0 if defective is None else float(defective),
        class_target=class_target,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, np.int64),
        mask=mask,
        mask_weight=mask_weight,
        has_geometry=bool(boxes) or mask is not None or defective is False,
        original_size=(loaded.original_width, loaded.original_height),
    )


def prepare_samples(
    samples: Sequence[Sample], classes: Sequence[str], input_size: int, workers: int = 2
) -> list[PreparedSample]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: prepare_sample(s, classes, input_size), samples))


# --- Augmentation and targets ------------------------------------------------------------------


def augment(sample: PreparedSample, rng: np.random.Generator) -> PreparedSample:
    """Flips and a mild photometric jitter (lighting on a line drifts; geometry mostly doesn't)."""
    pixels, mask, boxes = sample.pixels, sample.mask, sample.boxes.copy()
    size = pixels.shape[1]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
        boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
    if rng.random() < 0.5:
        pixels = pixels[::-1]
        mask = None if mask is None else mask[::-1]
        boxes[:, [1, 3]] = size - boxes[:, [3, 1]]
    gain = rng.uniform(0.85, 1.15)
    bias = rng.uniform(-12, 12)
    pixels = np.clip(pixels.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return PreparedSample(
        key=sample.key,
        pixels=pixels,
        defective=sample.defective,
        class_target=sample.class_target,
        boxes=boxes,
        box_labels=sample.box_labels,
        mask=None if mask is None else np.ascontiguousarray(mask),
        mask_weight=sample.mask_weight,
        has_geometry=sample.has_geometry,
        original_size=sample.original_size,
    )


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
    images: np.ndarray  # B x S x S x 3 uint8
    defective: np.ndarray  # B, -1 unknown
    class_target: np.ndarray  # B x C
    class_weight: np.ndarray  # B
    heatmap: np.ndarray  # B x C x H x W
    geometry_weight: np.ndarray  # B
    size: np.ndarray  # B x 2 x H x W (log of box size in cells)
    offset: np.ndarray  # B x 2 x H x W
    centre_mask: np.ndarray  # B x H x W
    mask: np.ndarray  # B x 1 x S/4 x S/4
    mask_weight: np.ndarray  # B


def build_targets(batch: Sequence[PreparedSample], num_classes: int) -> BatchTargets:
    size = batch[0].pixels.shape[0]
    cells = size // DETECTION_STRIDE
    mask_cells = size // MASK_STRIDE
    b = len(batch)
    heatmap = np.zeros((b, num_classes, cells, cells), np.float32)
    box_size = np.zeros((b, 2, cells, cells), np.float32)
    offset = np.zeros((b, 2, cells, cells), np.float32)
    centre_mask = np.zeros((b, cells, cells), np.float32)
    masks = np.zeros((b, 1, mask_cells, mask_cells), np.float32)
    class_target = np.zeros((b, num_classes), np.float32)
    class_weight = np.zeros(b, np.float32)
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
    for i, sample in enumerate(batch):
        if sample.class_target is not None:
            class_target[i] = sample.class_target
            class_weight[i] = 1.0
        if sample.mask is not None:
            pooled = sample.mask.reshape(mask_cells, MASK_STRIDE, mask_cells, MASK_STRIDE).max(axis=(1, 3))
            masks[i, 0] = pooled
        for (x1, y1, x2, y2), label in zip(sample.boxes, sample.box_labels, strict=True):
            w, h = (x2 - x1) / DETECTION_STRIDE, (y2 - y1) / DETECTION_STRIDE
            if w <= 0 or h <= 0:
                continue
            cx, cy = (x1 + x2) / 2 / DETECTION_STRIDE, (y1 + y2) / 2 / DETECTION_STRIDE
            ix, iy = min(int(cx), cells - 1), min(int(cy), cells - 1)
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
