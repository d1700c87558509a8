"""Drift statistics on constructed distributions: quiet on the same distribution, loud on a shift."""

from __future__ import annotations

import numpy as np
import pytest

from models_registry.ml.drift import holm_adjust, image_statistics, ks_tests, mmd_test


def test_holm_adjusts_step_down_and_keeps_the_order():
    # Sorted p: 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    assert holm_adjust([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([]) == []


def _statistics(rng, count, brightness=100.0):
    return {
        "brightness": rng.normal(brightness, 5.0, count),
        "contrast": rng.normal(40.0, 3.0, count),
        "sharpness": rng.gamma(4.0, 50.0, count),
    }


def test_ks_stays_quiet_on_the_same_distribution():
    false_alarms = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        results = ks_tests(_statistics(rng, 300), _statistics(rng, 200), alpha=0.01)
        false_alarms += any(result.shifted for result in results)
    assert false_alarms <= 2  # family-wise level 1 % over 40 windows: 0.4 expected


def test_ks_names_the_statistic_a_lighting_change_moves():
    rng = np.random.default_rng(1)
    results = {
        r.statistic: r for r in ks_tests(_statistics(rng, 300), _statistics(rng, 200, brightness=108.0))
    }
    assert results["brightness"].shifted and results["brightness"].adjusted_p_value < 1e-6
    assert not results["contrast"].shifted and not results["sharpness"].shifted


def test_ks_refuses_what_it_cannot_test():
    with pytest.raises(ValueError, match="share no statistic"):
        ks_tests({"brightness": [1, 2]}, {"contrast": [1, 2]})
    with pytest.raises(ValueError, match="at least 2 values"):
        ks_tests({"brightness": [1, 2]}, {"brightness": [1]})


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


def test_image_statistics_follow_light_focus_and_colour():
    rng = np.random.default_rng(3)
    scene = rng.uniform(60, 160, (64, 96, 3))
    base = image_statistics(scene)
    brighter = image_statistics(np.clip(scene + 30, 0, 255))
    assert brighter["brightness"] == pytest.approx(base["brightness"] + 30, abs=0.5)
    assert brighter["contrast"] == pytest.approx(base["contrast"], rel=0.05)
    blurred = (
        scene + np.roll(scene, 1, axis=0) + np.roll(scene, 1, axis=1) + np.roll(scene, 1, axis=(0, 1))
    ) / 4
    assert image_statistics(blurred)["sharpness"] < base["sharpness"] / 2
    warm = scene.copy()
    warm[..., 0] += 20
    assert image_statistics(warm)["red_green"] == pytest.approx(base["red_green"] + 20, abs=0.5)
    with pytest.raises(ValueError, match="H x W x 3"):
        image_statistics(np.zeros((4, 4)))
