"""Sending work to Celery by task name, so that `inspection` never imports `workers`."""

from __future__ import annotations

import logging

from celery import current_app
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


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
