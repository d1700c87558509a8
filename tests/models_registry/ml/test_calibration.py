"""Calibration and risk control on constructed scores."""

import numpy as np
import pytest
from scipy import special

from models_registry.ml.calibration import (
    Calibration,
    binomial_p_value,
    certify_threshold,
    expected_calibration_error,
    fit_binary_temperature,
    fit_softmax_temperature,
    outcome_probabilities,
    risk_control_table,
)


def test_binary_temperature_recovers_an_overconfident_model():
    # given logits that are 3x too confident for the labels they produce
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = rng.random(20000) < special.expit(true_logits)
    # when fitting a temperature on the inflated logits
    temperature = fit_binary_temperature(true_logits * 3, labels.astype(float))
    # then it divides the inflation back out, and calibration improves
    assert temperature == pytest.approx(3.0, rel=0.05)
    before = expected_calibration_error(special.expit(true_logits * 3), labels)
    after = expected_calibration_error(special.expit(true_logits * 3 / temperature), labels)
    assert after < before / 3


def test_softmax_temperature_recovers_an_underconfident_model():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (20000, 4))
    targets = np.array([rng.choice(4, p=p) for p in special.softmax(logits, axis=1)])
    assert fit_softmax_temperature(logits / 2, targets) == pytest.approx(0.5, rel=0.05)


def test_temperature_is_neutral_when_only_one_kind_of_label_exists():
    assert fit_binary_temperature(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])) == 1.0


def test_outcome_probabilities_sum_to_one_and_split_the_defect_mass():
    probabilities = outcome_probabilities(
        np.array([0.0, 4.0]), np.array([[0.0, 0.0], [2.0, 0.0]]), Calibration()
    )
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert probabilities[0] == pytest.approx([0.5, 0.25, 0.25])
    assert probabilities[1, 1] > probabilities[1, 2]


def test_binomial_p_value_is_small_only_when_errors_are_rare():
    assert binomial_p_value(0, 300, 0.02) < 0.01  # 0 errors in 300 at 2 %: expected 6
    assert binomial_p_value(6, 300, 0.02) > 0.4


def test_certified_threshold_keeps_the_true_error_below_alpha():
    # given confidences whose error rate is exactly 1 - confidence (a calibrated model)
    rng = np.random.default_rng(2)
    confidences = rng.uniform(0.5, 1.0, 50000)
    correct = rng.random(50000) < confidences
    # when certifying 2 %
    certified = certify_threshold(confidences, correct, alpha=0.02, delta=0.1)
    # then the chosen threshold's true error (mean of 1 - c over c >= t) is at most 2 %
    assert certified.certified
    true_error = 1 - (certified.threshold + 1) / 2
    assert true_error <= 0.02
    assert 0 < certified.coverage < 0.1  # c >= ~0.96 holds for about 8 % of units
    assert certified.errors / certified.automated <= 0.02


def test_certification_is_refused_with_too_little_data():
    certified = certify_threshold([0.99] * 50, [True] * 50, alpha=0.01)
    assert not certified.certified
    assert certified.threshold is None
    assert "too little data" in certified.reason
    assert "230" in certified.reason  # log(0.1) / log(0.99)


def test_certification_is_refused_when_errors_are_everywhere():
    rng = np.random.default_rng(3)
    certified = certify_threshold(rng.uniform(0.5, 1.0, 1000), rng.random(1000) < 0.5, alpha=0.02)
    assert not certified.certified
    assert "no threshold" in certified.reason


def test_a_perfect_model_is_certified_for_everything():
    table = risk_control_table([0.9] * 1000, [True] * 1000, alphas=(0.01, 0.05))
    assert table["0.01"]["certified"] and table["0.01"]["coverage"] == 1.0
    assert table["0.05"]["threshold"] <= 0.9


def test_fixed_sequence_stops_at_the_first_failure():
    # given a model that is perfect above 0.95, terrible in (0.9, 0.95), perfect below
    confidences = np.concatenate([np.full(600, 0.99), np.full(200, 0.92), np.full(600, 0.85)])
    correct = np.concatenate([np.ones(600, bool), np.zeros(200, bool), np.ones(600, bool)])
    # then the laxer thresholds are never reached, even though overall error would pass at 0.2
    certified = certify_threshold(confidences, correct, alpha=0.2)
    assert certified.threshold > 0.92
    assert certified.coverage == pytest.approx(600 / 1400)
