"""Pushing final decisions to a station's webhook, signed, with a delivery log.

The delivery row is written in the decision's own transaction, so a decision never exists
without its delivery; the Celery task `workers.tasks.webhook_deliver` makes the attempts (with
backoff), and `webhook_deliveries_resend` requeues deliveries a broker outage left unsent. Each
attempt posts only to a public address (or one the operator allow-listed), checked as it connects:
`inspection.webhooks.targets`.

The receiver checks `X-Loupe-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body under the
station's webhook secret, and uses `X-Loupe-Delivery` to ignore a delivery it has already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inspection.background import Task, task_enqueue
from inspection.models import DecisionEvent
from inspection.webhooks.models import DeliveryStatus, WebhookDelivery
from inspection.webhooks.targets import (
    WebhookHostUnresolved,
    WebhookTargetRefused,
    webhook_target_check,
    webhook_target_post,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Loupe-Signature"
USER_AGENT = "Loupe-Webhook/1"


def webhook_signature(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_delivery_create(*, decision: DecisionEvent, unit_body: dict) -> WebhookDelivery | None:
    """Record the delivery of a decision to its station's webhook (inside the decision's
    transaction; `unit_body` is the unit as the API shows it with this decision) and queue its
    first attempt after the commit. None when the station has no webhook."""
    station = decision.unit.station
    if not station.webhook_url:
        return None
    body = {"event": "unit.decided", "decision_id": decision.id, "unit": unit_body}
    delivery = WebhookDelivery.objects.create(
        station=station,
        decision=decision,
        url=station.webhook_url,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True),
    )
    transaction.on_commit(lambda: task_enqueue(Task.WEBHOOK_DELIVER, delivery.id, what="webhook delivery"))
    return delivery


class DeliveryFailed(Exception):
    """An attempt failed in a way worth retrying (network error, 5xx, 429, a redirect...)."""


class DeliveryRefused(DeliveryFailed):
    """The URL's host resolves to an address webhooks are not sent to: not worth retrying."""


def webhook_attempt(*, delivery: WebhookDelivery) -> None:
    """POST the delivery once, to an address checked just before (`targets`). Returns when
    delivered (or already delivered); raises `DeliveryFailed` when the receiver did not take it,
    after recording the attempt: its status code, how long it took and what went wrong, never
    the receiver's answer (whatever the URL reached, its words stay out of the admin)."""
    import urllib3

    if delivery.status == DeliveryStatus.DELIVERED:
        return
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Loupe-Event": "unit.decided",
        "X-Loupe-Delivery": str(delivery.id),
        SIGNATURE_HEADER: webhook_signature(secret=delivery.station.webhook_secret, body=body),
    }
    status_code, error, refused = None, "", False
    started = time.monotonic()
    try:
        target = webhook_target_check(delivery.url)
        status_code = webhook_target_post(
            target, body=body, headers=headers, timeout=settings.LOUPE_WEBHOOK_TIMEOUT_SECONDS
        )
    except WebhookTargetRefused as refusal:
        error, refused = f"refused: {refusal}", not isinstance(refusal, WebhookHostUnresolved)
    except urllib3.exceptions.HTTPError as exception:
        error = f"{type(exception).__name__}: {exception}"
    if status_code is not None and 300 <= status_code < 400:
        error = f"HTTP {status_code}: a redirect, not followed"
    elif status_code is not None and not 200 <= status_code < 300:
        error = f"HTTP {status_code}"
    duration_ms = round((time.monotonic() - started) * 1000)
    now = timezone.now()
    delivered = not error
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=delivery.attempts + 1,
        last_status_code=status_code,
        last_error=error[:300],
        last_duration_ms=duration_ms,
        last_attempt_at=now,
        delivered_at=now if delivered else None,
        status=DeliveryStatus.DELIVERED if delivered else DeliveryStatus.PENDING,
    )
    delivery.refresh_from_db()
    if refused:
        raise DeliveryRefused(error)
    if not delivered:
        raise DeliveryFailed(error)


def webhook_delivery_give_up(*, delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED
    )
    logger.error(
        "Webhook delivery %s to %s failed after %s attempts", delivery.id, delivery.url, delivery.attempts
    )


def webhook_deliveries_resend(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Requeue pending deliveries nobody is working on: never attempted (the broker was down when
    they were queued) or last attempted long ago (a worker died mid-retry)."""
    cutoff = timezone.now() - older_than
    stale_cutoff = timezone.now() - timedelta(hours=1)
    pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
    never = pending.filter(attempts=0, created_at__lt=cutoff)
    stale = pending.filter(attempts__gt=0, last_attempt_at__lt=stale_cutoff)
    count = 0
    for delivery_id in list(never.values_list("id", flat=True)) + list(stale.values_list("id", flat=True)):
        count += task_enqueue(Task.WEBHOOK_DELIVER, delivery_id, what="webhook delivery")
    return count
