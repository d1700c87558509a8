"""From the network's outputs to a `Prediction`: shared by the torch and ONNX predictors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_registry.ml.calibration import Calibration, outcome_probabilities
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


def scale_detection(detection: Detection, input_size: int, width: int, height: int) -> Detection:
    sx, sy = width / input_size, height / input_size
    return Detection(
        detection.class_index,
        detection.score,
        max(0.0, detection.x1 * sx),
        max(0.0, detection.y1 * sy),
        min(float(width), detection.x2 * sx),
        min(float(height), detection.y2 * sy),
    )


def run_length_encode(mask: np.ndarray) -> dict:
    """Row-major run lengths, starting with a run of zeros: {"size": [h, w], "counts": [...]}."""
    flat = mask.reshape(-1).astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(boundaries).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def regions_from_outputs(
    peaks: np.ndarray,
    box_size: np.ndarray,
    box_offset: np.ndarray,
    mask: np.ndarray,
    *,
    classes: Sequence[str],
    input_size: int,
    width: int,
    height: int,
    threshold: float,
) -> tuple[Region, ...]:
    """Regions above `threshold`, in original image pixels, with the mask inside each box."""
    regions = []
    for detection in decode_detections(peaks, box_size, box_offset, top_k=MAX_REGIONS, min_score=threshold):
        scaled = scale_detection(detection, input_size, width, height)
        if scaled.x2 - scaled.x1 < 1 or scaled.y2 - scaled.y1 < 1:
            continue
        x1 = int(max(0, np.floor(detection.x1 / MASK_STRIDE)))
        y1 = int(max(0, np.floor(detection.y1 / MASK_STRIDE)))
        x2 = int(min(mask.shape[1], np.ceil(detection.x2 / MASK_STRIDE)))
        y2 = int(min(mask.shape[0], np.ceil(detection.y2 / MASK_STRIDE)))
        inside = mask[y1:y2, x1:x2] >= 0.5
        regions.append(
            Region(
                x=scaled.x1,
                y=scaled.y1,
                width=scaled.x2 - scaled.x1,
                height=scaled.y2 - scaled.y1,
                label=classes[detection.class_index],
                score=detection.score,
                mask_rle=run_length_encode(inside) if inside.any() else None,
            )
        )
    return tuple(regions)


def regions_from_mask(
    mask: np.ndarray, *, label: str, width: int, height: int, threshold: float = 0.5
) -> tuple[Region, ...]:
    """Connected areas of a probability map above `threshold`, scored by their peak."""
    from scipy import ndimage

    above = mask >= threshold
    labelled, count = ndimage.label(above)
    scale_x = width / mask.shape[1]
    scale_y = height / mask.shape[0]
    regions = []
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        if found is None:
            continue
        inside = labelled[found] == index
        regions.append(
            Region(
                x=found[1].start * scale_x,
                y=found[0].start * scale_y,
                width=(found[1].stop - found[1].start) * scale_x,
                height=(found[0].stop - found[0].start) * scale_y,
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
