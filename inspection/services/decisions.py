"""A person decides a unit: record the event, log disagreements with the models, notify.

Every model prediction of the unit is compared with the human verdict: at image level, and, when
both give regions, region by region (matched by IoU). Those are the shadow-mode and audit
measurements of how often the model and the inspectors agree; a verdict on a partial automation
audit also queues the check of its live escape rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from inspection import claims
from inspection.background import Task, task_enqueue
from inspection.enums import (
    AutomationLevel,
    DecisionReason,
    DisagreementKind,
    QueueReason,
    UnitStatus,
    Verdict,
)
from inspection.events import UNIT_DECIDED, station_event_publish
from inspection.models import DecisionEvent, Disagreement, Unit
from inspection.selectors import unit_representation
from inspection.signals import human_decision_recorded
from inspection.webhooks.services import webhook_delivery_create

REGION_MATCH_IOU = 0.3
# The unit's columns that copy its latest decision event (see inspection.models).
DECISION_COPY = ("status", "decision_verdict", "decision_source", "decision_reason", "decided_at")
_REASON_BY_QUEUE = {QueueReason.DEFERRED: DecisionReason.DEFERRED, QueueReason.AUDIT: DecisionReason.AUDIT}


class DecisionRejected(ValueError):
    """The decision is not valid for this unit; the message says why."""


class DecisionConflict(DecisionRejected):
    """Another inspector holds the unit's claim."""


@dataclass(frozen=True)
class HumanRegion:
    x: float
    y: float
    width: float
    height: float
    label: str

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "label": self.label}


def decision_record(
    *,
    unit: Unit,
    user,
    verdict: str,
    defect_classes: Sequence[str] = (),
    regions: Sequence[HumanRegion] = (),
) -> DecisionEvent:
    """Record a person's verdict on a unit. On a pending unit it is the final decision; on a
    decided one it overrides the last decision (reason "override")."""
    if verdict not in Verdict.values:
        raise DecisionRejected(f"verdict must be one of {', '.join(Verdict.values)}, not {verdict!r}")
    if verdict == Verdict.PASS and (defect_classes or regions):
        raise DecisionRejected("a pass has no defect classes or regions")
    known = set(unit.station.defect_classes)
    named = set(defect_classes) | {region.label for region in regions}
    unknown = sorted(named - known) if known else []
    if unknown:
        raise DecisionRejected(
            f"unknown defect class {', '.join(unknown)} for station {unit.station.slug} "
            f"(known: {', '.join(unit.station.defect_classes)})"
        )
    for region in regions:
        if region.width <= 0 or region.height <= 0:
            raise DecisionRejected("a region needs a positive width and height")
        if (
            region.x < 0
            or region.y < 0
            or region.x + region.width > unit.image_width + 0.5
            or (region.y + region.height > unit.image_height + 0.5)
        ):
            raise DecisionRejected(
                f"region {region.as_dict()} lies outside the {unit.image_width}x{unit.image_height} image"
            )
    classes = sorted(set(defect_classes) | {region.label for region in regions})

    with transaction.atomic():
        locked = (
            Unit.objects.select_for_update(of=("self",))
            .select_related("station", "claimed_by")
            .get(pk=unit.pk)
        )
        if locked.status == UnitStatus.PENDING:
            claims.check(
                locked,
                user=user,
                refuse=lambda holder: DecisionConflict(f"unit {locked.pk} is being decided by {holder}"),
            )
        if locked.status == UnitStatus.PENDING:
            reason = _REASON_BY_QUEUE.get(locked.queue_reason, DecisionReason.HUMAN)
        else:
            reason = DecisionReason.OVERRIDE
        decision = DecisionEvent.objects.create(
            unit=locked,
            verdict=verdict,
            defect_classes=classes,
            regions=[region.as_dict() for region in regions],
            decided_by_user=user,
            reason=reason,
            policy=locked.routing,
        )
        locked.status = UnitStatus.DECIDED
        locked.decision_verdict = decision.verdict
        locked.decision_source = decision.decided_by
        locked.decision_reason = decision.reason
        locked.decided_at = decision.created_at
        locked.save(update_fields=[*DECISION_COPY, *claims.clear(locked)])
        disagreements_record(decision=decision)
        human_decision_recorded.send(sender=DecisionEvent, decision=decision)
        body = unit_representation(unit=locked)
        webhook_delivery_create(decision=decision, unit_body=body)
        transaction.on_commit(
            lambda: station_event_publish(
                station_slug=locked.station.slug, events=[{"type": UNIT_DECIDED, "unit": body}]
            )
        )
        if locked.queue_reason == QueueReason.AUDIT and locked.automation_level == AutomationLevel.PARTIAL:
            # A verdict on a unit partial automation would have decided alone: its live escape rate moved.
            station_id = locked.station_id
            transaction.on_commit(
                lambda: task_enqueue(Task.ESCAPE_RATE_CHECK, station_id, what="escape rate check")
            )
    unit.status = locked.status
    return decision


def disagreements_record(*, decision: DecisionEvent, predictions=None) -> list[Disagreement]:
    """Compare a human decision with each model prediction of its unit (or those given)."""
    created: list[Disagreement] = []
    human_regions = decision.regions
    for prediction in decision.unit.predictions.all() if predictions is None else predictions:
        if prediction.verdict != decision.verdict:
            created.append(
                Disagreement(
                    unit=decision.unit,
                    decision=decision,
                    prediction=prediction,
                    kind=DisagreementKind.IMAGE,
                    human_verdict=decision.verdict,
                    model_verdict=prediction.verdict,
                )
            )
        if decision.verdict == Verdict.FAIL and human_regions and prediction.regions:
            for human, model, overlap in region_mismatches(human_regions, prediction.regions):
                created.append(
                    Disagreement(
                        unit=decision.unit,
                        decision=decision,
                        prediction=prediction,
                        kind=DisagreementKind.REGION,
                        human_verdict=Verdict.FAIL if human else Verdict.PASS,
                        model_verdict=Verdict.FAIL if model else Verdict.PASS,
                        detail={"human": human, "model": model, "iou": round(overlap, 4)},
                    )
                )
    if created:
        Unit.objects.filter(pk=decision.unit_id, disagreement=False).update(disagreement=True)
    return Disagreement.objects.bulk_create(created)


def iou(a: dict, b: dict) -> float:
    x1, y1 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x2 = min(a["x"] + a["width"], b["x"] + b["width"])
    y2 = min(a["y"] + a["height"], b["y"] + b["height"])
    intersection = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a["width"] * a["height"] + b["width"] * b["height"] - intersection
    return intersection / union if union > 0 else 0.0


def region_mismatches(
    human: Sequence[dict], model: Sequence[dict]
) -> list[tuple[dict | None, dict | None, float]]:
    """Regions without a partner: greedy one-to-one matching by IoU (best pairs first), a pair
    counting as the same defect at IoU >= REGION_MATCH_IOU with the same class.

    Returns (human region, None, best IoU) for what the model missed, (None, model region, best
    IoU) for what the human did not mark, and (human, model, IoU) for a matched place whose
    classes differ.
    """
    pairs = sorted(
        ((iou(h, m), i, j) for i, h in enumerate(human) for j, m in enumerate(model)), reverse=True
    )
    matched_human: dict[int, tuple[int, float]] = {}
    matched_model: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < REGION_MATCH_IOU:
            break
        if i in matched_human or j in matched_model:
            continue
        matched_human[i] = (j, overlap)
        matched_model.add(j)
    mismatches: list[tuple[dict | None, dict | None, float]] = []
    for i, region in enumerate(human):
        if i not in matched_human:
            best = max((iou(region, m) for m in model), default=0.0)
            mismatches.append((region, None, best))
            continue
        j, overlap = matched_human[i]
        if region.get("label") != model[j].get("label"):
            mismatches.append((region, model[j], overlap))
    for j, region in enumerate(model):
        if j not in matched_model:
            best = max((iou(h, region) for h in human), default=0.0)
            mismatches.append((None, region, best))
    return mismatches
