"""Drift statistics: is a window of live units still like the model's reference data? KS, MMD,
confidence and agreement tests as one Holm-corrected family (docs/model.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# The scalar input statistics, as `summarise_embedding` stores them (colour as three means).
STATISTICS = ("brightness", "contrast", "sharpness", "red", "green", "blue")
# Which alarm each test raises.
INPUT, EMBEDDING, SCORE, AGREEMENT = "input_drift", "embedding_drift", "score_shift", "audit_agreement"
MIN_AGREEMENT_UNITS = 20


def summary_statistics(summary: Mapping) -> dict[str, float]:
    """The scalar statistics of one stored embedding summary (`Prediction.embedding`)."""
    red, green, blue = summary["color"]
    return {
        "brightness": float(summary["brightness"]),
        "contrast": float(summary["contrast"]),
        "sharpness": float(summary["sharpness"]),
        "red": float(red),
        "green": float(green),
        "blue": float(blue),
    }


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject where adjusted <= alpha."""
    count = len(p_values)
    order = sorted(range(count), key=lambda index: p_values[index])
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class MmdResult:
    mmd2: float
    p_value: float
    bandwidth: float
    permutations: int

    def shifted(self, alpha: float) -> bool:
        return self.p_value <= alpha


def _squared_distances(points: np.ndarray) -> np.ndarray:
    norms = (points**2).sum(axis=1)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * points @ points.T, 0.0)


def _mmd2_many(kernel: np.ndarray, members: np.ndarray, m: int) -> np.ndarray:
    """Unbiased MMD² for each column of `members` (pooled size x B, 1 for the first sample's
    m points, 0 for the second's n): one matrix product for all B splits. The Gaussian kernel's
    diagonal is 1, so the within-sample sums without the diagonal are a'Ka - m and b'Kb - n."""
    n = kernel.shape[0] - m
    first = members.astype(np.float64)
    second = 1.0 - first
    k_first = kernel @ first
    k_second = kernel.sum(axis=1, keepdims=True) - k_first
    within_first = (first * k_first).sum(axis=0) - m
    within_second = (second * k_second).sum(axis=0) - n
    between = (first * k_second).sum(axis=0)
    return within_first / (m * (m - 1)) + within_second / (n * (n - 1)) - 2.0 * between / (m * n)


def mmd_test(reference: np.ndarray, live: np.ndarray, *, permutations: int = 500, seed: int = 0) -> MmdResult:
    """MMD between two samples of embeddings (rows), with a permutation p-value.

    The p-value counts the observed statistic among the permuted ones ((b + 1) / (B + 1)), so it
    is never 0 and the test keeps its level for any number of permutations; it can be no smaller
    than 1 / (B + 1), which bounds the significance it can reach."""
    x, y = np.asarray(reference, np.float64), np.asarray(live, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embeddings must be two matrices with the same width, not {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("an MMD test needs at least 2 embeddings on each side")
    pooled = np.concatenate([x, y])
    distances = _squared_distances(pooled)
    off_diagonal = distances[~np.eye(len(pooled), dtype=bool)]
    bandwidth = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-distances / bandwidth)
    m = len(x)
    observed_members = np.zeros((len(pooled), 1))
    observed_members[:m] = 1.0
    observed = float(_mmd2_many(kernel, observed_members, m)[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, permutations, 256):
        count = min(256, permutations - start)
        members = np.zeros((len(pooled), count))
        for column in range(count):
            members[rng.permutation(len(pooled))[:m], column] = 1.0
        exceed += int((_mmd2_many(kernel, members, m) >= observed - 1e-12).sum())
    return MmdResult(observed, (exceed + 1) / (permutations + 1), bandwidth, permutations)


@dataclass(frozen=True)
class Reference:
    """What a model version kept of its validation data (see `bundle.save_reference`)."""

    statistics: Mapping[str, np.ndarray]
    embeddings: np.ndarray  # N x d embedding summaries
    confidence: np.ndarray  # the confidence of the model's verdict
    verdict_correct: np.ndarray  # the model's pass/fail verdict matched the label

    @property
    def size(self) -> int:
        return len(self.confidence)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Reference:
        """From a bundle's `reference.npz`; KeyError names what an older bundle lacks."""
        return cls(
            statistics={name: np.asarray(arrays[name], float) for name in STATISTICS},
            embeddings=np.asarray(arrays["embedding"], float),
            confidence=np.asarray(arrays["confidence"], float),
            verdict_correct=np.asarray(arrays["verdict_correct"], bool),
        )


@dataclass(frozen=True)
class Window:
    """The same figures for a window of live units, and the blind human checks of the model."""

    statistics: Mapping[str, Sequence[float]]
    embeddings: np.ndarray
    confidence: Sequence[float]
    agreed: int = 0  # blind human verdicts equal to the model's
    judged: int = 0  # blind human verdicts on units the model predicted


@dataclass(frozen=True)
class DriftTest:
    kind: str  # the alarm it raises: INPUT, EMBEDDING, SCORE or AGREEMENT
    name: str
    statistic: float
    p_value: float
    adjusted_p_value: float
    shifted: bool
    detail: dict

    def as_dict(self) -> dict:
        return asdict(self)


def _ks(
    reference: Sequence[float], live: Sequence[float], alternative: str = "two-sided"
) -> tuple[float, float]:
    from scipy.stats import ks_2samp

    reference, live = np.asarray(reference, float), np.asarray(live, float)
    if len(reference) < 2 or len(live) < 2:
        raise ValueError("a KS test needs at least 2 values on each side")
    result = ks_2samp(live, reference, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def agreement_p_value(agreed: int, judged: int, reference_correct: Sequence[bool]) -> float:
    """One-sided Fisher exact test: do humans agree with the model less often than the reference
    labels did? Small when the live agreement rate is lower."""
    from scipy.stats import fisher_exact

    correct = np.asarray(reference_correct, bool)
    table = [[agreed, judged - agreed], [int(correct.sum()), int((~correct).sum())]]
    return float(fisher_exact(table, alternative="less").pvalue)


def window_tests(
    reference: Reference,
    window: Window,
    *,
    alpha: float = 0.01,
    permutations: int | None = None,
    seed: int = 0,
) -> list[DriftTest]:
    """Every drift test on one window, Holm-corrected as one family at `alpha`.

    - input: a two-sided KS test per scalar statistic;
    - embedding: MMD with a permutation test;
    - score: a one-sided KS test, live confidence lower than the reference's;
    - agreement: Fisher's test on blind human verdicts, when at least `MIN_AGREEMENT_UNITS`.

    The permutation count defaults to what lets the MMD test alone reach `alpha` after Holm's
    correction over the whole family (its p-value is never below 1 / (B + 1)).
    """
    if permutations is None:
        permutations = max(199, int(np.ceil(2 * (len(STATISTICS) + 3) / alpha)))
    raw: list[tuple[str, str, float, float, dict]] = []
    for name in STATISTICS:
        if name not in reference.statistics or name not in window.statistics:
            continue
        ref, now = np.asarray(reference.statistics[name], float), np.asarray(window.statistics[name], float)
        distance, p_value = _ks(ref, now)
        raw.append(
            (
                INPUT,
                name,
                distance,
                p_value,
                {"reference_mean": float(ref.mean()), "live_mean": float(now.mean())},
            )
        )
    if len(reference.embeddings) >= 2 and len(window.embeddings) >= 2:
        mmd = mmd_test(reference.embeddings, window.embeddings, permutations=permutations, seed=seed)
        raw.append(
            (
                EMBEDDING,
                "embedding",
                mmd.mmd2,
                mmd.p_value,
                {"bandwidth": mmd.bandwidth, "permutations": mmd.permutations},
            )
        )
    confidence = np.asarray(window.confidence, float)
    distance, p_value = _ks(reference.confidence, confidence, alternative="greater")
    raw.append(
        (
            SCORE,
            "confidence",
            distance,
            p_value,
            {"reference_mean": float(np.mean(reference.confidence)), "live_mean": float(confidence.mean())},
        )
    )
    if window.judged >= MIN_AGREEMENT_UNITS and reference.size:
        reference_rate = float(np.mean(reference.verdict_correct))
        raw.append(
            (
                AGREEMENT,
                "agreement",
                window.agreed / window.judged,
                agreement_p_value(window.agreed, window.judged, reference.verdict_correct),
                {"judged": window.judged, "agreed": window.agreed, "reference_rate": reference_rate},
            )
        )
    adjusted = holm_adjust([p for _, _, _, p, _ in raw])
    return [
        DriftTest(kind, name, statistic, p_value, p_adjusted, p_adjusted <= alpha, detail)
        for (kind, name, statistic, p_value, detail), p_adjusted in zip(raw, adjusted, strict=True)
    ]
