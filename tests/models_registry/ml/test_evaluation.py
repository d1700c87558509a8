"""Metrics on constructed outputs with known answers."""

import numpy as np
import pytest

from models_registry.ml.evaluation import (
    ImageOutcome,
    auroc,
    box_iou,
    image_metrics,
    mean_average_precision,
    pixel_auroc,
)
from models_registry.ml.serving.postprocessing import Detection


def test_auroc_known_values():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc([0.3, 0.4], [1, 1]) is None


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0] == pytest.approx([1.0, 1 / 3, 0.0])


def test_map_is_one_for_perfect_detections_and_half_for_half():
    truths = [
        (np.array([[0, 0, 10, 10]], float), np.array([0])),
        (np.array([[5, 5, 20, 20]], float), np.array([0])),
    ]
    perfect = [[Detection(0, 0.9, 0, 0, 10, 10)], [Detection(0, 0.8, 5, 5, 20, 20)]]
    assert mean_average_precision(perfect, truths, 1)[0] == pytest.approx(1.0)
    half = [[Detection(0, 0.9, 0, 0, 10, 10)], [Detection(0, 0.8, 50, 50, 60, 60)]]
    assert mean_average_precision(half, truths, 1)[0] == pytest.approx(0.5)
    # a wrong class does not count, and a duplicate is a false positive
    wrong = [
        [Detection(1, 0.9, 0, 0, 10, 10), Detection(0, 0.5, 0, 0, 10, 10), Detection(0, 0.4, 0, 0, 10, 10)],
        [],
    ]
    value, per_class = mean_average_precision(wrong, truths, 2)
    assert per_class == {0: pytest.approx(0.5)}


def test_pixel_auroc_separates_a_bright_defect():
    truth = np.zeros((8, 8))
    truth[2:4, 2:4] = 1
    prediction = truth * 0.9 + 0.05
    assert pixel_auroc([prediction], [truth]) == 1.0


def test_image_metrics_coverage_uses_the_certified_thresholds():
    outcomes = [
        ImageOutcome(0.9, "scratch", 0.95, True, ("scratch",)),
        ImageOutcome(0.8, "crack", 0.60, True, ("scratch",)),
        ImageOutcome(0.1, "no_defect", 0.90, False, ()),
        ImageOutcome(0.2, "no_defect", 0.80, False, ()),
    ]
    metrics = image_metrics(outcomes, {"0.02": 0.85, "0.05": None})
    assert metrics["image_accuracy"] == 0.75  # the crack/scratch mix-up is an error
    assert metrics["image_auroc"] == 1.0
    assert metrics["coverage_at_error"] == {"0.02": 0.5, "0.05": 0.0}
    assert metrics["error_among_automated"]["0.02"] == 0.0
