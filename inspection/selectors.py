"""Reads over stations, units and decisions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db.models import F, OuterRef, Subquery
from django.urls import reverse

from inspection.enums import AutomationLevel, DecisionReason, PredictionRole, QueueReason, UnitStatus, Verdict
from inspection.models import DecisionEvent, Prediction, Station, Unit
from inspection.policy import StationPolicy
from inspection.thresholds import threshold_preview, validation_scores
from models_registry.services import model_reference_get


class UnitNotFound(LookupError):
    pass


def unit_model_visible(*, unit: Unit) -> bool:
    """Whether a person may see the model's output on the unit: not while a blind unit (human
    only, shadow, audit) still waits for a person, who may be the one looking."""
    return not (unit.blind and unit.status == UnitStatus.PENDING)


def unit_current_decision(*, unit: Unit) -> DecisionEvent | None:
    """The unit's decision now: its latest decision event (events are never changed)."""
    decisions = getattr(unit, "_prefetched_objects_cache", {}).get("decisions")
    if decisions is not None:
        return max(decisions, key=lambda event: (event.created_at, event.id), default=None)
    return unit.decisions.order_by("-created_at", "-id").select_related("decided_by_model").first()


def unit_deciding_prediction(*, unit: Unit) -> Prediction | None:
    """The prediction of the model routed to decide the unit (champion, or challenger as canary)."""
    if unit.deciding_model_id is None:
        return None
    predictions = getattr(unit, "_prefetched_objects_cache", {}).get("predictions")
    if predictions is not None:
        return next((p for p in predictions if p.model_version_id == unit.deciding_model_id), None)
    return (
        unit.predictions.filter(
            model_version_id=unit.deciding_model_id,
            role__in=[PredictionRole.CHAMPION, PredictionRole.CANARY],
        )
        .select_related("model_version")
        .first()
    )


def unit_representation(
    *,
    unit: Unit,
    decision: DecisionEvent | None = None,
    prediction: Prediction | None = None,
    loaded: bool = False,
) -> dict:
    """The unit as the line API shows it.

    `score` and `regions` are left out for blind units (human-only, shadow, audits): nobody may
    learn the model's view of them. Otherwise `regions` are the current decision's regions, or the
    model's while the unit is pending. Pass `decision` and `prediction` with `loaded=True` when
    the caller already has them, to save the queries.
    """
    if not loaded:
        decision = unit_current_decision(unit=unit)
        prediction = unit_deciding_prediction(unit=unit)
    body: dict = {
        "id": unit.id,
        "serial": unit.serial,
        "station": unit.station.slug,
        "status": unit.status,
        "decision": decision.verdict if decision else None,
        "decided_by": decision.decided_by if decision else None,
        "decided_at": decision.created_at.isoformat() if decision else None,
        "automation_level": unit.automation_level,
        "model_version": _version_label(unit, prediction),
        "received_at": unit.received_at.isoformat(),
        "captured_at": unit.captured_at.isoformat() if unit.captured_at else None,
        # The frame as a person sees it (EXIF orientation applied): regions are in these pixels.
        "width": unit.image_width,
        "height": unit.image_height,
        "url": reverse("unit-detail", kwargs={"pk": unit.id}),
        "image_url": reverse("unit-image", kwargs={"pk": unit.id}),
    }
    if unit.status == UnitStatus.PENDING:
        body["queue_reason"] = unit.queue_reason
    if "frame_check" in unit.routing:
        body["frame_check"] = unit.routing["frame_check"]["message"]
    if not unit.blind:
        body["score"] = round(prediction.defect_probability, 6) if prediction else None
        if decision is not None:
            body["regions"] = decision.regions
        else:
            body["regions"] = prediction.regions if prediction else []
    return body


def unit_why_shown(*, unit: Unit, prediction: Prediction | None) -> str:
    """Why the unit waits for a person, in words, from the routing fixed when it arrived (the
    thresholds in force then, not today's). Blind units say nothing of the model's output."""
    routing = unit.routing or {}
    reason = unit.queue_reason
    if reason == QueueReason.DEFERRED:
        required = routing.get("required_confidence")
        if required is not None and prediction is not None:
            confidence, needed = _distinct(prediction.confidence, required)
            return f"Deferred: confidence {confidence} below the {needed} this station needs"
        target = routing.get("target_escape_rate")
        if required is None and target is not None:
            return (
                f"Deferred: no confidence threshold is certified for this station's target "
                f"({_percent(target)} escapes), so the model decides nothing alone"
            )
    if reason == QueueReason.AUDIT and routing.get("audit_share") is not None:
        level = "partial" if routing.get("level") == AutomationLevel.PARTIAL else "full"
        share = _percent(routing["audit_share"])
        return f"Random audit ({share} of {level} automation's units): judge it blind"
    if reason == QueueReason.FRAME_CHECK and "frame_check" in routing:
        message = routing["frame_check"]["message"]
        return f"Frame check: {message.removeprefix('frame check: ')}"
    words = {
        QueueReason.SHADOW: "Shadow level: the model's verdict is hidden",
        QueueReason.ASSISTED: "AI-assisted: the model's highlights are shown",
        QueueReason.HUMAN: "Human-only level",
        QueueReason.NO_MODEL: "No model could decide",
    }
    if reason in words:
        return words[reason]
    return QueueReason(reason).label if reason in QueueReason.values else "Waiting for a person"


def _distinct(low: float, high: float) -> tuple[str, str]:
    """Two figures with two decimals, more when two would print them equal (0.996 vs 1.00)."""
    for digits in (2, 3, 4):
        shown = f"{low:.{digits}f}", f"{high:.{digits}f}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _percent(share: float) -> str:
    """0.02 -> "2 %", 0.005 -> "0.5 %"."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + " %"


def _version_label(unit: Unit, prediction: Prediction | None) -> str | None:
    if prediction is not None:
        version = prediction.model_version
        return f"{version.name}:{version.version}"
    if unit.deciding_model is not None:
        return f"{unit.deciding_model.name}:{unit.deciding_model.version}"
    return None


def unit_get(*, unit_id: int, station: Station | None = None) -> Unit:
    """A unit by id; with `station`, only that station's (a device key sees nothing else)."""
    units = Unit.objects.select_related("station", "deciding_model")
    if station is not None:
        units = units.filter(station=station)
    found = units.filter(pk=unit_id).first()
    if found is None:
        where = f" at station {station.slug}" if station is not None else ""
        raise UnitNotFound(f"no unit {unit_id}{where}")
    return found


def station_get(*, slug: str) -> Station:
    return Station.objects.select_related("champion", "challenger").get(slug=slug)


def station_threshold_previews(*, station: Station, policy: StationPolicy) -> list[dict]:
    """The threshold tool's figures for the station's champion and challenger under `policy` (the
    supervisor's settings, perhaps not saved yet), each measured on its own validation units."""
    previews = []
    for role, model_version in (("champion", station.champion), ("challenger", station.challenger)):
        if model_version is None:
            if role == "champion":
                previews.append({"role": role, "model_version": None, "reason": "no champion model"})
            continue
        entry = {
            "role": role,
            "model_version": f"{model_version.name}:{model_version.version}",
            "rollout_mode": station.rollout_mode if role == "challenger" else None,
        }
        try:
            _, arrays = model_reference_get(model_version=model_version)
        except FileNotFoundError:
            previews.append({**entry, "reason": "the version's bundle has no validation reference"})
            continue
        confidences, correct = validation_scores(arrays)
        preview = threshold_preview(
            confidences=confidences, correct=correct, risk_control=model_version.risk_control, policy=policy
        )
        previews.append({**entry, **preview.as_dict()})
    return previews


@dataclass(frozen=True)
class EscapeRisk:
    """A policy whose champion would decide with an error on validation above the target."""

    level: str
    model_version: str
    automation_rate: float
    observed_error: float
    target_escape_rate: float

    @property
    def message(self) -> str:
        return (
            f"at {AutomationLevel(self.level).label.lower()} the champion {self.model_version} would "
            f"decide {self.automation_rate:.1%} of units alone with an error of {self.observed_error:.2%} "
            f"on its validation units, above the target escape rate {self.target_escape_rate:.2%}"
        )


def station_escape_risk(*, station: Station, policy: StationPolicy) -> EscapeRisk | None:
    """Whether `policy` (perhaps not saved yet) lets the station's champion decide with an error
    above the target: its error among the validation units it would decide alone (the threshold
    tool's figure). None when within the target, when the model decides nothing alone, or when
    there is nothing to measure it on."""
    if policy.level not in (AutomationLevel.PARTIAL, AutomationLevel.FULL):
        return None
    [champion, *_] = station_threshold_previews(station=station, policy=policy)
    observed = champion.get("observed_error")
    if observed is None or champion.get("automation_rate", 0) <= 0 or observed <= policy.target_escape_rate:
        return None
    return EscapeRisk(
        level=AutomationLevel(policy.level).value,
        model_version=champion["model_version"],
        automation_rate=champion["automation_rate"],
        observed_error=observed,
        target_escape_rate=policy.target_escape_rate,
    )


# The figures of a version's canary kept small to read before a promotion: the latency's
# percentiles are over its latest predictions at the station.
LATENCY_SAMPLE = 5000


def model_version_station_figures(*, station: Station, model_version) -> dict:
    """What `model_version` did at `station`, measured: units it predicted and decided alone,
    its agreement with the people who judged the same units, the escapes found among its own
    decisions by audits and overrides (it passed, a person failed), and its latency."""
    predictions = Prediction.objects.filter(unit__station=station, model_version=model_version)
    own_verdict = predictions.filter(unit=OuterRef("pk")).values("verdict")[:1]
    human_verdict = (
        DecisionEvent.objects.filter(unit=OuterRef("pk"), decided_by_user__isnull=False)
        .order_by("-created_at", "-id")
        .values("verdict")[:1]
    )
    judged = (
        Unit.objects.filter(station=station, predictions__model_version=model_version)
        .annotate(model_verdict=Subquery(own_verdict), human_verdict=Subquery(human_verdict))
        .exclude(human_verdict=None)
    )
    compared = judged.count()
    agreed = judged.filter(model_verdict=F("human_verdict")).count()
    decided_alone = DecisionEvent.objects.filter(
        unit__station=station, decided_by_model=model_version, reason=DecisionReason.AUTOMATIC
    )
    checked = judged.filter(pk__in=decided_alone.values("unit_id"))
    checked_count = checked.count()
    escapes = checked.filter(model_verdict=Verdict.PASS, human_verdict=Verdict.FAIL).count()
    latencies = np.asarray(predictions.order_by("-id").values_list("latency_ms", flat=True)[:LATENCY_SAMPLE])
    return {
        "model_version": f"{model_version.name}:{model_version.version}",
        "predicted": predictions.count(),
        "decided_alone": decided_alone.values("unit_id").distinct().count(),
        "compared_with_people": compared,
        "agreement": agreed / compared if compared else None,
        "checked_by_people": checked_count,
        "escapes": escapes,
        "escape_rate": escapes / checked_count if checked_count else None,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if len(latencies) else None,
    }
