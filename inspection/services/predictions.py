"""Predictions made off the request path: a challenger in shadow rollout."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from inspection.enums import PredictionRole
from inspection.models import Prediction, Unit
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
