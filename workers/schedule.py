"""What Celery beat runs, and which queue each task goes to: the one place for both (applied to
the Celery app in `config/celery.py`)."""

from __future__ import annotations

from inspection.background import Task

SWEEP_SECONDS = 60.0
# The dashboard reads its rollups plus the rows they do not hold yet: refreshing often keeps those
# rows a few seconds' worth. A refresh that finds nothing closed or touched is two statements;
# one not started within the period is dropped (the next counts the same minutes).
ROLLUPS_REFRESH_SECONDS = 5.0

BEAT_SCHEDULE = {
    "webhook-deliveries-resend": {"task": Task.WEBHOOK_DELIVERIES_RESEND, "schedule": SWEEP_SECONDS},
    "challenger-predictions-resend": {"task": Task.CHALLENGER_PREDICTIONS_RESEND, "schedule": SWEEP_SECONDS},
    "training-triggers-sweep": {"task": Task.TRAINING_TRIGGERS_SWEEP, "schedule": SWEEP_SECONDS},
    "training-jobs-stale-requeue": {"task": Task.TRAINING_JOBS_STALE_REQUEUE, "schedule": SWEEP_SECONDS},
    "drift-checks-sweep": {"task": Task.DRIFT_CHECKS_SWEEP, "schedule": SWEEP_SECONDS},
    "dashboard-rollups-refresh": {
        "task": Task.DASHBOARD_ROLLUPS_REFRESH,
        "schedule": ROLLUPS_REFRESH_SECONDS,
        "options": {"expires": ROLLUPS_REFRESH_SECONDS},
    },
}


def task_route(name, args, kwargs, options, task=None, **kw):
    """Trainings go to their own queue (`make run` starts a worker for it): minutes long, they
    must not hold up webhooks and shadow predictions. A worker serving both: `-Q celery,training`."""
    from django.conf import settings

    if name == Task.TRAINING_JOB_RUN:
        return {"queue": settings.LOUPE_TRAINING_QUEUE}
    return None
