"""Supervision's reads that the background drift check and the dashboard share."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from inspection.enums import QueueReason
from inspection.models import DecisionEvent, Prediction, Unit

BLIND_REASONS = (QueueReason.SHADOW, QueueReason.AUDIT)


def blind_judged(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """Blind units with a person's verdict (their latest) and the deciding model's, annotated as
    `human_verdict` and `model_verdict`."""
    human = (
        DecisionEvent.objects.filter(unit=OuterRef("pk"), decided_by_user__isnull=False)
        .order_by("-created_at", "-id")
        .values("verdict")[:1]
    )
    # At most one prediction per unit and model version; no ORDER BY, which could lead PostgreSQL
    # to walk the whole table in id order for each unit.
    model = (
        Prediction.objects.filter(unit=OuterRef("pk"), model_version=OuterRef("deciding_model"))
        .order_by()
        .values("verdict")[:1]
    )
    return (
        units.filter(queue_reason__in=BLIND_REASONS, deciding_model__isnull=False)
        .annotate(human_verdict=Subquery(human), model_verdict=Subquery(model))
        .filter(human_verdict__isnull=False, model_verdict__isnull=False)
    )
