"""Constructed rows for dashboard tests: units, predictions and decision events at chosen times,
written straight to the database (no image, no model run), so every count is known."""

from __future__ import annotations

from datetime import datetime
from itertools import count

from inspection.enums import DecisionReason, PredictionRole, UnitStatus
from inspection.models import DecisionEvent, Prediction, Station, Unit
from models_registry.models import ModelVersion

_serials = count(1)


def model_version(name: str = "screens", version: int = 1) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name,
        version=version,
        mlflow_run_id="test",
        source_uri="file:///nowhere",
        dataset_name="screens",
        architecture="defectnet",
        classes=["crack", "scratch"],
    )


def unit(
    station: Station,
    *,
    at: datetime,
    queue_reason: str = "",
    model: ModelVersion | None = None,
    pending: bool = False,
) -> Unit:
    return Unit.objects.create(
        station=station,
        serial=f"SN-{next(_serials)}",
        image="units/none.jpg",
        image_sha256="0" * 64,
        image_width=64,
        image_height=64,
        image_format="JPEG",
        received_at=at,
        status=UnitStatus.PENDING if pending else UnitStatus.DECIDED,
        automation_level=station.automation_level,
        queue_reason=queue_reason,
        blind=queue_reason in ("shadow", "audit", "human"),
        deciding_model=model,
    )


def predict(
    unit: Unit, model: ModelVersion, verdict: str, *, role: str = PredictionRole.CHAMPION
) -> Prediction:
    prediction = Prediction.objects.create(
        unit=unit,
        model_version=model,
        role=role,
        defect_probability=0.9 if verdict == "fail" else 0.1,
        label="crack" if verdict == "fail" else "no_defect",
        confidence=0.9,
        verdict=verdict,
        latency_ms=12.0,
    )
    Prediction.objects.filter(pk=prediction.pk).update(created_at=unit.received_at)
    return prediction


def decide(
    unit: Unit, *, verdict: str, at: datetime, reason: str, model: ModelVersion | None = None, user=None
) -> DecisionEvent:
    return DecisionEvent.objects.create(
        unit=unit, verdict=verdict, decided_by_model=model, decided_by_user=user, reason=reason, created_at=at
    )


def automatic(station: Station, model: ModelVersion, *, at: datetime, verdict: str = "pass") -> Unit:
    """A unit the model decided alone."""
    decided = unit(station, at=at, model=model)
    predict(decided, model, verdict)
    decide(decided, verdict=verdict, at=at, reason=DecisionReason.AUTOMATIC, model=model)
    return decided


def judged_blind(
    station: Station,
    model: ModelVersion,
    person,
    *,
    at: datetime,
    reason: str,
    model_verdict: str,
    human_verdict: str,
    decided_at: datetime,
) -> Unit:
    """A blind unit (shadow or audit) the model predicted and a person judged."""
    blind = unit(station, at=at, queue_reason=reason, model=model)
    predict(blind, model, model_verdict)
    decision_reason = DecisionReason.AUDIT if reason == "audit" else DecisionReason.HUMAN
    decide(blind, verdict=human_verdict, at=decided_at, reason=decision_reason, user=person)
    return blind
