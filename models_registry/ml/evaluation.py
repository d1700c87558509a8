"""Metrics on a held-out split, computed from what the served model actually outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_registry.ml.calibration import expected_calibration_error
from models_registry.ml.serving.postprocessing import Detection, decode_detections
from models_registry.ml.types import NO_DEFECT


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores)) + 1, [len(scores)]])
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between N x 4 and M x 4 boxes (x1, y1, x2, y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return intersection / np.maximum(area_a[:, None] + area_b[None, :] - intersection, 1e-9)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (Pascal VOC 2010+)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[changes + 1] - r[changes]) * p[changes + 1]))


def mean_average_precision(
    detections: Sequence[Sequence[Detection]],
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> tuple[float | None, dict[int, float]]:
    """mAP@iou over images: `detections[i]` and `truths[i] = (boxes N x 4, labels N)`."""
    per_class: dict[int, float] = {}
    for class_index in range(num_classes):
        records = []
        total = 0
        matched: dict[int, np.ndarray] = {}
        for image_index, (boxes, labels) in enumerate(truths):
            chosen = boxes[labels == class_index]
            total += len(chosen)
            matched[image_index] = np.zeros(len(chosen), bool)
            for detection in detections[image_index]:
                if detection.class_index == class_index:
                    records.append((detection.score, image_index, detection))
        if total == 0:
            continue
        records.sort(key=lambda r: -r[0])
        hits = np.zeros(len(records))
        for k, (_, image_index, detection) in enumerate(records):
            boxes, labels = truths[image_index]
            chosen = boxes[labels == class_index]
            if len(chosen) == 0:
                continue
            overlaps = box_iou(np.array([[detection.x1, detection.y1, detection.x2, detection.y2]]), chosen)[
                0
            ]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold and not matched[image_index][best]:
                matched[image_index][best] = True
                hits[k] = 1
        true_positives = np.cumsum(hits)
        recall = true_positives / total
        precision = true_positives / np.arange(1, len(records) + 1)
        per_class[class_index] = average_precision(recall, precision) if len(records) else 0.0
    if not per_class:
        return None, {}
    return float(np.mean(list(per_class.values()))), per_class


def pixel_auroc(
    probability_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_pixels: int = 4_000_000
) -> float | None:
    """AUROC over every pixel of every image (subsampled evenly beyond `max_pixels`)."""
    if not masks:
        return None
    scores = np.concatenate([m.reshape(-1) for m in probability_maps])
    labels = np.concatenate([m.reshape(-1) > 0.5 for m in masks])
    if len(scores) > max_pixels:
        step = int(np.ceil(len(scores) / max_pixels))
        scores, labels = scores[::step], labels[::step]
    return auroc(scores, labels)


@dataclass(frozen=True)
class ImageOutcome:
    """The model's image-level outputs for one test unit, next to its truth."""

    defect_probability: float
    label: str
    confidence: float
    true_defective: bool | None
    true_classes: tuple[str, ...]

    @property
    def correct(self) -> bool:
        """The decision the line would get is right: the verdict, and on fail the class."""
        if self.true_defective is None:
            return False
        if not self.true_defective:
            return self.label == NO_DEFECT
        if self.label == NO_DEFECT:
            return False
        return not self.true_classes or self.label in self.true_classes


def image_metrics(outcomes: Sequence[ImageOutcome], thresholds: dict[str, float | None]) -> dict:
    """Accuracy, AUROC, ECE and the coverage the certified thresholds give on these units."""
    known = [o for o in outcomes if o.true_defective is not None]
    correct = np.array([o.correct for o in known], bool)
    probabilities = np.array([o.defect_probability for o in known])
    truth = np.array([o.true_defective for o in known], int)
    confidences = np.array([o.confidence for o in known])
    if len(np.unique(truth)) > 1:
        ece = expected_calibration_error(probabilities, truth)
    else:  # one kind of unit only: calibration of the decision's own confidence
        ece = expected_calibration_error(confidences, correct.astype(int))
    coverage = {}
    error_among_automated = {}
    for alpha, threshold in thresholds.items():
        if threshold is None or not len(known):
            coverage[alpha], error_among_automated[alpha] = 0.0, None
            continue
        automated = confidences >= threshold
        coverage[alpha] = float(automated.mean())
        error_among_automated[alpha] = float((~correct[automated]).mean()) if automated.any() else None
    return {
        "n_test": len(outcomes),
        "image_accuracy": float(correct.mean()) if len(correct) else None,
        "image_auroc": auroc(probabilities, truth),
        "ece": ece,
        "coverage_at_error": coverage,
        "error_among_automated": error_among_automated,
    }


def per_class_metrics(
    outcomes: Sequence[ImageOutcome], classes: Sequence[str], box_ap: dict[int, float]
) -> dict:
    result = {}
    for index, name in enumerate(classes):
        of_class = [o for o in outcomes if name in o.true_classes]
        predicted = [o for o in outcomes if o.label == name]
        hits = sum(1 for o in of_class if o.label == name)
        result[name] = {
            "support": len(of_class),
            "recall": hits / len(of_class) if of_class else None,
            "precision": sum(1 for o in predicted if name in o.true_classes) / len(predicted)
            if predicted
            else None,
            "box_ap50": box_ap.get(index),
        }
    return result


__all__ = [
    "ImageOutcome",
    "auroc",
    "average_precision",
    "box_iou",
    "decode_detections",
    "image_metrics",
    "mean_average_precision",
    "per_class_metrics",
    "pixel_auroc",
]
