"""Final decisions pushed to a station's webhook, and the challenger's shadow predictions: the work
the line's request leaves to Celery.

The delivery tests run a real worker (`live_celery_worker`) against a small HTTP server
(`webhook_receiver.py`), and check what actually arrived: one signed POST per decision, retried
after a failure.
The sweeper and the delivery's creation are tested as plain functions, with the broker's queue
read back from Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from inspection.background import Task
from inspection.enums import AutomationLevel, PredictionRole, RolloutMode
from inspection.models import DecisionEvent, Prediction, Unit
from inspection.services.decisions import HumanRegion, decision_record
from inspection.webhooks.models import DeliveryStatus, WebhookDelivery
from inspection.webhooks.services import webhook_deliveries_resend
from tests.inspection.factories import posted_unit
from tests.openapi import openapi_document, schema_errors

# The test receiver listens on 127.0.0.1, which webhooks reach only when an operator allows it.
pytestmark = pytest.mark.usefixtures("allow_loopback_webhooks")

SECRET = "receiver-shared-secret"
DELIVER_TASK = Task.WEBHOOK_DELIVER
T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def delivered(unit_id: int) -> WebhookDelivery | None:
    return WebhookDelivery.objects.filter(decision__unit_id=unit_id, status=DeliveryStatus.DELIVERED).first()


def queued_tasks(redis_client) -> list[tuple[str, list]]:
    """(task name, args) of each message waiting in the broker's default queue."""
    tasks = []
    for raw in redis_client.lrange("celery", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], args))
    return tasks


def test_automatic_decision_is_delivered_once_and_signed(
    live_celery_worker, make_station, device_client, webhook_receiver
):
    station = make_station(
        slug="screens-1", level=AutomationLevel.FULL, webhook_url=webhook_receiver.url, webhook_secret=SECRET
    )

    posted = posted_unit(device_client(station), "SN-1")

    delivery = wait_for(lambda: delivered(posted["id"]), timeout=30, what="the webhook delivery")
    (post,) = webhook_receiver.received()
    assert post.path == "/loupe/decisions"
    assert post.headers["X-Loupe-Signature"] == expected_signature(post.body)
    assert post.headers["X-Loupe-Delivery"] == str(delivery.id)
    body = json.loads(post.body)
    decision = DecisionEvent.objects.get(unit_id=posted["id"])
    assert body["event"] == "unit.decided"
    assert body["decision_id"] == decision.id
    assert body["unit"]["id"] == posted["id"]
    assert body["unit"]["serial"] == "SN-1"
    assert body["unit"]["decision"] == decision.verdict
    assert post.body == delivery.body.encode()
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.delivered_at is not None


def test_failed_delivery_is_retried_until_the_receiver_takes_it(
    live_celery_worker, make_station, device_client, webhook_receiver
):
    webhook_receiver.statuses = [500, 200]
    station = make_station(
        slug="screens-1", level=AutomationLevel.FULL, webhook_url=webhook_receiver.url, webhook_secret=SECRET
    )

    posted = posted_unit(device_client(station), "SN-2")

    delivery = wait_for(lambda: delivered(posted["id"]), timeout=15, what="the retried webhook delivery")
    first, second = webhook_receiver.received()
    assert first.body == second.body == delivery.body.encode()
    assert first.headers["X-Loupe-Delivery"] == second.headers["X-Loupe-Delivery"] == str(delivery.id)
    assert second.headers["X-Loupe-Signature"] == expected_signature(second.body)
    assert delivery.attempts == 2
    assert delivery.last_status_code == 200
    assert delivery.last_error == ""


def test_challenger_shadow_prediction_is_made_by_the_worker(
    live_celery_worker, make_station, make_model_version, device_client
):
    challenger = make_model_version(name="tiny", version=2)
    station = make_station(
        slug="screens-1", level=AutomationLevel.FULL, challenger=challenger, rollout_mode=RolloutMode.SHADOW
    )

    posted = posted_unit(device_client(station), "SN-3")

    shadow = wait_for(
        lambda: Prediction.objects.filter(
            unit_id=posted["id"], role=PredictionRole.CHALLENGER_SHADOW
        ).first(),
        timeout=30,
        what="the challenger's shadow prediction",
    )
    assert shadow.model_version == challenger
    assert posted["model_version"] == f"{station.champion.name}:{station.champion.version}"
    assert Prediction.objects.filter(unit_id=posted["id"]).count() == 2


@pytest.mark.django_db
def test_sweeper_requeues_only_deliveries_never_attempted_before_the_cutoff(
    media_root, redis_client, make_station, device_client, webhook_receiver
):
    # Without a commit (this test's transaction is rolled back) no delivery was ever queued.
    station = make_station(
        slug="screens-1", level=AutomationLevel.FULL, webhook_url=webhook_receiver.url, webhook_secret=SECRET
    )
    client = device_client(station)
    forgotten, recent, done = (posted_unit(client, f"SN-{n}", seed=n)["id"] for n in range(3))
    long_ago = timezone.now() - timedelta(minutes=10)
    WebhookDelivery.objects.filter(decision__unit_id__in=[forgotten, done]).update(created_at=long_ago)
    WebhookDelivery.objects.filter(decision__unit_id=done).update(
        status=DeliveryStatus.DELIVERED, attempts=1, last_attempt_at=long_ago, delivered_at=long_ago
    )

    count = webhook_deliveries_resend(older_than=timedelta(minutes=2))

    forgotten_delivery = WebhookDelivery.objects.get(decision__unit_id=forgotten)
    assert count == 1
    assert queued_tasks(redis_client) == [(DELIVER_TASK, [forgotten_delivery.id])]
    assert webhook_receiver.received() == []


@pytest.mark.django_db
def test_human_decision_creates_a_delivery_queued_after_commit(
    media_root,
    redis_client,
    make_station,
    device_client,
    webhook_receiver,
    django_capture_on_commit_callbacks,
):
    station = make_station(
        slug="screens-1",
        level=AutomationLevel.ASSISTED,
        webhook_url=webhook_receiver.url,
        webhook_secret=SECRET,
    )
    posted = posted_unit(device_client(station), "SN-4")
    inspector = get_user_model().objects.create_user(username="ines", password="unused-password")
    assert posted["status"] == "pending"
    assert not WebhookDelivery.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        decision = decision_record(unit=Unit.objects.get(pk=posted["id"]), user=inspector, verdict="pass")

    delivery = WebhookDelivery.objects.get()
    assert delivery.decision == decision
    assert delivery.url == webhook_receiver.url
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    body = json.loads(delivery.body)
    assert body["decision_id"] == decision.id
    assert body["unit"]["id"] == posted["id"]
    assert body["unit"]["decision"] == "pass"
    assert body["unit"]["decided_by"] == "human"
    assert queued_tasks(redis_client) == [(DELIVER_TASK, [delivery.id])]


@pytest.mark.django_db
def test_the_bodies_delivered_are_what_the_schemas_webhook_says(
    media_root, redis_client, make_station, device_client, django_capture_on_commit_callbacks
):
    hook = {"webhook_url": "http://line.local/hook", "webhook_secret": SECRET}
    station = make_station(slug="screens-1", level=AutomationLevel.ASSISTED, **hook)
    client = device_client(station)
    inspector = get_user_model().objects.create_user(username="ines", password="unused-password")
    document = openapi_document()
    webhook = document["webhooks"]["unit.decided"]["post"]
    schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    crack = HumanRegion(x=611.0, y=402.5, width=88.0, height=31.0, label="crack")

    with django_capture_on_commit_callbacks(execute=True):
        for serial, verdict, regions in (("SN-5", "fail", [crack]), ("SN-6", "pass", [])):
            posted = posted_unit(client, serial, width=1280, height=720)
            unit = Unit.objects.get(pk=posted["id"])
            decision_record(unit=unit, user=inspector, verdict=verdict, regions=regions)

    bodies = [json.loads(delivery.body) for delivery in WebhookDelivery.objects.order_by("id")]
    assert [body["unit"]["decision"] for body in bodies] == ["fail", "pass"]
    assert bodies[0]["unit"]["regions"][0]["x"] == 611.0 and bodies[0]["unit"]["width"] == 1280
    for body in bodies:
        assert schema_errors(document, schema, body) == [], body
