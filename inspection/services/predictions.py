"""Predictions made off the request path: a challenger in shadow rollout."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection.background import Task, task_enqueue
from inspection.enums import AutomationLevel, PredictionRole, RolloutMode
from inspection.models import Prediction, Station, StationChange, Unit
from inspection.services.decisions import disagreements_record
from models_registry.models import ModelVersion

logger = logging.getLogger(__name__)


def challenger_prediction_make(*, unit: Unit, model_version: ModelVersion) -> Prediction:
    """Run `model_version` on a stored unit and keep its prediction as a shadow. Safe to repeat:
    a unit has at most one prediction per model version."""
    from inspection.services.units import prediction_result
    from models_registry.services import predictor_get

    existing = Prediction.objects.filter(unit=unit, model_version=model_version).first()
    if existing is not None:
        return existing
    predictor = predictor_get(model_version=model_version)
    with unit.image.open("rb") as image_file:
        prediction = predictor.predict(image_file.read())
    result = prediction_result(prediction)
    try:
        with transaction.atomic():
            made = Prediction.objects.create(
                unit=unit, model_version=model_version, role=PredictionRole.CHALLENGER_SHADOW, **result.fields
            )
            # A person may have decided the unit before this prediction was ready.
            human = (
                unit.decisions.filter(decided_by_user__isnull=False).order_by("-created_at", "-id").first()
            )
            if human is not None:
                disagreements_record(decision=human, predictions=[made])
            return made
    except IntegrityError:
        return Prediction.objects.get(unit=unit, model_version=model_version)


def challenger_predictions_resend(
    *, older_than: timedelta = timedelta(minutes=2), within: timedelta = timedelta(hours=1)
) -> int:
    """Requeue the shadow predictions a broker outage or a dead worker lost: units that reached a
    station while its challenger was in shadow (the unit's routing says so), at least `older_than`
    ago and within `within`, with no prediction of the challenger yet. The worker's task is safe to
    repeat, so a prediction still on its way is at worst made once and found the second time."""
    now = timezone.now()
    count = 0
    stations = Station.objects.filter(challenger__isnull=False, rollout_mode=RolloutMode.SHADOW)
    for station in stations:
        challenger_since = (
            StationChange.objects.filter(station=station, field="challenger")
            .order_by("-changed_at")
            .values_list("changed_at", flat=True)
            .first()
        )
        since = max(filter(None, (now - within, challenger_since)))
        missing = (
            Unit.objects.filter(
                station=station,
                received_at__gte=since,
                received_at__lt=now - older_than,
                routing__rollout_mode=RolloutMode.SHADOW,
            )
            .exclude(automation_level=AutomationLevel.HUMAN)
            .exclude(routing__has_key="frame_check")
            .exclude(predictions__model_version_id=station.challenger_id)
            .values_list("id", flat=True)
        )
        for unit_id in missing:
            count += task_enqueue(
                Task.CHALLENGER_PREDICT, unit_id, station.challenger_id, what="challenger prediction"
            )
    if count:
        logger.warning("Requeued %s lost challenger predictions", count)
    return count
