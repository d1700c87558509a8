"""Celery tasks: a few lines each, taking ids, loading rows and calling a service."""

from __future__ import annotations

import logging

from celery import shared_task

from inspection.background import Task
from inspection.models import Station, Unit
from inspection.services.predictions import challenger_prediction_make, challenger_predictions_resend
from inspection.supervision.dashboard.rollups import rollups_refresh
from inspection.supervision.notifications import NotificationFailed, alarm_notify
from inspection.supervision.services import camera_fault_check
from inspection.webhooks.models import DeliveryStatus, WebhookDelivery
from inspection.webhooks.services import (
    DeliveryFailed,
    DeliveryRefused,
    webhook_attempt,
    webhook_deliveries_resend,
    webhook_delivery_give_up,
)
from models_registry.models import ModelVersion
from workers.drift_checks import drift_checks_sweep, station_drift_check, station_escape_rate_check
from workers.models import TrainingJob
from workers.retraining import training_job_run, training_jobs_stale_requeue, training_triggers_sweep

logger = logging.getLogger(__name__)


def _backoff_seconds(attempt: int) -> int:
    """Exponential backoff after the `attempt`-th failure: 2, 4, 8 ... seconds, at most 10 minutes."""
    return min(600, 2**attempt)


@shared_task(name=Task.CHALLENGER_PREDICT, acks_late=True)
def challenger_predict(unit_id: int, model_version_id: int) -> int:
    """The challenger's shadow prediction of a unit, off the line's request path."""
    unit = Unit.objects.select_related("station").get(pk=unit_id)
    model_version = ModelVersion.objects.get(pk=model_version_id)
    return challenger_prediction_make(unit=unit, model_version=model_version).id


@shared_task(name=Task.CHALLENGER_PREDICTIONS_RESEND, acks_late=True)
def challenger_predictions_resend_task() -> int:
    """Beat: requeue the shadow predictions a broker outage or a dead worker lost."""
    return challenger_predictions_resend()


@shared_task(name=Task.CAMERA_FAULT_CHECK, acks_late=True)
def camera_fault_check_task(station_id: int) -> list[int]:
    """After a frame failed the frame check: a run of such frames raises a camera fault alarm."""
    station = Station.objects.select_related("champion").get(pk=station_id)
    return [alarm.pk for alarm in camera_fault_check(station=station).raised]


@shared_task(name=Task.ESCAPE_RATE_CHECK, acks_late=True)
def escape_rate_check_task(station_id: int) -> list[int]:
    """After a person judged a partial automation audit: its live escape rate against the target."""
    station = Station.objects.select_related("champion").get(pk=station_id)
    return station_escape_rate_check(station=station)


@shared_task(
    bind=True,
    name=Task.WEBHOOK_DELIVER,
    acks_late=True,
    max_retries=None,  # bounded by LOUPE_WEBHOOK_MAX_ATTEMPTS, counted on the delivery row
)
def webhook_deliver(self, delivery_id: int) -> str:
    from django.conf import settings

    delivery = WebhookDelivery.objects.select_related("station").get(pk=delivery_id)
    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status
    try:
        webhook_attempt(delivery=delivery)
    except DeliveryFailed as error:
        if isinstance(error, DeliveryRefused) or delivery.attempts >= settings.LOUPE_WEBHOOK_MAX_ATTEMPTS:
            webhook_delivery_give_up(delivery=delivery)
            return DeliveryStatus.FAILED
        countdown = _backoff_seconds(delivery.attempts)
        logger.warning("Webhook delivery %s failed (%s); retry in %s s", delivery.id, error, countdown)
        raise self.retry(countdown=countdown, exc=error) from error
    return DeliveryStatus.DELIVERED


@shared_task(bind=True, name=Task.ALARM_NOTIFY, acks_late=True, max_retries=8)
def alarm_notify_task(self, alarm_id: int) -> list[str]:
    try:
        return alarm_notify(alarm_id=alarm_id)
    except NotificationFailed as error:
        countdown = _backoff_seconds(self.request.retries + 1)
        logger.warning("Alarm %s notification failed (%s); retry in %s s", alarm_id, error, countdown)
        raise self.retry(countdown=countdown, exc=error) from error


@shared_task(name=Task.DASHBOARD_ROLLUPS_REFRESH, acks_late=True)
def dashboard_rollups_refresh_task() -> dict:
    """Beat: count the minutes closed and touched since the last refresh into the dashboard's
    rollups (skipped while another refresh runs)."""
    refreshed = rollups_refresh()
    return {
        "counted_through": refreshed.counted_through,
        "minutes_counted": refreshed.minutes_counted,
        "touches": refreshed.touches,
        "skipped": refreshed.skipped,
    }


@shared_task(name=Task.WEBHOOK_DELIVERIES_RESEND, acks_late=True)
def webhook_deliveries_resend_task() -> int:
    """Beat: requeue deliveries a broker outage or a dead worker left pending."""
    return webhook_deliveries_resend()


@shared_task(name=Task.TRAINING_JOB_RUN, acks_late=True)
def training_job_run_task(job_id: int) -> str:
    """Train, evaluate and gate one job. A worker killed mid-way leaves the message unacknowledged
    and the job's heartbeat stale; either the redelivery or the sweep below runs it again."""
    job = TrainingJob.objects.select_related("station", "snapshot").get(pk=job_id)
    return training_job_run(job=job).status


@shared_task(name=Task.TRAINING_TRIGGERS_SWEEP, acks_late=True)
def training_triggers_sweep_task() -> list[int]:
    """Beat: queue a retraining of every station its label count or schedule says is due."""
    return [job.pk for job in training_triggers_sweep()]


@shared_task(name=Task.TRAINING_JOBS_STALE_REQUEUE, acks_late=True)
def training_jobs_stale_requeue_task() -> list[int]:
    """Beat: queue again the jobs whose worker died (or fail them after the last attempt)."""
    return [job.pk for job in training_jobs_stale_requeue()]


@shared_task(name=Task.DRIFT_CHECKS_SWEEP, acks_late=True)
def drift_checks_sweep_task() -> list[int]:
    """Beat: queue a drift check of every station with a full window of units waiting."""
    return drift_checks_sweep()


@shared_task(name=Task.STATION_DRIFT_CHECK, acks_late=True)
def station_drift_check_task(station_id: int) -> list[int]:
    """Compare the station's waiting windows with its champion's reference; raise alarms."""
    station = Station.objects.get(pk=station_id)
    return [check.pk for check in station_drift_check(station=station)]
