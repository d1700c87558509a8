"""Who decides a unit: the automation policy, as pure functions over plain values.

`route` picks the model whose prediction counts (champion, or the challenger for a sticky canary
share of units); `decide` turns the station's level, that model's output and its certified
threshold into an outcome: the model decides, or the unit goes to a human (deferred, audit, or
because the level asks for one), blind or seeing the model's output.

No Django here (the enumerations are `inspection.enums`): the table of cases in
tests/inspection/test_policy.py is the specification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum

from inspection.enums import AutomationLevel, QueueReason, RolloutMode, Verdict
from models_registry.ml.calibration import loosest_bound_within


class Action(StrEnum):
    DECIDE = "decide"  # the model's verdict is final
    QUEUE = "queue"  # a human decides


class Role(StrEnum):
    CHAMPION = "champion"
    CANARY = "canary"


@dataclass(frozen=True)
class ModelOutput:
    """What the policy needs of a prediction: its verdict and the calibrated confidence in it."""

    verdict: Verdict | str
    confidence: float


@dataclass(frozen=True)
class StationPolicy:
    level: AutomationLevel
    target_escape_rate: float
    uncertainty_band: float = 0.0
    audit_share: float = 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "level": AutomationLevel(self.level).value}


@dataclass(frozen=True)
class Outcome:
    action: Action
    verdict: str | None  # the model's verdict when it decides
    queue_reason: QueueReason | str  # "" when decided
    blind: bool  # a human must not see the model's output
    run_model: bool  # whether the level uses the model at all
    threshold: float | None  # the confidence the model had to reach (partial), if any

    def as_dict(self) -> dict:
        return asdict(self)


def model_needed(level: AutomationLevel) -> bool:
    """Human-only stations never run the model: its output is neither used nor shown."""
    return AutomationLevel(level) != AutomationLevel.HUMAN


def certified_bound(risk_control: Mapping[str, Mapping], target_escape_rate: float) -> str | None:
    """The error bound (a key of `risk_control`) whose threshold a station at this target uses.

    `risk_control` is a model version's table `{alpha: {"threshold", "certified", ...}}`. Among the
    bounds no looser than the target, the loosest certified one is used (it automates the most while
    still meeting the target); None when no such bound was certified.
    """
    certified = [
        alpha
        for alpha, entry in risk_control.items()
        if entry.get("certified") and entry.get("threshold") is not None
    ]
    return loosest_bound_within(certified, target_escape_rate)


def certified_threshold(risk_control: Mapping[str, Mapping], target_escape_rate: float) -> float | None:
    """The confidence threshold certified for the bound `certified_bound` picks; None if none."""
    alpha = certified_bound(risk_control, target_escape_rate)
    return None if alpha is None else float(risk_control[alpha]["threshold"])


def required_confidence(threshold: float, uncertainty_band: float) -> float:
    """The confidence a prediction needs for the model to decide alone at the partial level:
    the certified threshold raised by the station's band, never above 1."""
    return min(1.0, threshold + uncertainty_band)


def decide(
    policy: StationPolicy,
    output: ModelOutput | None,
    *,
    threshold: float | None,
    audit_draw: float,
    frame_problem: str | None = None,
) -> Outcome:
    """The outcome for one unit.

    `output` is the routed model's prediction (None when no model ran or it failed); `threshold`
    its certified confidence threshold at the station's target (None when not certified);
    `audit_draw` the unit's uniform number in [0, 1) (the module's `audit_draw`): a unit the
    model would decide alone, at partial or full automation, goes blind to a person when it is
    below the audit share; `frame_problem` why the frame check kept the frame from the model (a
    blank, uniform, badly exposed or tiny frame).
    """
    level = AutomationLevel(policy.level)
    if level == AutomationLevel.HUMAN:
        return Outcome(Action.QUEUE, None, QueueReason.HUMAN, blind=True, run_model=False, threshold=None)
    if frame_problem is not None:
        # Whatever the model would say of a frame it cannot judge, it never decides it.
        return Outcome(
            Action.QUEUE, None, QueueReason.FRAME_CHECK, blind=True, run_model=True, threshold=None
        )
    if output is None:
        # The model could not give an answer: a human decides, as at the assisted level without
        # highlights. Never an automatic verdict without a prediction.
        return Outcome(Action.QUEUE, None, QueueReason.NO_MODEL, blind=True, run_model=True, threshold=None)
    if level == AutomationLevel.SHADOW:
        return Outcome(Action.QUEUE, None, QueueReason.SHADOW, blind=True, run_model=True, threshold=None)
    if level == AutomationLevel.ASSISTED:
        return Outcome(Action.QUEUE, None, QueueReason.ASSISTED, blind=False, run_model=True, threshold=None)
    if level == AutomationLevel.PARTIAL:
        if threshold is None:
            # Nothing certified at this target: the model may not decide anything alone.
            return Outcome(
                Action.QUEUE, None, QueueReason.DEFERRED, blind=False, run_model=True, threshold=None
            )
        required = required_confidence(threshold, policy.uncertainty_band)
        if output.confidence >= required:
            if audit_draw < policy.audit_share:
                # A unit the model would decide alone, sent blind to a person: the live measure
                # of the escape rate the threshold was certified for.
                return Outcome(
                    Action.QUEUE, None, QueueReason.AUDIT, blind=True, run_model=True, threshold=required
                )
            return Outcome(Action.DECIDE, output.verdict, "", blind=False, run_model=True, threshold=required)
        return Outcome(
            Action.QUEUE, None, QueueReason.DEFERRED, blind=False, run_model=True, threshold=required
        )
    if level == AutomationLevel.FULL:
        if audit_draw < policy.audit_share:
            return Outcome(Action.QUEUE, None, QueueReason.AUDIT, blind=True, run_model=True, threshold=None)
        return Outcome(Action.DECIDE, output.verdict, "", blind=False, run_model=True, threshold=None)
    raise ValueError(f"unknown automation level {policy.level!r}")


def canary_draw(station_slug: str, serial: str) -> float:
    """A number in [0, 1) fixed by station and serial: the same unit always routes the same way."""
    return _draw(station_slug, serial)


def audit_draw(station_slug: str, serial: str) -> float:
    """The unit's audit draw in [0, 1), fixed by station and serial like `canary_draw` (a unit
    posted again is audited again or not at all) and independent of it: a canary unit is as likely
    to be audited as any other."""
    return _draw(station_slug, serial, "audit")


def _draw(*parts: str) -> float:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(*, has_challenger: bool, rollout_mode: str, canary_share: float, draw: float) -> Role:
    """Whose prediction counts for a unit: the challenger only for the canary share in canary mode."""
    if has_challenger and rollout_mode == RolloutMode.CANARY and draw < canary_share:
        return Role.CANARY
    return Role.CHAMPION
