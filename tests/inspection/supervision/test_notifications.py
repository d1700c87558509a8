"""Alarm notifications reach people once per alarm: an email through a real SMTP server
(aiosmtpd) and a Slack/Teams-style message to a local HTTP receiver, sent by a real Celery
worker; a window that sees the same shift again tells nobody again."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError

from inspection.enums import AutomationLevel
from inspection.services.stations import station_update
from inspection.supervision.models import Alarm, AlarmKind, DriftSettings
from inspection.supervision.notifications import NotificationFailed, alarm_notify
from inspection.supervision.services import AlarmFinding, alarms_raise
from tests.inspection.factories import person
from tests.inspection.test_webhooks import queued_tasks, wait_for

# The test receiver listens on 127.0.0.1, which chat messages reach only when an operator allows it.
pytestmark = pytest.mark.usefixtures("allow_loopback_webhooks")

FINDING = AlarmFinding(AlarmKind.INPUT, "brightness fell from 120 to 74 (p = 1e-9)")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def received(self) -> list[tuple[list[str], bytes]]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp_server(monkeypatch, settings) -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1 (a free port); the test and any worker it starts send to it."""
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(port))
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    yield inbox
    controller.stop()


def _told(station, receiver) -> None:
    changes = {
        "alarm_emails": "sam@factory.example, line-lead@factory.example",
        "alarm_chat_url": receiver.url,
    }
    station_update(station=station, changes=changes, user=person("sam", role="supervisor"))


@pytest.mark.django_db(transaction=True)
def test_a_new_alarm_is_emailed_and_posted_once_and_a_window_seeing_it_again_tells_nobody(
    smtp_server,
    webhook_receiver,
    live_celery_worker,
    redis_client,
    make_station,
):
    station = make_station(slug="line-a", level=AutomationLevel.FULL)
    _told(station, webhook_receiver)
    raised = alarms_raise(station=station, findings=[FINDING]).raised
    alarm = wait_for(
        lambda: Alarm.objects.filter(pk=raised[0].pk, notified__has_keys=["email", "chat"]).first(),
        timeout=30,
        what="the alarm's email and chat message",
    )
    ((recipients, raw),) = smtp_server.received()
    assert sorted(recipients) == ["line-lead@factory.example", "sam@factory.example"]
    email = message_from_bytes(raw)
    assert email["Subject"] == "[Loupe] line-a: Input drift (brightness, contrast, sharpness, colour)"
    body = email.get_payload(decode=True).decode()
    assert "brightness fell from 120 to 74" in body and "/dashboard/line-a/" in body
    assert "Partial automation" in body  # the level the alarm stepped down to
    (post,) = webhook_receiver.received()
    assert "brightness fell from 120 to 74" in json.loads(post.body)["text"]

    # the next window sees the same shift: the alarm counts it, and nobody is told again
    again = alarms_raise(station=station, findings=[FINDING])
    assert again.raised == [] and [a.pk for a in again.seen_again] == [alarm.pk]
    assert not [task for task in queued_tasks(redis_client) if task[0].endswith("alarm_notify")]
    assert alarm_notify(alarm_id=alarm.pk) == []  # a late retry sends nothing either
    assert len(smtp_server.received()) == 1 and len(webhook_receiver.received()) == 1


@pytest.mark.django_db
def test_a_failed_channel_is_retried_without_repeating_the_one_that_went_out(
    smtp_server,
    webhook_receiver,
    make_station,
):
    station = make_station(slug="line-a", level=AutomationLevel.FULL)
    _told(station, webhook_receiver)
    webhook_receiver.statuses = [503, 200]
    alarm = Alarm.objects.create(
        station=station, kind=AlarmKind.SCORE, summary="scores moved", last_seen_at=station.created_at
    )
    with pytest.raises(NotificationFailed, match="chat webhook answered HTTP 503"):
        alarm_notify(alarm_id=alarm.pk)
    alarm.refresh_from_db()
    assert set(alarm.notified) == {"email"}
    assert alarm_notify(alarm_id=alarm.pk) == ["chat"]
    assert len(smtp_server.received()) == 1 and len(webhook_receiver.received()) == 2


@pytest.mark.django_db
def test_a_station_that_asks_for_no_notification_queues_none(
    make_station, django_capture_on_commit_callbacks
):
    station = make_station(slug="line-a", level=AutomationLevel.FULL)
    with django_capture_on_commit_callbacks() as callbacks:
        alarms_raise(station=station, findings=[FINDING])
    assert len(callbacks) == 1  # the live event only


@pytest.mark.django_db
def test_a_wrong_address_is_refused_and_saves_nothing(make_station):
    station = make_station(slug="line-a", level=AutomationLevel.FULL)
    changes = {"alarm_emails": "ok@factory.example, sam-at-factory", "alarm_step_down": False}
    with pytest.raises(ValidationError, match="not an email address: sam-at-factory"):
        station_update(station=station, changes=changes, user=person("sam", role="supervisor"))
    stored = DriftSettings.objects.get(station=station)
    assert (stored.alarm_emails, stored.alarm_step_down) == ("", True)


@pytest.mark.django_db
def test_an_internal_chat_url_is_refused_when_saved_and_when_sent(make_station, webhook_receiver, settings):
    station = make_station(slug="line-a", level=AutomationLevel.FULL)
    supervisor = person("sam", role="supervisor")
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = ()
    metadata = {"alarm_chat_url": "http://169.254.169.254/latest/meta-data/"}
    with pytest.raises(ValidationError) as refused:
        station_update(station=station, changes=metadata, user=supervisor)
    assert "169.254.169.254 is a link-local address" in refused.value.message_dict["alarm_chat_url"][0]
    # a URL saved before the check, or a name that resolves elsewhere now
    DriftSettings.objects.update_or_create(
        station=station, defaults={"alarm_chat_url": f"http://localhost:{webhook_receiver.port}/chat"}
    )
    alarm = Alarm.objects.create(
        station=station, kind=AlarmKind.SCORE, summary="scores moved", last_seen_at=station.created_at
    )

    with pytest.raises(NotificationFailed, match="chat: localhost \\(127.0.0.1\\) is a loopback address"):
        alarm_notify(alarm_id=alarm.pk)

    assert webhook_receiver.received() == []
