"""A share of counted events with its exact (Clopper-Pearson) 95 % interval.

The audits and blind judgements behind agreement and escape rates are few (a 2 % audit share of a
few hundred units a day), so an interval says more than the rate: 0 escapes in 40 audits still
allows up to 8.8 %. Clopper-Pearson is conservative and never outside [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Proportion:
    count: int
    total: int

    def __add__(self, other: Proportion) -> Proportion:
        return Proportion(self.count + other.count, self.total + other.total)

    @property
    def rate(self) -> float | None:
        return self.count / self.total if self.total else None

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
        """The exact binomial interval; None when nothing was counted."""
        if not self.total:
            return None
        from scipy.stats import beta

        tail = (1 - confidence) / 2
        k, n = self.count, self.total
        low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
        high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
        return low, high

    def as_dict(self) -> dict:
        interval = self.interval()
        return {
            "count": self.count,
            "total": self.total,
            "rate": self.rate,
            "low": interval[0] if interval else None,
            "high": interval[1] if interval else None,
        }


def fewest_to_show_below(bound: float, confidence: float = CONFIDENCE) -> int:
    """The fewest trials that, with no event among them, give an interval wholly below `bound`:
    with fewer, even a perfect record cannot show a rate under it (0 of n has the upper end
    1 - tail^(1/n), below `bound` once n > log(tail) / log(1 - bound))."""
    tail = (1 - confidence) / 2
    return math.floor(math.log(tail) / math.log(1 - bound)) + 1
