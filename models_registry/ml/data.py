"""Turning `Sample`s into network views at the model's geometry: a `PreparedFrame` decoded once,
the views cut from it (`ViewSampler`), augmentation, and measuring a data set (docs/model.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from models_registry.ml.frames import frame_decode, frame_header
from models_registry.ml.geometry import TILES, Geometry, cells, crop
from models_registry.ml.layout import MASK_STRIDE
from models_registry.ml.types import Sample

# Box-derived masks are a coarse guess at the defect's pixels: they count for less.
BOX_MASK_WEIGHT = 0.3
# The smallest piece of a box a tile keeps (content pixels a side): what the tile can show.
MIN_PIECE = 2.0


@dataclass
class PreparedFrame:
    """A labelled frame at the geometry's content scale, decoded once for a whole training."""

    key: str
    pixels: np.ndarray  # uint8 content_height x content_width x 3
    defective: float  # 1, 0, or -1 when unknown
    class_target: np.ndarray | None  # C, sums to 1, for defective samples with known classes
    boxes: np.ndarray  # N x 4 (x1, y1, x2, y2) in content pixels
    box_labels: np.ndarray  # N class indices
    mask: np.ndarray | None  # float 0/1 on content cells (MASK_STRIDE pixels), max-pooled
    mask_weight: float
    has_geometry: bool  # the absence of a box/mask here is meaningful (labelled or known good)
    original_size: tuple[int, int]

    @property
    def content_size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass
class PreparedSample:
    """One network view with its targets (what a training step sees)."""

    pixels: np.ndarray  # uint8 H x W x 3
    defective: float
    class_target: np.ndarray | None
    boxes: np.ndarray  # N x 4 in view pixels
    box_labels: np.ndarray
    mask: np.ndarray | None  # H/4 x W/4 cells
    mask_weight: float
    has_geometry: bool


def _polygon_mask(
    points: Sequence[Sequence[float]], scale_x: float, scale_y: float, size: tuple[int, int]
) -> np.ndarray:
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon([(x * scale_x, y * scale_y) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def load_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    """A binary mask (non-zero = defect) at `size` (width, height) content pixels."""
    with Image.open(path) as mask:
        mask = mask.convert("L")
        if mask.size != size:
            mask = mask.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(mask, dtype=np.uint8) >= 64


def pool_cells(mask: np.ndarray) -> np.ndarray:
    """A pixel mask max-pooled onto MASK_STRIDE x MASK_STRIDE cells (any defect pixel counts)."""
    rows, columns = cells(mask.shape[0]), cells(mask.shape[1])
    padded = np.zeros((rows * MASK_STRIDE, columns * MASK_STRIDE), np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(rows, MASK_STRIDE, columns, MASK_STRIDE).max(axis=(1, 3))


def boxes_from_mask(
    mask: np.ndarray, min_area: int = 4, join_distance: int = 3
) -> list[tuple[float, float, float, float]]:
    """Connected components of a binary mask as boxes; nearby fragments (a broken crack) join."""
    mask = mask > 0.5
    joined = ndimage.binary_dilation(mask, iterations=join_distance) if join_distance else mask
    labelled, count = ndimage.label(joined)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        if found is None:
            continue
        component = (labelled[found] == index) & mask[found]
        if component.sum() < min_area:
            continue
        ys, xs = np.nonzero(component)
        y0, x0 = found[0].start + ys.min(), found[1].start + xs.min()
        y1, x1 = found[0].start + ys.max() + 1, found[1].start + xs.max() + 1
        boxes.append((float(x0), float(y0), float(x1), float(y1)))
    return boxes


def prepare_frame(sample: Sample, classes: Sequence[str], geometry: Geometry) -> PreparedFrame:
    index = {name: i for i, name in enumerate(classes)}
    header = frame_header(sample.image_path)
    frame = frame_decode(sample.image_path, at_least=geometry.decode_size(header.width, header.height))
    pixels = geometry.content(frame.pixels, frame.width, frame.height)
    content_size = (int(pixels.shape[1]), int(pixels.shape[0]))
    scale_x, scale_y = content_size[0] / frame.width, content_size[1] / frame.height
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
        polygon = _polygon_mask(points, scale_x, scale_y, content_size)
        mask = polygon if mask is None else mask | polygon
        if label in index:
            derived_boxes += [(b, index[label]) for b in boxes_from_mask(polygon, join_distance=0)]
    for label, path in sample.mask_paths:
        painted = load_mask(path, content_size)
        mask = painted if mask is None else mask | painted
        if label in index:
            derived_boxes += [(b, index[label]) for b in boxes_from_mask(painted)]
    mask_weight = 1.0 if mask is not None else 0.0
    if not boxes and derived_boxes:
        boxes = [b for b, _ in derived_boxes]
        labels = [label for _, label in derived_boxes]
    if mask is None and boxes:
        mask = np.zeros((content_size[1], content_size[0]), bool)
        for x1, y1, x2, y2 in boxes:
            mask[int(y1) : int(math.ceil(y2)), int(x1) : int(math.ceil(x2))] = True
        mask_weight = BOX_MASK_WEIGHT
    if mask is None and sample.defective is False:
        mask = np.zeros((content_size[1], content_size[0]), bool)
        mask_weight = 1.0

    known_classes = [index[c] for c in sample.classes if c in index] or sorted(set(labels))
    defective = sample.defective
    if defective is None and (boxes or known_classes):
        defective = True
    return PreparedFrame(
        key=sample.key,
        pixels=pixels,
        defective=-1.0 if defective is None else float(defective),
        class_target=_class_target(known_classes, len(classes)),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, np.int64),
        mask=None if mask is None else pool_cells(mask),
        mask_weight=mask_weight,
        has_geometry=bool(boxes) or mask is not None or defective is False,
        original_size=(frame.width, frame.height),
    )


def _class_target(indices: Sequence[int], count: int) -> np.ndarray | None:
    if not len(indices):
        return None
    target = np.zeros(count, np.float32)
    target[list(indices)] = 1.0
    return target / target.sum()


def prepare_frames(
    samples: Sequence[Sample], classes: Sequence[str], geometry: Geometry, workers: int = 2
) -> list[PreparedFrame]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: prepare_frame(s, classes, geometry), samples))


# --- Views: what a training step sees ----------------------------------------------------------


def view_of(
    frame: PreparedFrame, x: int, y: int, width: int, height: int, *, whole: bool, num_classes: int
) -> PreparedSample:
    """The view of `frame` at content position (`x`, `y`) (multiples of MASK_STRIDE), with its
    targets: boxes cut to the view, the mask's cells, and a label the view itself shows.
    `whole` says the view holds the whole frame, so image-level labels apply to it as they are."""
    boxes = frame.boxes - np.array([x, y, x, y], np.float32)
    if len(boxes):
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    visible = (boxes[:, 2] - boxes[:, 0] >= MIN_PIECE) & (boxes[:, 3] - boxes[:, 1] >= MIN_PIECE)
    boxes, labels = boxes[visible], frame.box_labels[visible]
    mask = None
    if frame.mask is not None:
        mask = crop(
            frame.mask, x // MASK_STRIDE, y // MASK_STRIDE, width // MASK_STRIDE, height // MASK_STRIDE, 0
        )
    if whole:
        defective, class_target = frame.defective, frame.class_target
    elif not frame.has_geometry:
        # A frame failed without regions: where its defect lies is unknown, so is this tile's label.
        defective, class_target = (0.0 if frame.defective == 0 else -1.0), None
    elif len(boxes):
        defective, class_target = 1.0, _class_target(sorted(set(labels.tolist())), num_classes)
    else:
        defective, class_target = 0.0, None
    return PreparedSample(
        pixels=crop(frame.pixels, x, y, width, height),
        defective=defective,
        class_target=class_target,
        boxes=boxes,
        box_labels=labels,
        mask=mask,
        mask_weight=frame.mask_weight,
        has_geometry=frame.has_geometry,
    )


class ViewSampler:
    """The training views of a set of frames, one per frame and epoch.

    Whole-frame geometries give each frame's one view, every epoch the same. Tiles are drawn at
    the serving scale, `crop` content pixels a side (the network is fully convolutional, so a
    crop smaller than the served tile trains the same weights for less): for a frame with
    defects, half the time around one of them chosen at random, placed at a random spot of the
    crop (so small, rare defects are seen), otherwise anywhere in the frame (most such crops are
    defect-free, which keeps false alarms down).
    """

    def __init__(
        self, frames: Sequence[PreparedFrame], geometry: Geometry, num_classes: int, crop: int | None = None
    ):
        self.frames = frames
        self.geometry = geometry
        self.num_classes = num_classes
        self.crop = min(crop or geometry.width, geometry.width)
        self._whole = None
        if geometry.kind != TILES:
            self._whole = [
                self._view(f, *geometry.view_offsets(*f.content_size)[0], whole=True) for f in frames
            ]

    def _view(self, frame: PreparedFrame, x: int, y: int, *, whole: bool) -> PreparedSample:
        width, height = (self.geometry.width, self.geometry.height) if whole else (self.crop, self.crop)
        return view_of(frame, x, y, width, height, whole=whole, num_classes=self.num_classes)

    def __len__(self) -> int:
        return len(self.frames)

    def epoch(self, rng: np.random.Generator) -> list[PreparedSample]:
        if self._whole is not None:
            return self._whole
        side = self.crop
        views = []
        for frame in self.frames:
            width, height = frame.content_size
            if width <= self.geometry.width and height <= self.geometry.height:
                # the frame fits one tile: served whole, so trained whole
                views.append(self._view(frame, 0, 0, whole=True))
                continue
            if len(frame.boxes) and rng.random() < 0.5:
                x1, y1, x2, y2 = frame.boxes[rng.integers(len(frame.boxes))]
                x = _around(rng, (x1 + x2) / 2, side, width)
                y = _around(rng, (y1 + y2) / 2, side, height)
            else:
                x = _snap(rng.uniform(0, max(0, width - side)))
                y = _snap(rng.uniform(0, max(0, height - side)))
            views.append(self._view(frame, x, y, whole=False))
        return views


def _snap(value: float) -> int:
    return int(value) // MASK_STRIDE * MASK_STRIDE


def _around(rng: np.random.Generator, centre: float, side: int, length: int) -> int:
    """A tile start (content pixels) with `centre` inside the tile, a quarter tile from its edges."""
    margin = side / 4
    low = max(0.0, centre - side + margin)
    high = min(max(0.0, length - side), centre - margin)
    return _snap(rng.uniform(low, max(low, high)))


# --- Augmentation ------------------------------------------------------------------------------


def augment(sample: PreparedSample, rng: np.random.Generator) -> PreparedSample:
    """Flips and a mild photometric jitter (lighting on a line drifts; geometry mostly doesn't)."""
    pixels, mask, boxes = sample.pixels, sample.mask, sample.boxes.copy()
    height, width = pixels.shape[:2]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if rng.random() < 0.5:
        pixels = pixels[::-1]
        mask = None if mask is None else mask[::-1]
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    gain = rng.uniform(0.85, 1.15)
    bias = rng.uniform(-12, 12)
    pixels = np.clip(pixels.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return PreparedSample(
        pixels=pixels,
        defective=sample.defective,
        class_target=sample.class_target,
        boxes=boxes,
        box_labels=sample.box_labels,
        mask=None if mask is None else np.ascontiguousarray(mask),
        mask_weight=sample.mask_weight,
        has_geometry=sample.has_geometry,
    )


# --- What the data looks like (for choosing a geometry) -----------------------------------------

MEASURED_DEFECTIVE = 300


def measure_samples(samples: Sequence[Sample]) -> tuple[list[tuple[int, int]], list[tuple[float, float]]]:
    """The frames' sizes (from their headers) and, for up to MEASURED_DEFECTIVE samples with
    regions, each defect's area as a share of its frame and its thickness in pixels (area over
    the box's diagonal: a line's width, about half a blob's diameter)."""
    sizes: list[tuple[int, int]] = []
    defects: list[tuple[float, float]] = []
    measured = 0
    for sample in samples:
        header = frame_header(sample.image_path)
        sizes.append((header.width, header.height))
        if measured >= MEASURED_DEFECTIVE or not (sample.boxes or sample.polygons or sample.mask_paths):
            continue
        measured += 1
        frame_area = float(header.width * header.height)
        regions: list[tuple[float, float, float]] = []  # pixel area, box width, box height
        for _, path in sample.mask_paths:
            with Image.open(path) as picture:
                mask = np.asarray(picture.convert("L"), dtype=np.uint8) >= 128
            labelled, _ = ndimage.label(mask, structure=np.ones((3, 3)))
            for index, found in enumerate(ndimage.find_objects(labelled), start=1):
                if found is not None:
                    pixels = float((labelled[found] == index).sum())
                    regions.append((pixels, found[1].stop - found[1].start, found[0].stop - found[0].start))
        for _, points in sample.polygons:
            xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
            area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
            regions.append((area, float(np.ptp(xs)), float(np.ptp(ys))))
        if not regions:
            regions = [(box.width * box.height, box.width, box.height) for box in sample.boxes]
        for area, width, height in regions:
            defects.append((area / frame_area, area / max(1.0, math.hypot(width, height))))
    return sizes, defects
