"""From the network's outputs to a `Prediction`: shared by the torch and ONNX predictors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_registry.ml.calibration import Calibration, outcome_probabilities
from models_registry.ml.geometry import cells
from models_registry.ml.layout import DETECTION_STRIDE, MASK_STRIDE
from models_registry.ml.types import NO_DEFECT, Region

# What an inspector can take in at a glance; evaluation reads more (`decode_detections`'s top_k).
MAX_REGIONS = 20


@dataclass(frozen=True)
class Detection:
    class_index: int
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


def decode_detections(
    peaks: np.ndarray,
    box_size: np.ndarray,
    box_offset: np.ndarray,
    *,
    top_k: int = 50,
    min_score: float = 0.01,
) -> list[Detection]:
    """Top-scoring centre peaks of one image as boxes in network-input pixels."""
    classes, height, width = peaks.shape
    flat = peaks.reshape(-1)
    k = min(top_k, flat.size)
    candidates = np.argpartition(-flat, k - 1)[:k]
    candidates = candidates[flat[candidates] >= min_score]
    candidates = candidates[np.argsort(-flat[candidates])]
    detections = []
    for index in candidates:
        class_index, cell = divmod(int(index), height * width)
        y, x = divmod(cell, width)
        box_w = float(np.exp(box_size[0, y, x])) * DETECTION_STRIDE
        box_h = float(np.exp(box_size[1, y, x])) * DETECTION_STRIDE
        centre_x = (x + float(box_offset[0, y, x])) * DETECTION_STRIDE
        centre_y = (y + float(box_offset[1, y, x])) * DETECTION_STRIDE
        detections.append(
            Detection(
                class_index,
                float(flat[index]),
                centre_x - box_w / 2,
                centre_y - box_h / 2,
                centre_x + box_w / 2,
                centre_y + box_h / 2,
            )
        )
    return detections


@dataclass(frozen=True, eq=False)
class FrameOutputs:
    """The network's outputs for one frame, merged over its views, in content pixels."""

    defect_logit: float
    class_logits: np.ndarray  # C
    detections: tuple[Detection, ...]  # merged across views, best first
    mask: np.ndarray  # probabilities on content cells of MASK_STRIDE pixels
    embedding: np.ndarray
    content_width: int
    content_height: int


# Detections from neighbouring tiles join only when both are this sure: a faint detection next
# to a real one must not stretch it.
MERGE_MIN_SCORE = 0.1
NMS_IOU = 0.5


def merge_views(
    offsets: Sequence[tuple[int, int]],
    outputs: dict[str, np.ndarray],
    *,
    content_width: int,
    content_height: int,
    top_k: int = 50,
    min_score: float = 0.01,
) -> FrameOutputs:
    """One frame's outputs from its views' rows of the graph's outputs (`offsets[k]` is row k's
    position in content pixels): the surest view's image logits, regions merged across tile
    seams, masks stitched cell for cell."""
    view_heights, view_widths = outputs["mask"].shape[2:]
    canvas = np.zeros((cells(content_height), cells(content_width)), np.float32)
    found: list[list[Detection]] = []
    for row, (x, y) in enumerate(offsets):
        shifted = []
        for d in decode_detections(
            outputs["peaks"][row], outputs["box_size"][row], outputs["box_offset"][row],
            top_k=top_k, min_score=min_score,
        ):  # fmt: skip
            centre_x, centre_y = (d.x1 + d.x2) / 2 + x, (d.y1 + d.y2) / 2 + y
            if not (0 <= centre_x < content_width and 0 <= centre_y < content_height):
                continue  # centred in a letterbox bar or past the frame's edge
            clipped = Detection(
                d.class_index, d.score,
                max(0.0, d.x1 + x), max(0.0, d.y1 + y),
                min(float(content_width), d.x2 + x), min(float(content_height), d.y2 + y),
            )  # fmt: skip
            if clipped.x2 > clipped.x1 and clipped.y2 > clipped.y1:
                shifted.append(clipped)
        found.append(shifted)
        _paste_max(canvas, outputs["mask"][row, 0], x // MASK_STRIDE, y // MASK_STRIDE)
    best = int(np.argmax(outputs["defect_logit"][: len(offsets)]))
    detections = found[0] if len(found) == 1 else merge_across_views(found)
    return FrameOutputs(
        defect_logit=float(outputs["defect_logit"][best]),
        class_logits=np.asarray(outputs["class_logits"][best], np.float64),
        detections=tuple(sorted(detections, key=lambda d: -d.score)),
        mask=canvas,
        embedding=np.asarray(outputs["embedding"][: len(offsets)], np.float32).mean(axis=0),
        content_width=content_width,
        content_height=content_height,
    )


def _paste_max(canvas: np.ndarray, tile: np.ndarray, column: int, row: int) -> None:
    top, left = max(0, row), max(0, column)
    bottom = min(canvas.shape[0], row + tile.shape[0])
    right = min(canvas.shape[1], column + tile.shape[1])
    if bottom > top and right > left:
        target = canvas[top:bottom, left:right]
        np.maximum(target, tile[top - row : bottom - row, left - column : right - column], out=target)


def merge_across_views(found: Sequence[Sequence[Detection]]) -> list[Detection]:
    """Detections of neighbouring tiles as one set of regions.

    A defect cut by a seam is seen in pieces, each reaching into the tiles' shared strip; pieces
    of one class from different tiles whose boxes meet become their union (greedy, as SAHI's
    non-maximum merging, but on contact rather than overlap ratio, so a diagonal scratch joins).
    Then class-wise NMS removes what two tiles both saw whole.
    """
    merged: list[Detection] = []
    for class_index in sorted({d.class_index for view in found for d in view}):
        boxes = [
            (view, d)
            for view, detections in enumerate(found)
            for d in detections
            if d.class_index == class_index
        ]
        sure = [i for i, (_, d) in enumerate(boxes) if d.score >= MERGE_MIN_SCORE]
        touching = [
            (i, j)
            for position, i in enumerate(sure)
            for j in sure[position + 1 :]
            if boxes[i][0] != boxes[j][0] and _boxes_meet(boxes[i][1], boxes[j][1])
        ]
        groups: dict[int, list[Detection]] = {}
        for i, group in enumerate(_connected(len(boxes), touching)):
            groups.setdefault(group, []).append(boxes[i][1])
        joined = [
            Detection(
                class_index,
                max(d.score for d in group),
                min(d.x1 for d in group),
                min(d.y1 for d in group),
                max(d.x2 for d in group),
                max(d.y2 for d in group),
            )
            for group in groups.values()
        ]
        merged += non_maximum_suppression(joined, NMS_IOU)
    return merged


def _boxes_meet(a: Detection, b: Detection) -> bool:
    return a.x1 <= b.x2 and b.x1 <= a.x2 and a.y1 <= b.y2 and b.y1 <= a.y2


def _connected(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """The group (a representative index) of each of `count` nodes joined by `edges`."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in edges:
        parent[root(i)] = root(j)
    return [root(i) for i in range(count)]


def non_maximum_suppression(detections: Sequence[Detection], iou: float) -> list[Detection]:
    ordered = sorted(detections, key=lambda d: -d.score)
    if len(ordered) < 2:
        return list(ordered)
    boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in ordered])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    suppressed = np.zeros(len(ordered), bool)
    for i in range(len(ordered)):
        if suppressed[i]:
            continue
        kept.append(i)
        x1 = np.maximum(boxes[i, 0], boxes[:, 0])
        y1 = np.maximum(boxes[i, 1], boxes[:, 1])
        x2 = np.minimum(boxes[i, 2], boxes[:, 2])
        y2 = np.minimum(boxes[i, 3], boxes[:, 3])
        intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        overlap = intersection / np.maximum(areas[i] + areas - intersection, 1e-9)
        suppressed |= overlap >= iou
    return [ordered[i] for i in kept]


def run_length_encode(mask: np.ndarray) -> dict:
    """Row-major run lengths, starting with a run of zeros: {"size": [h, w], "counts": [...]}."""
    flat = mask.reshape(-1).astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(boundaries).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def box_mask(mask: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """The stitched mask (content cells) resampled onto a grid covering exactly the box (content
    pixels), one grid cell per mask cell it spans: what a page draws inside the region's box."""
    columns = max(1, int(round((x2 - x1) / MASK_STRIDE)))
    rows = max(1, int(round((y2 - y1) / MASK_STRIDE)))
    xs = ((x1 + (np.arange(columns) + 0.5) * (x2 - x1) / columns) // MASK_STRIDE).astype(int)
    ys = ((y1 + (np.arange(rows) + 0.5) * (y2 - y1) / rows) // MASK_STRIDE).astype(int)
    xs = np.clip(xs, 0, mask.shape[1] - 1)
    ys = np.clip(ys, 0, mask.shape[0] - 1)
    return mask[np.ix_(ys, xs)] >= 0.5


def regions_from_outputs(
    frame: FrameOutputs,
    *,
    classes: Sequence[str],
    scale: tuple[float, float],
    width: int,
    height: int,
    threshold: float,
) -> tuple[Region, ...]:
    """Regions above `threshold`, in original image pixels (`scale`: content pixels per original
    pixel), each with the mask inside its box."""
    scale_x, scale_y = scale
    regions = []
    for detection in frame.detections:
        if detection.score < threshold or len(regions) == MAX_REGIONS:
            break
        x1, y1 = detection.x1 / scale_x, detection.y1 / scale_y
        x2, y2 = min(float(width), detection.x2 / scale_x), min(float(height), detection.y2 / scale_y)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        inside = box_mask(frame.mask, detection.x1, detection.y1, detection.x2, detection.y2)
        regions.append(
            Region(
                x=x1,
                y=y1,
                width=x2 - x1,
                height=y2 - y1,
                label=classes[detection.class_index],
                score=detection.score,
                mask_rle=run_length_encode(inside) if inside.any() else None,
            )
        )
    return tuple(regions)


def regions_from_mask(
    frame: FrameOutputs, *, label: str, scale: tuple[float, float], threshold: float = 0.5
) -> tuple[Region, ...]:
    """Connected areas of the stitched probability map above `threshold`, scored by their peak,
    in original pixels (the cold-start anomaly model's regions)."""
    from scipy import ndimage

    mask = frame.mask
    labelled, _ = ndimage.label(mask >= threshold)
    cell_x, cell_y = MASK_STRIDE / scale[0], MASK_STRIDE / scale[1]
    regions = []
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        if found is None:
            continue
        inside = labelled[found] == index
        regions.append(
            Region(
                x=found[1].start * cell_x,
                y=found[0].start * cell_y,
                width=(found[1].stop - found[1].start) * cell_x,
                height=(found[0].stop - found[0].start) * cell_y,
                label=label,
                score=float(mask[found][inside].max()),
                mask_rle=run_length_encode(inside),
            )
        )
    regions.sort(key=lambda region: -region.score)
    return tuple(regions[:MAX_REGIONS])


@dataclass(frozen=True)
class ImageDecision:
    defect_probability: float
    class_scores: dict[str, float]
    label: str
    confidence: float


def image_decisions(
    defect_logits: np.ndarray, class_logits: np.ndarray, *, classes: Sequence[str], calibration: Calibration
) -> list[ImageDecision]:
    probabilities = outcome_probabilities(defect_logits, class_logits, calibration)
    labels = [NO_DEFECT, *classes]
    decisions = []
    for row in probabilities:
        best = int(np.argmax(row))
        decisions.append(
            ImageDecision(
                defect_probability=float(1 - row[0]),
                class_scores={name: float(row[i + 1]) for i, name in enumerate(classes)},
                label=labels[best],
                confidence=float(row[best]),
            )
        )
    return decisions
