"""A unit arrives from the line: check, store, predict, apply the policy, answer.

Order matters for "nothing accepted is ever lost": the image is validated before anything is
written, the file is stored, and the unit, its prediction and (when the model decides) the
decision event are committed in one transaction before the response is built. A frame the
model cannot judge (the frame check: blank, uniform, badly exposed, too small) is never shown to
the model: it goes to a person, and a run of them raises a camera fault alarm. A failure
anywhere removes the file and leaves no row. Events, webhooks and the challenger's shadow
prediction go out only after the commit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection import policy
from inspection.background import Task, task_enqueue
from inspection.enums import (
    AutomationLevel,
    DecisionReason,
    DecisionSource,
    PredictionRole,
    RolloutMode,
    UnitStatus,
)
from inspection.events import UNIT_DECIDED, UNIT_RECEIVED, station_event_publish
from inspection.images import CheckedImage, image_check
from inspection.models import DecisionEvent, Prediction, Station, Unit
from inspection.selectors import unit_representation
from inspection.signals import automatic_decision_recorded
from inspection.webhooks.services import webhook_delivery_create
from models_registry.ml.serving.frame_check import FrameProblem
from models_registry.models import ModelVersion

logger = logging.getLogger(__name__)


class IdempotencyConflict(ValueError):
    """An Idempotency-Key was reused for another unit (another serial)."""


class IdempotencyMismatch(ValueError):
    """An Idempotency-Key was reused for the same serial with another image or other metadata: a
    replay would silently drop the new body. `differs` names the fields ("image", "metadata")."""

    def __init__(self, message: str, *, differs: list[str]):
        super().__init__(message)
        self.differs = differs


class StorageFull(OSError):
    """The media disk has no room for the image: the unit is refused whole (the line retries)."""


class StationRetired(ValueError):
    """The station was retired: it takes no more units."""

    def __init__(self, station: Station) -> None:
        super().__init__(
            f"station {station.slug} is retired (since {station.retired_at:%Y-%m-%d %H:%M} UTC): "
            "it takes no more units"
        )


@dataclass(frozen=True)
class Submission:
    unit: Unit
    body: dict[str, Any]
    replayed: bool


class _InFlight:
    """How many units this process is taking at this moment (each on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, function):
        @functools.wraps(function)
        def counted(*args, **kwargs):
            with self._lock:
                self.count += 1
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.count -= 1

        return counted


_in_flight = _InFlight()
_spread_lock = threading.local()


@contextlib.contextmanager
def _forward_spread() -> Iterator[bool]:
    """Whether this unit's forward may spread over the process's inference threads: only when
    it is the one unit in flight in this process, and no other web process's forward is spreading
    at the moment (a lock file under LOUPE_DATA_DIR, tried without waiting). Alone, spreading
    halves the forward (one client: 83 units/s against 67, measured); under load, forwards of
    one thread each, one per core, do more."""
    if _in_flight.count > 1:
        yield False
        return
    handle = getattr(_spread_lock, "handle", None)
    try:
        if handle is None:
            handle = _spread_lock.handle = open(settings.LOUPE_DATA_DIR / "forward-spread.lock", "a+b")  # noqa: SIM115 (kept open by the thread)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another process spreads, or the lock file cannot be had: one thread
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


@_in_flight
def unit_submit(
    *,
    station: Station,
    serial: str,
    image_data: bytes,
    filename: str,
    captured_at: datetime | None = None,
    metadata: dict | None = None,
    idempotency_key: str | None = None,
) -> Submission:
    """Accept one unit. Raises `ImageRejected`, `IdempotencyConflict`, `IdempotencyMismatch`,
    `StationRetired` or `StorageFull`, leaving nothing behind. A retry of a unit accepted before
    the station retired replays."""
    request = _Request(serial=serial, image_data=image_data, metadata=metadata or {})
    if idempotency_key:
        earlier = Unit.objects.filter(station=station, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return _replay(earlier, request)
    if station.retired:
        raise StationRetired(station)

    level = AutomationLevel(station.automation_level)
    role = policy.route(
        has_challenger=station.challenger_id is not None,
        rollout_mode=station.rollout_mode,
        canary_share=station.canary_share,
        draw=policy.canary_draw(station.slug, serial),
    )
    model_version = station.challenger if role == policy.Role.CANARY else station.champion
    if not policy.model_needed(level):
        model_version = None
    predictor = _predictor(model_version) if model_version is not None else None

    checked = image_check(
        image_data,
        filename=filename,
        max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
        max_pixels=min(station.max_image_pixels, settings.LOUPE_MAX_IMAGE_PIXELS),
        max_decode_bytes=settings.LOUPE_MAX_DECODE_BYTES,
        decode_size=predictor.decode_size if predictor is not None else None,
    )
    problem, result = _predict(predictor, checked, model_version) if predictor is not None else (None, None)

    threshold = (
        policy.certified_threshold(model_version.risk_control, station.target_escape_rate)
        if model_version is not None
        else None
    )
    audit_draw = policy.audit_draw(station.slug, serial)
    station_policy = _station_policy(station)
    outcome = policy.decide(
        station_policy,
        policy.ModelOutput(result.verdict, result.confidence) if result is not None else None,
        threshold=threshold,
        audit_draw=audit_draw,
        frame_problem=problem.message if problem is not None else None,
    )
    snapshot = {
        **station_policy.as_dict(),
        "rollout_mode": station.rollout_mode,
        "canary_share": station.canary_share,
        "certified_threshold": threshold,
        "required_confidence": outcome.threshold,
        "role": role.value,
        "model_version": f"{model_version.name}:{model_version.version}" if model_version else None,
        "audit_draw": round(audit_draw, 6),
        "outcome": outcome.action.value,
        "queue_reason": outcome.queue_reason,
    }
    if problem is not None:
        snapshot["frame_check"] = {
            "problem": problem.code,
            "message": problem.message,
            "limits": predictor.frame_limits.as_dict(),
        }

    decided = outcome.action == policy.Action.DECIDE
    unit = Unit(
        station=station,
        serial=serial,
        image_sha256=checked.sha256,
        image_width=checked.width,
        image_height=checked.height,
        image_format=checked.format,
        source_filename=filename[: Unit._meta.get_field("source_filename").max_length],
        captured_at=captured_at,
        received_at=timezone.now(),
        metadata=metadata or {},
        status=UnitStatus.DECIDED if decided else UnitStatus.PENDING,
        automation_level=level.value,
        queue_reason=outcome.queue_reason,
        blind=outcome.blind,
        deciding_model=model_version if result is not None else None,
        idempotency_key=idempotency_key or None,
        routing=snapshot,
    )
    if decided:
        unit.decision_verdict = outcome.verdict
        unit.decision_source = DecisionSource.MODEL
        unit.decision_reason = DecisionReason.AUTOMATIC
        unit.decided_at = unit.received_at
    try:
        unit.image.save(f"{uuid.uuid4().hex}.{checked.extension}", ContentFile(checked.data), save=False)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            logger.error("Media disk full: unit %s of station %s refused (%s)", serial, station.slug, error)
            raise StorageFull(errno.ENOSPC, "the media disk is full: the unit was not stored") from error
        raise
    try:
        with transaction.atomic():
            unit.save()
            prediction = None
            if result is not None:
                prediction = Prediction.objects.create(
                    unit=unit,
                    model_version=model_version,
                    role=PredictionRole.CANARY if role == policy.Role.CANARY else PredictionRole.CHAMPION,
                    **result.fields,
                )
            decision = None
            if decided:
                decision = DecisionEvent.objects.create(
                    unit=unit,
                    verdict=outcome.verdict,
                    defect_classes=result.defect_classes,
                    regions=result.fields["regions"] if outcome.verdict == "fail" else [],
                    decided_by_model=model_version,
                    reason=DecisionReason.AUTOMATIC,
                    policy=snapshot,
                )
            body = unit_representation(unit=unit, decision=decision, prediction=prediction, loaded=True)
            if decision is not None:
                webhook_delivery_create(decision=decision, unit_body=body)
                automatic_decision_recorded.send(
                    sender=DecisionEvent, unit=unit, prediction=prediction, station=station
                )
            if idempotency_key:
                unit.first_response = body
                unit.save(update_fields=["first_response"])
            _after_commit(unit, body, decided=decision is not None, frame_problem=problem is not None)
    except IntegrityError:
        unit.image.delete(save=False)
        if idempotency_key:
            # Another request with the same key won the race: answer as it did.
            earlier = Unit.objects.filter(station=station, idempotency_key=idempotency_key).first()
            if earlier is not None:
                return _replay(earlier, request)
        raise
    except BaseException:
        unit.image.delete(save=False)
        raise
    return Submission(unit=unit, body=body, replayed=False)


@dataclass(frozen=True)
class _Request:
    """What a retry under the same Idempotency-Key must repeat to be answered as the first was."""

    serial: str
    image_data: bytes
    metadata: dict


def _replay(earlier: Unit, request: _Request) -> Submission:
    if earlier.serial != request.serial:
        raise IdempotencyConflict(
            f"this Idempotency-Key was first used for serial {earlier.serial!r}, not {request.serial!r}"
        )
    differences = {}
    image_sha256 = hashlib.sha256(request.image_data).hexdigest()
    if image_sha256 != earlier.image_sha256:
        differences["image"] = (
            f"another image (sha256 {earlier.image_sha256[:12]}…, this one {image_sha256[:12]}…)"
        )
    if request.metadata != earlier.metadata:
        differences["metadata"] = "other metadata"
    if differences:
        raise IdempotencyMismatch(
            f"this Idempotency-Key was first used for serial {earlier.serial!r} with "
            f"{' and '.join(differences.values())}: send a new key for a new request",
            differs=list(differences),
        )
    return Submission(unit=earlier, body=earlier.first_response, replayed=True)


def _station_policy(station: Station) -> policy.StationPolicy:
    return policy.StationPolicy(
        level=AutomationLevel(station.automation_level),
        target_escape_rate=station.target_escape_rate,
        uncertainty_band=station.uncertainty_band,
        audit_share=station.audit_share,
    )


def _predictor(model_version: ModelVersion):
    from models_registry.services import predictor_get

    try:
        return predictor_get(model_version=model_version)
    except Exception:  # a model that cannot load must not stop the line: the unit goes to a human
        logger.exception("Model %s could not be loaded; units go to humans", model_version)
        return None


@dataclass(frozen=True)
class _Result:
    verdict: str
    confidence: float
    defect_classes: list[str]
    fields: dict[str, Any]


def _predict(
    predictor, checked: CheckedImage, model_version: ModelVersion
) -> tuple[FrameProblem | None, _Result | None]:
    """The frame check's problem, or the model's result (None when the model failed)."""
    try:
        with _forward_spread() as spread:
            problem, prediction = predictor.check_and_predict(checked.frame, spread=spread)
    except Exception:  # as above: the unit is kept and a human decides it
        logger.exception("Model %s failed on an image; the unit goes to a human", model_version)
        return None, None
    return problem, (prediction_result(prediction) if prediction is not None else None)


def prediction_result(prediction) -> _Result:
    """The columns of a `Prediction` row from the model's `Prediction` value."""
    embedding = prediction.embedding
    fields = {
        "defect_probability": prediction.defect_probability,
        "label": prediction.label,
        "confidence": prediction.confidence,
        "verdict": prediction.verdict,
        "class_scores": {k: round(v, 6) for k, v in prediction.class_scores.items()},
        "regions": [region.as_dict() for region in prediction.regions],
        "anomaly_score": prediction.anomaly_score,
        "embedding": {
            "vector": [round(v, 5) for v in embedding.vector],
            "brightness": embedding.brightness,
            "contrast": embedding.contrast,
            "sharpness": embedding.sharpness,
            "color": list(embedding.color),
        },
        "latency_ms": round(prediction.timings_ms.get("total", 0.0), 3),
        "timings_ms": {k: round(v, 3) for k, v in prediction.timings_ms.items()},
    }
    defect_classes = [prediction.label] if prediction.verdict == "fail" else []
    return _Result(prediction.verdict, prediction.confidence, defect_classes, fields)


def _after_commit(unit: Unit, body: dict, *, decided: bool, frame_problem: bool) -> None:
    station = unit.station

    events = [{"type": UNIT_RECEIVED, "unit": body}]
    if decided:
        events.append({"type": UNIT_DECIDED, "unit": body})
    # A unit decided here needs no long-poll woken: nobody can know its id before the commit.
    transaction.on_commit(
        lambda: station_event_publish(station_slug=station.slug, events=events, wake_long_polls=False)
    )
    if (
        station.challenger_id is not None
        and station.rollout_mode == RolloutMode.SHADOW
        and policy.model_needed(AutomationLevel(unit.automation_level))
        and not frame_problem  # a frame no model can judge is not worth the challenger's guess
    ):
        transaction.on_commit(
            lambda: task_enqueue(
                Task.CHALLENGER_PREDICT, unit.id, station.challenger_id, what="challenger prediction"
            )
        )
    if frame_problem:
        transaction.on_commit(
            lambda: task_enqueue(Task.CAMERA_FAULT_CHECK, station.id, what="camera fault check")
        )
