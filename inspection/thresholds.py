"""The threshold tool's figures: what a station's policy would do with a model version on the
version's validation units, for settings the supervisor has not saved yet.

Pure (no Django). The numbers come from the functions the line itself uses — `certified_bound`
picks the error bound and its threshold, `required_confidence` adds the band, and the level rules
are those of `decide` — applied to the validation confidences the version's risk-control table was
certified on. So the automation rate shown is the share of those units the station would let the
model decide, and the observed error is the error among exactly those units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from inspection.enums import AutomationLevel
from inspection.policy import StationPolicy, certified_bound, required_confidence
from models_registry.ml.calibration import risk_coverage_curve

# Points of the risk-coverage curve sent to the page: enough for its shape, small to draw.
CURVE_POINTS = 200

PERSON_DECIDES = {
    AutomationLevel.HUMAN: "human only: the model is not run, a person decides every unit",
    AutomationLevel.SHADOW: "shadow: the model runs blind, a person decides every unit",
    AutomationLevel.ASSISTED: "AI-assisted: a person decides every unit, seeing the model",
}


@dataclass(frozen=True)
class ThresholdPreview:
    """One model version under one station setting, measured on its validation units."""

    level: str
    target_escape_rate: float
    error_bound: float | None  # the certified bound used (no looser than the target); None: none is
    certified_threshold: float | None  # the confidence certified for that bound
    applied_threshold: float | None  # what a prediction must reach: partial only, threshold + band
    automation_rate: float  # expected share of units the model decides alone
    observed_error: float | None  # error rate among the validation units it would decide
    decided_units: int  # validation units the observed error is measured on
    decided_errors: int
    validation_units: int
    reason: str  # why the model decides nothing alone; "" when it decides some
    warning: str  # what the supervisor should know before saving; "" when nothing
    curve: list[tuple[float, float]]  # risk-coverage: (share decided alone, error among them)
    operating_point: tuple[float, float] | None  # (automation rate, observed error) on the curve

    def as_dict(self) -> dict:
        return asdict(self)


def validation_scores(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The confidences and correctness the risk-control table was certified on: the labelled
    validation units (`known`; a bundle from before it was stored had labels on every unit)."""
    confidence = np.asarray(arrays["confidence"], np.float64)
    correct = np.asarray(arrays["correct"], bool)
    known = arrays.get("known")
    if known is not None:
        known = np.asarray(known, bool)
        confidence, correct = confidence[known], correct[known]
    return confidence, correct


def _uncertified_reason(risk_control: Mapping[str, Mapping], target: float) -> str:
    """Why no bound at this target is certified: the table's own reason for the loosest bound the
    target allows (the one the station would have used), or that every bound is looser."""
    within = [alpha for alpha in risk_control if float(alpha) <= target + 1e-12]
    if not within:
        if not risk_control:
            return "this version has no risk-control table: nothing is certified"
        strictest = min(risk_control, key=float)
        return f"no error bound as strict as {target:g} was computed; the strictest is {float(strictest):g}"
    alpha = max(within, key=float)
    return risk_control[alpha].get("reason") or f"the error bound {float(alpha):g} is not certified"


def threshold_preview(
    *,
    confidences: Sequence[float],
    correct: Sequence[bool],
    risk_control: Mapping[str, Mapping],
    policy: StationPolicy,
    curve_points: int | None = CURVE_POINTS,
) -> ThresholdPreview:
    """What `policy` would do with this version, measured on its validation units.

    Partial automation decides a unit alone when its confidence reaches the certified threshold
    plus the band, but for the random audit share of those, so the automation rate is the share of
    validation units that do times 1 - audit share, and their error rate is the observed error
    (the audits are a random draw of them: the same error, measured live). Full automation decides
    every unit but a random audit share, whatever the confidence: automation is 1 - audit share,
    and the error is that of all units.
    At the other levels a person decides everything. The curve has at most `curve_points` points
    (None: one per distinct confidence).
    """
    confidences = np.asarray(confidences, np.float64)
    wrong = ~np.asarray(correct, bool)
    total = len(confidences)
    level = AutomationLevel(policy.level)
    target = policy.target_escape_rate
    alpha = certified_bound(risk_control, target)
    threshold = None if alpha is None else float(risk_control[alpha]["threshold"])
    applied = None
    automation_rate = 0.0
    decided = np.zeros(total, bool)
    reason = warning = ""

    if level in PERSON_DECIDES:
        reason = PERSON_DECIDES[level]
    elif level == AutomationLevel.PARTIAL:
        if threshold is None:
            reason = _uncertified_reason(risk_control, target) + "; every unit goes to a person"
        else:
            applied = required_confidence(threshold, policy.uncertainty_band)
            decided = confidences >= applied
            automation_rate = float(decided.mean()) * (1.0 - policy.audit_share) if total else 0.0
            if not decided.any():
                reason = f"no validation unit reaches the confidence {applied:g}; every unit goes to a person"
            elif automation_rate <= 0:
                reason = "the audit share sends every unit to a person"
    elif level == AutomationLevel.FULL:
        decided = np.ones(total, bool)
        automation_rate = 1.0 - policy.audit_share
        if automation_rate <= 0:
            reason = "the audit share sends every unit to a person"
        if threshold is None:
            warning = (
                "full automation decides whatever the confidence ("
                + _uncertified_reason(risk_control, target)
                + ")"
            )
        else:
            warning = "full automation decides whatever the confidence: the certified threshold is not used"
    else:
        raise ValueError(f"unknown automation level {policy.level!r}")

    decided_units = int(decided.sum())
    decided_errors = int(wrong[decided].sum())
    observed_error = decided_errors / decided_units if decided_units else None
    if level == AutomationLevel.FULL and observed_error is not None and observed_error > target:
        warning += f"; its error on validation, {observed_error:.2%}, is above the target {target:.2%}"
    operating_point = (
        (automation_rate, observed_error) if observed_error is not None and automation_rate > 0 else None
    )
    return ThresholdPreview(
        level=level.value,
        target_escape_rate=target,
        error_bound=None if alpha is None else float(alpha),
        certified_threshold=threshold,
        applied_threshold=applied,
        automation_rate=automation_rate,
        observed_error=observed_error,
        decided_units=decided_units,
        decided_errors=decided_errors,
        validation_units=total,
        reason=reason,
        warning=warning,
        curve=risk_coverage_curve(confidences, ~wrong, max_points=curve_points),
        operating_point=operating_point,
    )
