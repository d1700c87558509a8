"""The gate a candidate model must pass to become a station's challenger (a pure function).

Candidate and champion are evaluated on the same frozen test split. The candidate passes when it
is not worse, beyond configurable margins, on the two figures that matter to the station: the
share of units its certified thresholds let it decide alone at the station's target escape rate
(coverage), and its image AUROC. With no champion yet, the candidate only needs figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models_registry.ml.calibration import loosest_bound_within


@dataclass(frozen=True)
class GateMargins:
    coverage: float = 0.0  # the candidate may cover this much less than the champion
    auroc: float = 0.0


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    figures: dict

    def as_dict(self) -> dict:
        return {"passed": self.passed, "reasons": list(self.reasons), "figures": self.figures}


def coverage_at(metrics: Mapping, target_escape_rate: float) -> float:
    """Test coverage at the loosest error bound no looser than the target (0 if none)."""
    table = metrics.get("coverage_at_error") or {}
    alpha = loosest_bound_within(table, target_escape_rate)
    return 0.0 if alpha is None else float(table[alpha] or 0.0)


def gate_decide(
    *,
    candidate: Mapping,
    champion: Mapping | None,
    target_escape_rate: float,
    margins: GateMargins = GateMargins(),
) -> GateResult:
    """Whether the candidate may go into shadow, with the reasons either way."""
    figures = {
        "target_escape_rate": target_escape_rate,
        "candidate": {
            "coverage": coverage_at(candidate, target_escape_rate),
            "auroc": candidate.get("image_auroc"),
        },
    }
    if not candidate.get("n_test"):
        return GateResult(False, ("the candidate was evaluated on no test units",), figures)
    if champion is None:
        return GateResult(True, ("no champion yet: the first candidate goes into shadow",), figures)
    figures["champion"] = {
        "coverage": coverage_at(champion, target_escape_rate),
        "auroc": champion.get("image_auroc"),
    }
    reasons, passed = [], True
    new, old = figures["candidate"]["coverage"], figures["champion"]["coverage"]
    if new + margins.coverage < old:
        passed = False
        reasons.append(
            f"coverage at {target_escape_rate:g} error {new:.3f} < champion's {old:.3f}"
            f" - {margins.coverage:g}"
        )
    else:
        reasons.append(
            f"coverage at {target_escape_rate:g} error {new:.3f} vs champion's {old:.3f}: not worse"
        )
    new_auroc, old_auroc = figures["candidate"]["auroc"], figures["champion"]["auroc"]
    if new_auroc is None or old_auroc is None:
        reasons.append("AUROC not comparable (the test split holds one kind of unit): coverage decides")
    elif new_auroc + margins.auroc < old_auroc:
        passed = False
        reasons.append(f"AUROC {new_auroc:.3f} < champion's {old_auroc:.3f} - {margins.auroc:g}")
    else:
        reasons.append(f"AUROC {new_auroc:.3f} vs champion's {old_auroc:.3f}: not worse")
    return GateResult(passed, tuple(reasons), figures)
