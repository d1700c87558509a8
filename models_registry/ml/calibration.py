"""Calibration (temperature and Platt scaling) and risk control: the automation threshold certified
by Learn-then-Test (docs/model.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

DEFAULT_ALPHAS = (0.005, 0.01, 0.02, 0.05, 0.1)
DEFAULT_DELTA = 0.1
# Fixed before seeing data, as Learn-then-Test requires; dense near 1 where thresholds end up.
DEFAULT_GRID = np.unique(np.concatenate([np.linspace(0.0, 1.0, 1001), 1 - np.logspace(-7, -1, 300)]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def fit_binary_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of binary labels."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if len(logits) == 0 or labels.min() == labels.max():
        return 1.0  # one class only: nothing to calibrate against

    def nll(log_t: float) -> float:
        p = np.clip(_sigmoid(logits / np.exp(log_t)), 1e-7, 1 - 1e-7)
        return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())

    result = optimize.minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def fit_binary_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Temperature and bias with p = sigmoid((logit - bias) / temperature), by likelihood."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if len(logits) == 0 or labels.min() == labels.max():
        return 1.0, 0.0

    def nll(parameters: np.ndarray) -> float:
        log_t, bias = parameters
        z = (logits - bias) / np.exp(log_t)
        # log(1 + e^z) - label * z, computed without overflow
        return float((np.logaddexp(0.0, z) - labels * z).mean())

    result = optimize.minimize(
        nll, x0=np.array([0.0, 0.0]), method="L-BFGS-B", bounds=[(-3.0, 3.0), (-20, 20)]
    )
    return float(np.exp(result.x[0])), float(result.x[1])


def fit_softmax_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, np.int64)
    if len(logits) == 0 or logits.shape[1] < 2:
        return 1.0

    def nll(log_t: float) -> float:
        log_probs = special.log_softmax(logits / np.exp(log_t), axis=1)
        return float(-log_probs[np.arange(len(targets)), targets].mean())

    result = optimize.minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


@dataclass(frozen=True)
class Calibration:
    defect_temperature: float = 1.0
    class_temperature: float = 1.0
    defect_bias: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(
            float(data["defect_temperature"]),
            float(data["class_temperature"]),
            float(data.get("defect_bias", 0.0)),
        )


def outcome_probabilities(
    defect_logits: np.ndarray, class_logits: np.ndarray, calibration: Calibration
) -> np.ndarray:
    """N x (1 + C): P(no defect), then P(defective and class c) for each class."""
    defect = _sigmoid(
        (np.asarray(defect_logits, np.float64) - calibration.defect_bias) / calibration.defect_temperature
    )
    class_logits = np.asarray(class_logits, np.float64)
    if class_logits.shape[1] == 0:
        return np.stack([1 - defect], axis=1)
    classes = special.softmax(class_logits / calibration.class_temperature, axis=1)
    return np.concatenate([(1 - defect)[:, None], defect[:, None] * classes], axis=1)


def binomial_p_value(errors: int, trials: int, alpha: float) -> float:
    """P(Binomial(trials, alpha) <= errors): small when the true error rate is below alpha."""
    if trials == 0:
        return 1.0
    return float(stats.binom.cdf(errors, trials, alpha))


@dataclass(frozen=True)
class CertifiedThreshold:
    alpha: float
    threshold: float | None  # the model decides alone when its confidence >= threshold
    coverage: float  # share of calibration units decided alone at that threshold
    errors: int
    automated: int
    certified: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def certify_threshold(
    confidences: Sequence[float],
    correct: Sequence[bool],
    *,
    alpha: float,
    delta: float = DEFAULT_DELTA,
    grid: Sequence[float] | None = None,
) -> CertifiedThreshold:
    """Learn-then-Test with fixed-sequence testing from the strictest threshold down."""
    confidences = np.asarray(confidences, np.float64)
    wrong = ~np.asarray(correct, bool)
    n = len(confidences)
    if n == 0:
        return CertifiedThreshold(alpha, None, 0.0, 0, 0, False, "no calibration data")
    minimum = int(np.ceil(np.log(delta) / np.log(1 - alpha)))
    if n < minimum:
        return CertifiedThreshold(
            alpha,
            None,
            0.0,
            0,
            0,
            False,
            f"too little data: {n} units, at least {minimum} needed to certify {alpha:g}",
        )
    if grid is None:
        grid = DEFAULT_GRID
    best: CertifiedThreshold | None = None
    for threshold in sorted(grid, reverse=True):
        automated = confidences >= threshold
        count = int(automated.sum())
        if count < minimum:
            continue  # untestable: even zero errors could not reject at this size
        errors = int(wrong[automated].sum())
        if binomial_p_value(errors, count, alpha) > delta:
            break
        best = CertifiedThreshold(alpha, float(threshold), count / n, errors, count, True)
    if best is None:
        return CertifiedThreshold(
            alpha,
            None,
            0.0,
            0,
            0,
            False,
            f"no threshold keeps the error below {alpha:g} with confidence {1 - delta:g}",
        )
    return best


def loosest_bound_within(alphas: Iterable[str | float], target: float) -> str | float | None:
    """Of the error bounds `alphas` (keys of a risk-control or coverage table), the loosest one
    that still meets `target`; None when every bound is looser."""
    within = [alpha for alpha in alphas if float(alpha) <= target + 1e-12]
    return max(within, key=float) if within else None


def risk_control_table(
    confidences: Sequence[float],
    correct: Sequence[bool],
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    delta: float = DEFAULT_DELTA,
) -> dict[str, dict]:
    return {
        f"{alpha:g}": certify_threshold(confidences, correct, alpha=alpha, delta=delta).as_dict()
        for alpha in alphas
    }


def risk_coverage_curve(
    confidences: Sequence[float], correct: Sequence[bool], *, max_points: int | None = None
) -> list[tuple[float, float]]:
    """(coverage, error among the units decided alone) for every threshold `confidence >= t` that
    changes which units are decided, from the strictest to the laxest: one point per distinct
    confidence, so tied units enter together, as they do under a threshold. With `max_points`, an
    evenly spaced subset that keeps both ends (for drawing)."""
    confidences = np.asarray(confidences, np.float64)
    wrong = ~np.asarray(correct, bool)
    if len(confidences) == 0:
        return []
    order = np.argsort(-confidences, kind="stable")
    sorted_confidences = confidences[order]
    errors = np.cumsum(wrong[order])
    # the last unit of each run of equal confidences: where a threshold at that value stops
    ends = np.flatnonzero(np.append(sorted_confidences[1:] != sorted_confidences[:-1], True))
    if max_points is not None and len(ends) > max_points:
        ends = ends[np.unique(np.round(np.linspace(0, len(ends) - 1, max(max_points, 2))).astype(int))]
    counts = ends + 1
    return [
        (float(count / len(confidences)), float(errors[end] / count))
        for end, count in zip(ends, counts, strict=True)
    ]


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    if len(probabilities) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            error += chosen.mean() * abs(probabilities[chosen].mean() - labels[chosen].mean())
    return float(error)
