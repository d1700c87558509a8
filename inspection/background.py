"""Work for the Celery workers: every task's name, defined once, and `task_enqueue`, so that no
app below `workers` imports it (the tasks themselves are in `workers/tasks.py`)."""

from __future__ import annotations

import logging

from celery import current_app
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


class Task:
    """The names the workers register their tasks under (kept as they were: queued messages and
    beat entries carry them)."""

    CHALLENGER_PREDICT = "workers.tasks.challenger_predict"
    CHALLENGER_PREDICTIONS_RESEND = "workers.tasks.challenger_predictions_resend"
    CAMERA_FAULT_CHECK = "workers.tasks.camera_fault_check"
    DASHBOARD_ROLLUPS_REFRESH = "workers.tasks.dashboard_rollups_refresh"
    ESCAPE_RATE_CHECK = "workers.tasks.escape_rate_check"
    WEBHOOK_DELIVER = "workers.tasks.webhook_deliver"
    WEBHOOK_DELIVERIES_RESEND = "workers.tasks.webhook_deliveries_resend"
    TRAINING_JOB_RUN = "workers.tasks.training_job_run"
    TRAINING_TRIGGERS_SWEEP = "workers.tasks.training_triggers_sweep"
    TRAINING_JOBS_STALE_REQUEUE = "workers.tasks.training_jobs_stale_requeue"
    DRIFT_CHECKS_SWEEP = "workers.tasks.drift_checks_sweep"
    STATION_DRIFT_CHECK = "workers.tasks.station_drift_check"
    ALARM_NOTIFY = "workers.tasks.alarm_notify"


def task_enqueue(name: str, *args, what: str) -> bool:
    """Queue a task (call it from `transaction.on_commit`). A broker outage is logged, never
    turned into synchronous work; the work's own row (a webhook delivery, say) stays pending for
    the sweeper to resend."""
    try:
        current_app.send_task(name, args=args)
    except OperationalError:
        logger.exception("Broker unreachable: could not queue the %s (%s%r)", what, name, args)
        return False
    return True
