"""Drift statistics: is a window of live units still like the model's reference data?

Plain numpy/scipy (no Django), so the tests can construct distributions and the Celery task that
watches a station (issue 6) only feeds it numbers:

- `image_statistics`: the scalar input statistics a camera change moves (brightness, contrast,
  sharpness, colour balance);
- `ks_tests`: a two-sample Kolmogorov-Smirnov test per statistic, with Holm's step-down
  correction so that watching several statistics at once keeps the family-wise false-alarm rate
  at the chosen significance;
- `mmd_test`: the maximum mean discrepancy between two sets of embeddings with a Gaussian kernel
  (bandwidth by the median heuristic on the pooled sample) and a permutation test for its p-value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

STATISTICS = ("brightness", "contrast", "sharpness", "red_green", "blue_green")


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Scalar statistics of an RGB image (H x W x 3, values 0-255)."""
    pixels = np.asarray(rgb, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"an RGB image is H x W x 3, not {pixels.shape}")
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    gray = 0.299 * red + 0.587 * green + 0.114 * blue
    # Sharpness: the variance of the 4-neighbour Laplacian (focus and motion blur lower it).
    laplacian = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4.0 * gray[1:-1, 1:-1]
    return {
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(laplacian.var()) if laplacian.size else 0.0,
        "red_green": float(red.mean() - green.mean()),
        "blue_green": float(blue.mean() - green.mean()),
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
class KsResult:
    statistic: str
    distance: float
    p_value: float
    adjusted_p_value: float
    shifted: bool


def ks_tests(
    reference: Mapping[str, Sequence[float]], live: Mapping[str, Sequence[float]], *, alpha: float = 0.01
) -> list[KsResult]:
    """One KS test per statistic present in both, Holm-corrected as a family at `alpha`."""
    from scipy.stats import ks_2samp

    names = [name for name in reference if name in live]
    if not names:
        raise ValueError("reference and live share no statistic")
    tests = []
    for name in names:
        ref, now = np.asarray(reference[name], float), np.asarray(live[name], float)
        if len(ref) < 2 or len(now) < 2:
            raise ValueError(f"{name}: a KS test needs at least 2 values on each side")
        tests.append(ks_2samp(ref, now))
    adjusted = holm_adjust([float(test.pvalue) for test in tests])
    return [
        KsResult(name, float(test.statistic), float(test.pvalue), p, p <= alpha)
        for name, test, p in zip(names, tests, adjusted, strict=True)
    ]


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


def _mmd2(kernel: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    """The unbiased MMD² estimate for the index sets `first` and `second` of the pooled kernel."""
    kxx = kernel[np.ix_(first, first)]
    kyy = kernel[np.ix_(second, second)]
    kxy = kernel[np.ix_(first, second)]
    m, n = len(first), len(second)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2.0 * kxy.mean()
    )


def mmd_test(reference: np.ndarray, live: np.ndarray, *, permutations: int = 500, seed: int = 0) -> MmdResult:
    """MMD between two samples of embeddings (rows), with a permutation p-value.

    The p-value counts the observed statistic among the permuted ones ((b + 1) / (B + 1)), so it
    is never 0 and the test keeps its level for any number of permutations."""
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
    indices = np.arange(len(pooled))
    observed = _mmd2(kernel, indices[:m], indices[m:])
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        shuffled = rng.permutation(indices)
        if _mmd2(kernel, shuffled[:m], shuffled[m:]) >= observed:
            exceed += 1
    return MmdResult(observed, (exceed + 1) / (permutations + 1), bandwidth, permutations)
