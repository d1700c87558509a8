"""Continuous training: a station's labels -> a snapshot -> a candidate -> the gate -> its challenger.
Triggers, the job's claim and heartbeat, and how killed attempts are settled: docs/operations.md."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from inspection.background import Task, task_enqueue
from inspection.events import station_event_publish, station_events_flush
from inspection.models import Station
from inspection.services.rollout import challenger_set
from labeling.models import DatasetItem, Split
from labeling.snapshots import dataset_snapshot_create, snapshot_samples
from labeling.station_data import station_dataset_get
from models_registry import mlflow_registry
from models_registry.gate import GateMargins, gate_decide
from models_registry.ml.geometry import GeometryRequest
from models_registry.models import ModelVersion
from models_registry.services import model_version_evaluate, model_version_train
from workers.models import (
    ACTIVE_TRAINING_STATUSES,
    TrainingJob,
    TrainingSettings,
    TrainingStatus,
    TrainingTrigger,
)
from workers.selectors import training_job_summary

logger = logging.getLogger(__name__)

JOB_TAG = "loupe.training_job"  # the job's uuid, on every MLflow run of every attempt
PROGRESS_EVENT = "training.progress"
STATUS_EVENT = "training.status"
PERSON_TRIGGERS = (TrainingTrigger.ADMIN, TrainingTrigger.COMMAND)


class TrainingJobLost(RuntimeError):
    """Another attempt holds the job now: this one was taken for dead and must stop."""


class TrainingDataMissing(ValueError):
    """The snapshot has too little labelled data to train on."""


def station_model_name(station: Station) -> str:
    """The registered model a station's retrainings add versions to."""
    return f"loupe-{station.slug}"


# --- Triggers -------------------------------------------------------------------------------


def labels_since_last_training(*, station: Station) -> int:
    """Units of the station's data set labelled after its last job read the data set (all
    labelled units if it never had one)."""
    items = DatasetItem.objects.filter(dataset__station=station, labelled_at__isnull=False)
    last = TrainingJob.objects.filter(station=station).order_by("-created_at", "-id").first()
    if last is not None:
        items = items.filter(labelled_at__gt=last.labels_as_of)
    return items.count()


def retraining_due(*, station: Station, now=None) -> str | None:
    """The trigger that asks for a retraining of the station now, or None."""
    if station.training_jobs.filter(status__in=ACTIVE_TRAINING_STATUSES).exists():
        return None
    schedule = TrainingSettings.of(station)
    if not (schedule.retrain_after_labels or schedule.retrain_every_hours):
        return None
    new_labels = labels_since_last_training(station=station)
    if schedule.retrain_after_labels and new_labels >= schedule.retrain_after_labels:
        return TrainingTrigger.LABELS
    if schedule.retrain_every_hours and new_labels:
        now = now or timezone.now()
        last = station.training_jobs.order_by("-created_at", "-id").first()
        if last is None or last.created_at <= now - timedelta(hours=schedule.retrain_every_hours):
            return TrainingTrigger.SCHEDULE
    return None


def training_triggers_sweep(*, now=None) -> list[TrainingJob]:
    """Request a retraining of every station that is due (Celery beat). The new jobs."""
    from labeling.snapshots import EmptySnapshot

    requested = []
    for station in Station.objects.order_by("id"):
        trigger = retraining_due(station=station, now=now)
        if trigger is None:
            continue
        try:
            job, created = training_job_request(station=station, trigger=trigger)
        except EmptySnapshot:
            continue
        if created:
            logger.info("Retraining %s (%s): job %s", station.slug, trigger, job.pk)
            requested.append(job)
    return requested


# --- Requests -------------------------------------------------------------------------------


def training_job_request(*, station: Station, trigger: str, user=None) -> tuple[TrainingJob, bool]:
    """Snapshot the station's data set and queue its training; `(job, created)`.

    No-op returning the existing job when the station already has a queued or running job, or
    when this snapshot (unchanged data) was trained already, except that a person (admin,
    command) asking again for a snapshot whose job failed queues that job once more. Raises
    `labeling.snapshots.EmptySnapshot` when nothing is labelled yet.
    """
    active = station.training_jobs.filter(status__in=ACTIVE_TRAINING_STATUSES).first()
    if active is not None:
        return active, False
    labels_as_of = timezone.now()
    snapshot = dataset_snapshot_create(dataset=station_dataset_get(station=station))
    try:
        with transaction.atomic():
            job, created = TrainingJob.objects.get_or_create(
                snapshot=snapshot,
                defaults={
                    "station": station,
                    "trigger": trigger,
                    "requested_by": user,
                    "labels_as_of": labels_as_of,
                    "heartbeat_at": labels_as_of,
                },
            )
            if not created and job.status == TrainingStatus.FAILED and trigger in PERSON_TRIGGERS:
                created = _failed_job_requeue(job=job, trigger=trigger, user=user)
    except IntegrityError:
        # Another request made a job active for the station between our check and insert.
        active = station.training_jobs.filter(status__in=ACTIVE_TRAINING_STATUSES).first()
        if active is None:
            raise
        return active, False
    if created:
        transaction.on_commit(lambda: _enqueue(job))
        _publish_on_commit(job, STATUS_EVENT)
    return job, created


def _failed_job_requeue(*, job: TrainingJob, trigger: str, user) -> bool:
    requeued = TrainingJob.objects.filter(pk=job.pk, status=TrainingStatus.FAILED).update(
        status=TrainingStatus.QUEUED,
        trigger=trigger,
        requested_by=user,
        attempts=0,
        heartbeat_at=timezone.now(),
        finished_at=None,
    )
    job.refresh_from_db()
    return bool(requeued)


def _enqueue(job: TrainingJob) -> None:
    task_enqueue(Task.TRAINING_JOB_RUN, job.pk, what=f"training job {job.pk}")


# --- Recovery -------------------------------------------------------------------------------


def training_jobs_stale_requeue(*, now=None) -> list[TrainingJob]:
    """Jobs whose worker died (running, no heartbeat for `LOUPE_TRAINING_STALE_SECONDS`) go back
    to the queue, or fail after `LOUPE_TRAINING_MAX_ATTEMPTS`; queued jobs not taken for
    `LOUPE_TRAINING_RESEND_SECONDS` (a message lost with the broker) are sent again. Celery beat
    runs it; duplicate messages are harmless (a job is claimed once). The jobs it touched."""
    now = now or timezone.now()
    touched = []
    with transaction.atomic():
        stale = (
            TrainingJob.objects.select_for_update(skip_locked=True)
            .filter(status=TrainingStatus.RUNNING, heartbeat_at__lt=now - _seconds("STALE"))
            .order_by("id")
        )
        for job in stale:
            lost = f"attempt {job.attempts}: no heartbeat from its worker since {job.heartbeat_at:%H:%M:%S}"
            if job.attempts >= settings.LOUPE_TRAINING_MAX_ATTEMPTS:
                job.status = TrainingStatus.FAILED
                job.finished_at = now
                job.error = _error_append(job.error, f"{lost}; gave up after {job.attempts} attempts")
            else:
                job.status = TrainingStatus.QUEUED
                job.error = _error_append(job.error, f"{lost}; queued again")
                transaction.on_commit(lambda job=job: _enqueue(job))
            job.heartbeat_at = now
            job.save(update_fields=["status", "finished_at", "error", "heartbeat_at"])
            _publish_on_commit(job, STATUS_EVENT)
            touched.append(job)
        forgotten = (
            TrainingJob.objects.select_for_update(skip_locked=True)
            .filter(status=TrainingStatus.QUEUED, heartbeat_at__lt=now - _seconds("RESEND"))
            .order_by("id")
        )
        for job in forgotten:
            job.heartbeat_at = now
            job.save(update_fields=["heartbeat_at"])
            transaction.on_commit(lambda job=job: _enqueue(job))
            touched.append(job)
    return touched


def _error_append(text: str, line: str) -> str:
    return f"{text}\n{line}" if text else line


def _seconds(name: str) -> timedelta:
    return timedelta(seconds=float(getattr(settings, f"LOUPE_TRAINING_{name}_SECONDS")))


# --- The run --------------------------------------------------------------------------------


def training_job_run(*, job: TrainingJob) -> TrainingJob:
    """Run the job if it is free to take (queued, or running with a dead worker): train, evaluate,
    gate. A job that is done, or held by a live attempt, is returned as is: the task is safe to
    run twice. Errors end the job `failed` with the error shown (a person may queue it again)."""
    attempt = _claim(job)
    if attempt is None:
        job.refresh_from_db()
        return job
    _publish_on_commit(job, STATUS_EVENT)
    try:
        with _heartbeat(job, attempt) as lost:
            progress = _Progress(job, attempt, lost)
            candidate = _candidate_get(job, attempt, progress)
            _evaluate_and_gate(job, attempt, candidate)
    except TrainingJobLost:
        logger.warning("Training job %s: attempt %s lost the job to another attempt", job.pk, attempt)
    except Exception as error:
        logger.exception("Training job %s failed (attempt %s)", job.pk, attempt)
        _fail(job, attempt, f"{type(error).__name__}: {error}")
    finally:
        station_events_flush(timeout=2.0)
    job.refresh_from_db()
    return job


def _claim(job: TrainingJob) -> int | None:
    """Take the job for one more attempt with a single conditional UPDATE; its number, or None."""
    now = timezone.now()
    claimable = Q(status=TrainingStatus.QUEUED) | Q(
        status=TrainingStatus.RUNNING, heartbeat_at__lt=now - _seconds("STALE")
    )
    claimed = TrainingJob.objects.filter(
        claimable, pk=job.pk, attempts__lt=settings.LOUPE_TRAINING_MAX_ATTEMPTS
    ).update(
        status=TrainingStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        epoch=0,
        step=0,
        loss=None,
        validation_loss=None,
        eta_seconds=None,
    )
    if not claimed:
        return None
    job.refresh_from_db()
    return job.attempts


def _held(job: TrainingJob, attempt: int):
    """The job's row, only while this attempt still holds it."""
    return TrainingJob.objects.filter(pk=job.pk, status=TrainingStatus.RUNNING, attempts=attempt)


@contextmanager
def _heartbeat(job: TrainingJob, attempt: int) -> Iterator[threading.Event]:
    """Refresh `heartbeat_at` from a thread while the attempt holds the job (training steps can be
    slow, and export, calibration and evaluation report nothing). The event it yields is set
    when the job was taken by another attempt."""
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.LOUPE_TRAINING_HEARTBEAT_SECONDS):
                if not _held(job, attempt).update(heartbeat_at=timezone.now()):
                    lost.set()
                    return
        finally:
            connection.close()  # the thread's own database connection

    thread = threading.Thread(target=beat, name=f"training-job-{job.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()


class _Progress:
    """Training callbacks: progress on the job row (fenced by the attempt) and live events,
    every epoch and at most every `LOUPE_TRAINING_PROGRESS_SECONDS` between."""

    def __init__(self, job: TrainingJob, attempt: int, lost: threading.Event):
        self.job, self.attempt, self.lost = job, attempt, lost
        self.first_step_at: float | None = None  # the rate excludes loading data and building the network
        self.last_sent = float("-inf")

    def step(self, step: int, total: int, loss: float) -> None:
        if self.lost.is_set():
            raise TrainingJobLost(self.job.pk)
        now = time.monotonic()
        if self.first_step_at is None:
            self.first_step_at = now
        if now - self.last_sent < settings.LOUPE_TRAINING_PROGRESS_SECONDS and step < total:
            return
        eta = (now - self.first_step_at) / (step - 1) * (total - step) if step > 1 else None
        epochs = settings.LOUPE_RETRAIN_EPOCHS
        epoch = min(epochs, math.ceil(step * epochs / total))  # the epoch in progress
        self._save(epoch=epoch, epochs=epochs, step=step, steps=total, loss=loss, eta_seconds=eta)

    def epoch(self, report) -> None:
        if self.lost.is_set():
            raise TrainingJobLost(self.job.pk)
        self._save(
            epoch=report.epoch,
            epochs=report.epochs,
            step=report.step,
            steps=report.steps,
            loss=report.train_loss,
            validation_loss=report.validation_loss,
            eta_seconds=report.eta_seconds,
        )

    def _save(self, **fields) -> None:
        if not _held(self.job, self.attempt).update(heartbeat_at=timezone.now(), **fields):
            raise TrainingJobLost(self.job.pk)
        for name, value in fields.items():
            setattr(self.job, name, value)
        self.last_sent = time.monotonic()
        _publish_on_commit(self.job, PROGRESS_EVENT)


def retrain_geometry_request() -> GeometryRequest:
    """The geometry settings of retraining (`LOUPE_RETRAIN_GEOMETRY`, `LOUPE_RETRAIN_INPUT_SIZE`);
    what they leave open is chosen from the snapshot's data, as `manage.py train` does."""
    return GeometryRequest(kind=settings.LOUPE_RETRAIN_GEOMETRY, input_size=settings.LOUPE_RETRAIN_INPUT_SIZE)


def _candidate_get(job: TrainingJob, attempt: int, progress: _Progress) -> ModelVersion:
    """The job's candidate: one an earlier attempt completed, or a new training."""
    adopted = _abandoned_attempts_settle(job)
    job.refresh_from_db()
    if job.candidate is not None:
        return job.candidate
    if adopted is None:
        snapshot, station = job.snapshot, job.station
        splits = {split: snapshot_samples(snapshot=snapshot, split=split) for split in Split.values}
        if len(splits[Split.TRAIN]) < 2:
            raise TrainingDataMissing(
                f"snapshot {snapshot} has {len(splits[Split.TRAIN])} labelled training units; need 2+"
            )
        result = model_version_train(
            model_name=station_model_name(station),
            dataset_name=snapshot.dataset.name,
            classes=snapshot.classes,
            train=splits[Split.TRAIN],
            validation=splits[Split.VALIDATION],
            test=splits[Split.TEST],
            epochs=settings.LOUPE_RETRAIN_EPOCHS,
            seed=settings.LOUPE_RETRAIN_SEED,
            geometry=retrain_geometry_request(),
            backbone=settings.LOUPE_RETRAIN_BACKBONE,
            pretrained=settings.LOUPE_RETRAIN_PRETRAINED,
            batch_size=settings.LOUPE_RETRAIN_BATCH_SIZE,
            on_epoch=progress.epoch,
            on_step=progress.step,
            run_tags={
                JOB_TAG: str(job.uuid),
                "loupe.training_job_id": str(job.pk),
                "loupe.station": station.slug,
                "loupe.snapshot": str(snapshot),
                "loupe.attempt": str(attempt),
            },
        )
        adopted = result.model_version
    if not _held(job, attempt).update(candidate=adopted, heartbeat_at=timezone.now()):
        raise TrainingJobLost(job.pk)
    job.candidate = adopted
    return adopted


def _abandoned_attempts_settle(job: TrainingJob) -> ModelVersion | None:
    """End the open MLflow runs of killed attempts, delete the versions they registered without a
    `ModelVersion` row, and return a version one of them completed (its row exists), if any."""
    completed = None
    for run in mlflow_registry.runs_tagged(key=JOB_TAG, value=str(job.uuid)):
        run_completed = False
        for name, version in run.versions:
            row = ModelVersion.objects.filter(name=name, version=version, mlflow_run_id=run.run_id).first()
            if row is not None:
                completed, run_completed = row, True
            else:
                logger.warning(
                    "Training job %s: deleting %s v%s, registered by a killed attempt without its row",
                    job.pk,
                    name,
                    version,
                )
                mlflow_registry.model_version_delete(name=name, version=version)
        if run.status == "RUNNING":
            mlflow_registry.run_terminate(run_id=run.run_id, status="FINISHED" if run_completed else "FAILED")
    return completed


def _evaluate_and_gate(job: TrainingJob, attempt: int, candidate: ModelVersion) -> None:
    station = Station.objects.select_related("champion").get(pk=job.station_id)
    champion = station.champion
    test = snapshot_samples(snapshot=job.snapshot, split=Split.TEST)
    candidate_metrics = model_version_evaluate(model_version=candidate, samples=test)
    champion_metrics = model_version_evaluate(model_version=champion, samples=test) if champion else None
    gate = TrainingSettings.of(station)
    result = gate_decide(
        candidate=candidate_metrics,
        champion=champion_metrics,
        target_escape_rate=station.target_escape_rate,
        margins=GateMargins(coverage=gate.gate_coverage_margin, auroc=gate.gate_auroc_margin),
    )
    with transaction.atomic():
        if not _held(job, attempt).select_for_update().exists():
            raise TrainingJobLost(job.pk)
        if not result.passed:
            status = TrainingStatus.REJECTED
        elif champion is None:
            status = TrainingStatus.PASSED  # a challenger needs a champion: a supervisor decides
        else:
            challenger_set(
                station=station,
                model_version=candidate,
                user=None,
                reason=f"training job {job.pk} ({job.get_trigger_display()}) passed the gate",
            )
            status = TrainingStatus.SHADOW
        job.status = status
        job.champion = champion
        job.evaluation = {
            "split": Split.TEST,
            "snapshot": str(job.snapshot),
            "units": len(test),
            "candidate": candidate_metrics,
            "champion": champion_metrics,
        }
        job.gate = result.as_dict()
        job.finished_at = timezone.now()
        job.eta_seconds = 0.0
        job.save(update_fields=["status", "champion", "evaluation", "gate", "finished_at", "eta_seconds"])
        _publish_on_commit(job, STATUS_EVENT)


def _fail(job: TrainingJob, attempt: int, error: str) -> None:
    job.refresh_from_db()
    updated = _held(job, attempt).update(
        status=TrainingStatus.FAILED,
        error=_error_append(job.error, f"attempt {attempt}: {error}"[:4000]),
        finished_at=timezone.now(),
    )
    if updated:
        job.refresh_from_db()
        _publish_on_commit(job, STATUS_EVENT)


def _publish_on_commit(job: TrainingJob, event_type: str) -> None:
    station_slug = job.station.slug
    event = {"type": event_type, "job": training_job_summary(job)}
    transaction.on_commit(lambda: station_event_publish(station_slug=station_slug, events=[event]))
