"""The promotion gate, as a table."""

import pytest

from models_registry.gate import GateMargins, coverage_at, gate_decide


def metrics(coverage_1pct: float, auroc: float | None, n_test: int = 100) -> dict:
    return {
        "n_test": n_test,
        "image_auroc": auroc,
        "coverage_at_error": {"0.005": 0.0, "0.01": coverage_1pct, "0.02": min(1.0, coverage_1pct + 0.1)},
    }


@pytest.mark.parametrize(
    "candidate, champion, margins, passed, says",
    [
        (metrics(0.8, 0.97), metrics(0.7, 0.95), GateMargins(), True, "not worse"),
        (metrics(0.7, 0.95), metrics(0.7, 0.95), GateMargins(), True, "not worse"),  # edge: equal
        (metrics(0.6, 0.99), metrics(0.7, 0.95), GateMargins(), False, "coverage at 0.01 error 0.600"),
        (metrics(0.6, 0.99), metrics(0.7, 0.95), GateMargins(coverage=0.1), True, "not worse"),
        (metrics(0.9, 0.90), metrics(0.7, 0.95), GateMargins(), False, "AUROC 0.900 < champion's 0.950"),
        (metrics(0.9, 0.93), metrics(0.7, 0.95), GateMargins(auroc=0.02), True, "not worse"),
        (metrics(0.9, None), metrics(0.7, 0.95), GateMargins(), True, "AUROC not comparable"),
        (metrics(0.9, 0.99), None, GateMargins(), True, "no champion yet"),
        (metrics(0.9, 0.99, n_test=0), None, GateMargins(), False, "no test units"),
    ],
)
def test_gate_table(candidate, champion, margins, passed, says):
    result = gate_decide(candidate=candidate, champion=champion, target_escape_rate=0.01, margins=margins)
    assert result.passed is passed
    assert any(says in reason for reason in result.reasons), result.reasons


@pytest.mark.parametrize("target, expected", [(0.001, 0.0), (0.01, 0.5), (0.015, 0.5), (0.05, 0.6)])
def test_coverage_is_read_at_the_loosest_bound_within_the_target(target, expected):
    assert coverage_at(metrics(0.5, 0.9), target) == expected
