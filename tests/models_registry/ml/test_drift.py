"""Drift statistics on constructed distributions: quiet on the same distribution, loud on a shift."""

from __future__ import annotations

import numpy as np
import pytest

from models_registry.ml.drift import (
    AGREEMENT,
    EMBEDDING,
    INPUT,
    MIN_AGREEMENT_UNITS,
    SCORE,
    STATISTICS,
    Reference,
    Window,
    agreement_p_value,
    holm_adjust,
    mmd_test,
    summary_statistics,
    window_tests,
)


def test_holm_adjusts_step_down_and_keeps_the_order():
    # Sorted p: 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    assert holm_adjust([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([]) == []


def _reference(rng, count=300, brightness=0.45, confidence=None):
    return Reference(
        statistics=_statistics(rng, count, brightness),
        embeddings=rng.normal(0.0, 1.0, (count, 8)),
        confidence=rng.beta(8, 1, count) if confidence is None else confidence,
        verdict_correct=rng.random(count) < 0.95,
    )


def _statistics(rng, count, brightness=0.45):
    return {
        "brightness": rng.normal(brightness, 0.02, count),
        "contrast": rng.normal(0.15, 0.01, count),
        "sharpness": rng.gamma(4.0, 0.002, count),
        "red": rng.normal(0.40, 0.01, count),
        "green": rng.normal(0.45, 0.01, count),
        "blue": rng.normal(0.50, 0.01, count),
    }


def _window(rng, count=200, brightness=0.45, embedding_shift=0.0, confidence=None, agreed=0, judged=0):
    embeddings = rng.normal(0.0, 1.0, (count, 8))
    embeddings[:, :2] += embedding_shift
    return Window(
        statistics=_statistics(rng, count, brightness),
        embeddings=embeddings,
        confidence=rng.beta(8, 1, count) if confidence is None else confidence,
        agreed=agreed,
        judged=judged,
    )


def test_a_window_like_the_reference_stays_quiet():
    false_alarms = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        tests = window_tests(_reference(rng), _window(rng, judged=40, agreed=38), alpha=0.01, permutations=99)
        assert {t.kind for t in tests} == {INPUT, EMBEDDING, SCORE, AGREEMENT}
        false_alarms += any(t.shifted for t in tests)
    assert false_alarms <= 2  # family-wise level 1 % over 30 windows: 0.3 expected


def test_a_lighting_change_shifts_brightness_and_nothing_else():
    rng = np.random.default_rng(1)
    tests = {t.name: t for t in window_tests(_reference(rng), _window(rng, brightness=0.47), permutations=99)}
    assert tests["brightness"].shifted and tests["brightness"].adjusted_p_value < 1e-6
    assert tests["brightness"].detail["live_mean"] > tests["brightness"].detail["reference_mean"]
    assert not any(t.shifted for name, t in tests.items() if name != "brightness")


def test_new_units_shift_the_embedding_and_a_less_sure_model_the_score():
    rng = np.random.default_rng(2)
    moved = {t.kind: t for t in window_tests(_reference(rng), _window(rng, embedding_shift=0.8))}
    assert moved[EMBEDDING].shifted and not moved[SCORE].shifted
    unsure = {
        t.kind: t
        for t in window_tests(_reference(rng), _window(rng, confidence=rng.beta(3, 1, 200)), permutations=99)
    }
    assert unsure[SCORE].shifted and not unsure[EMBEDDING].shifted
    # one-sided: a model more sure of itself than on its validation data is no alarm
    sure = {
        t.kind: t
        for t in window_tests(_reference(rng), _window(rng, confidence=np.full(200, 0.999)), permutations=99)
    }
    assert not sure[SCORE].shifted


def test_agreement_alarms_when_audits_disagree_more_than_validation_did():
    rng = np.random.default_rng(3)
    reference = _reference(rng)
    assert agreement_p_value(38, 40, reference.verdict_correct) > 0.1
    assert agreement_p_value(28, 40, reference.verdict_correct) < 1e-3
    tests = {t.kind: t for t in window_tests(reference, _window(rng, agreed=28, judged=40), permutations=99)}
    assert tests[AGREEMENT].shifted and tests[AGREEMENT].statistic == pytest.approx(0.7)
    # too few blind verdicts: no agreement test at all
    few = window_tests(reference, _window(rng, agreed=5, judged=MIN_AGREEMENT_UNITS - 1), permutations=99)
    assert AGREEMENT not in {t.kind for t in few}


def test_summary_statistics_read_what_serving_stores():
    stored = {
        "vector": [0.1] * 4,
        "brightness": 0.5,
        "contrast": 0.2,
        "sharpness": 0.01,
        "color": [0.4, 0.5, 0.6],
    }
    assert summary_statistics(stored) == {
        "brightness": 0.5,
        "contrast": 0.2,
        "sharpness": 0.01,
        "red": 0.4,
        "green": 0.5,
        "blue": 0.6,
    }
    assert set(summary_statistics(stored)) == set(STATISTICS)


def test_mmd_stays_quiet_on_the_same_distribution_and_sees_a_small_shift():
    rng = np.random.default_rng(2)
    reference = rng.normal(0.0, 1.0, (150, 16))
    same = mmd_test(reference, rng.normal(0.0, 1.0, (100, 16)), permutations=200)
    assert not same.shifted(0.01)
    shifted = rng.normal(0.0, 1.0, (100, 16))
    shifted[:, :3] += 0.8  # a new kind of unit moves a few directions of the embedding
    moved = mmd_test(reference, shifted, permutations=200)
    assert moved.shifted(0.01) and moved.p_value == pytest.approx(1 / 201)
    assert moved.mmd2 > same.mmd2


def test_mmd_false_alarm_rate_is_near_its_level():
    alarms = sum(
        mmd_test(
            np.random.default_rng(seed).normal(size=(40, 4)),
            np.random.default_rng(seed + 1000).normal(size=(40, 4)),
            permutations=99,
            seed=seed,
        ).shifted(0.05)
        for seed in range(60)
    )
    assert alarms <= 8  # 5 % of 60 is 3


def test_mmd_refuses_mismatched_embeddings():
    with pytest.raises(ValueError, match="same width"):
        mmd_test(np.zeros((5, 3)), np.zeros((5, 4)))


def test_mmd_statistic_is_the_unbiased_estimate():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    result = mmd_test(x, y, permutations=9)
    pooled = np.concatenate([x, y])
    kernel = np.exp(-((pooled[:, None] - pooled[None]) ** 2).sum(-1) / result.bandwidth)
    kxx, kyy, kxy = kernel[:7, :7], kernel[7:, 7:], kernel[:7, 7:]
    naive = (kxx.sum() - np.trace(kxx)) / 42 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean()
    assert result.mmd2 == pytest.approx(naive, rel=1e-9)
