"""A unit's story in order: its arrival and routing, each prediction, each decision with the
policy it was made under, disagreements region by region, webhook deliveries, alarms it arrived
during, comments, and what the higher layers add (labeling's tasks, submissions and reviews).

Higher layers contribute through `timeline_source_register` (labeling registers in its
AppConfig), so this module never imports them. A source gets the unit and whether the viewer may
see the model's output (`unit_model_visible`): nothing of the model on a blind unit still
waiting for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.urls import reverse

from inspection.enums import AutomationLevel, DecisionReason, PredictionRole, QueueReason
from inspection.models import DecisionEvent, Disagreement, Prediction, Unit
from inspection.supervision.models import Alarm
from inspection.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # received, prediction, decision, override, disagreement, webhook, alarm, comment, label…
    title: str
    lines: tuple[str, ...] = ()
    actor: str = ""  # the person or model version that acted
    link: str = ""
    # Ties in time keep the order the story happened in (a decision before its disagreements).
    order: int = field(default=0, compare=False)


TimelineSource = Callable[[Unit, bool], Iterable[TimelineEntry]]
_sources: list[TimelineSource] = []


def timeline_source_register(source: TimelineSource) -> None:
    if source not in _sources:
        _sources.append(source)


def unit_timeline(*, unit: Unit, model_visible: bool) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = [_received(unit), *_alarms(unit)]
    predictions = list(unit.predictions.select_related("model_version").defer("embedding"))
    if model_visible:
        entries += [_prediction(unit, prediction) for prediction in predictions]
    decisions = list(unit.decisions.select_related("decided_by_model", "decided_by_user"))
    entries += [_decision(decision) for decision in decisions]
    if model_visible:
        disagreements = unit.disagreements.select_related("prediction__model_version").order_by("id")
        entries += [_disagreement(disagreement) for disagreement in disagreements]
    entries += [_delivery(delivery) for delivery in WebhookDelivery.objects.filter(decision__unit=unit)]
    entries += [
        TimelineEntry(
            at=comment.created_at,
            kind="comment",
            title="Comment",
            lines=(comment.body,),
            actor=comment.author.get_username(),
            order=9,
        )
        for comment in unit.comments.select_related("author")
    ]
    for source in _sources:
        entries += list(source(unit, model_visible))
    return sorted(entries, key=lambda entry: (entry.at, entry.order))


def policy_in_words(policy: dict) -> str:
    """A routing or decision's policy snapshot as a sentence a supervisor reads."""
    if not policy:
        return "no policy recorded"
    parts = []
    if level := policy.get("level"):
        parts.append(AutomationLevel(level).label if level in AutomationLevel.values else level)
    if (target := policy.get("target_escape_rate")) is not None:
        parts.append(f"target escape rate {_percent(target)}")
    certified, required = policy.get("certified_threshold"), policy.get("required_confidence")
    if required is not None:
        band = policy.get("uncertainty_band") or 0.0
        if certified is not None and band:
            parts.append(f"needs confidence {required:.3f} (certified {certified:.3f} + band {band:.3f})")
        else:
            parts.append(f"needs confidence {required:.3f}")
    elif certified is None and policy.get("level") in (AutomationLevel.PARTIAL, AutomationLevel.FULL):
        parts.append("no certified threshold")
    audited = policy.get("level") in (AutomationLevel.PARTIAL, AutomationLevel.FULL)
    if audited and policy.get("audit_share") is not None:
        parts.append(f"audit share {_percent(policy['audit_share'])}")
    if model := policy.get("model_version"):
        role = policy.get("role") or "champion"
        parts.append(f"{role} {model}")
    if reason := policy.get("queue_reason"):
        parts.append(f"sent to a person: {_queue_reason(reason)}")
    elif policy.get("outcome") == "decide":
        parts.append("the model decided")
    return "; ".join(parts)


def _received(unit: Unit) -> TimelineEntry:
    lines = [
        f"{unit.image_width}x{unit.image_height} {unit.image_format}"
        + (f", sent as {unit.source_filename}" if unit.source_filename else ""),
    ]
    if unit.captured_at:
        lines.append(f"captured at {unit.captured_at:%Y-%m-%d %H:%M:%S}")
    if unit.metadata:
        lines.append("metadata: " + ", ".join(f"{key}={value}" for key, value in unit.metadata.items()))
    lines.append("routed under " + policy_in_words(unit.routing))
    if "frame_check" in unit.routing:
        lines.append("frame check: " + unit.routing["frame_check"]["message"])
    return TimelineEntry(
        at=unit.received_at, kind="received", title="Received from the line", lines=tuple(lines)
    )


def _prediction(unit: Unit, prediction: Prediction) -> TimelineEntry:
    version = prediction.model_version
    lines = [
        f"defect probability {prediction.defect_probability:.3f}, class {prediction.label}, "
        f"calibrated confidence {prediction.confidence:.3f}",
        f"{len(prediction.regions)} region{'s' if len(prediction.regions) != 1 else ''}, "
        f"{prediction.latency_ms:.0f} ms",
    ]
    if prediction.regions_corrected:
        lines.append(f"regions corrected: {prediction.regions_corrected}")
    role = (
        PredictionRole(prediction.role).label if prediction.role in PredictionRole.values else prediction.role
    )
    return TimelineEntry(
        at=prediction.created_at,
        kind="prediction",
        title=f"{role.capitalize()} predicted {prediction.verdict}",
        lines=tuple(lines),
        actor=f"{version.name}:{version.version}",
        order=1,
    )


def _decision(decision: DecisionEvent) -> TimelineEntry:
    if decision.decided_by_model is not None:
        actor = f"{decision.decided_by_model.name}:{decision.decided_by_model.version}"
    else:
        actor = decision.decided_by_user.get_username()
    lines = []
    if decision.defect_classes:
        lines.append("classes: " + ", ".join(decision.defect_classes))
    if decision.regions:
        lines.append(f"{len(decision.regions)} region{'s' if len(decision.regions) != 1 else ''}")
    lines.append("under " + policy_in_words(decision.policy))
    override = decision.reason == DecisionReason.OVERRIDE
    return TimelineEntry(
        at=decision.created_at,
        kind="override" if override else "decision",
        title=f"{'Overridden' if override else 'Decided'}: {decision.verdict}"
        f" ({DecisionReason(decision.reason).label.lower()})",
        lines=tuple(lines),
        actor=actor,
        order=2,
    )


def _disagreement(disagreement: Disagreement) -> TimelineEntry:
    version = disagreement.prediction.model_version
    if disagreement.kind == "image":
        title = (
            f"Disagreement: the person said {disagreement.human_verdict}, "
            f"the model {disagreement.model_verdict}"
        )
        lines: tuple[str, ...] = ()
    else:
        human, model = disagreement.detail.get("human"), disagreement.detail.get("model")
        iou = disagreement.detail.get("iou", 0.0)
        if human and model:
            title = f"Region disagreement: the person's {human['label']} is the model's {model['label']}"
        elif human:
            title = f"Region the model missed: {human['label']}"
        else:
            title = f"Region the person did not mark: {model['label']}"
        lines = tuple(
            f"{who} {_box(region)}" for who, region in (("person", human), ("model", model)) if region
        ) + (f"best overlap IoU {iou:.2f}",)
    return TimelineEntry(
        at=disagreement.created_at,
        kind="disagreement",
        title=title,
        lines=lines,
        actor=f"{version.name}:{version.version}",
        order=3,
    )


def _delivery(delivery: WebhookDelivery) -> TimelineEntry:
    lines = [f"to {delivery.url}", f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"]
    if delivery.last_status_code:
        took = f" in {delivery.last_duration_ms} ms" if delivery.last_duration_ms is not None else ""
        lines.append(f"last answer HTTP {delivery.last_status_code}{took}")
    if delivery.last_error:
        lines.append(f"last attempt: {delivery.last_error}")
    if delivery.delivered_at:
        lines.append(f"delivered at {delivery.delivered_at:%Y-%m-%d %H:%M:%S}")
    return TimelineEntry(
        at=delivery.created_at,
        kind="webhook",
        title=f"Webhook {delivery.status}",
        lines=tuple(lines),
        order=4,
    )


def _alarms(unit: Unit) -> list[TimelineEntry]:
    active = Alarm.objects.filter(station_id=unit.station_id, raised_at__lte=unit.received_at).filter(
        Q(cleared_at__isnull=True) | Q(cleared_at__gte=unit.received_at)
    )
    return [
        TimelineEntry(
            at=unit.received_at,
            kind="alarm",
            title=f"Arrived during alarm {alarm.pk}: {alarm.get_kind_display()}",
            lines=(alarm.summary,),
            link=reverse("units") + f"?alarm={alarm.pk}",
            order=0,
        )
        for alarm in active
    ]


def _queue_reason(reason: str) -> str:
    return QueueReason(reason).label.lower() if reason in QueueReason.values else reason


def _percent(share: float) -> str:
    return f"{share * 100:.2g} %"


def _box(region: dict) -> str:
    return f"at ({region['x']:.0f}, {region['y']:.0f}) {region['width']:.0f}x{region['height']:.0f} px"
