"""Telling people of a new alarm: an email to the station's alarm recipients and a message to its
chat channel (a Slack or Microsoft Teams incoming webhook), once per alarm.

`alarms_raise` queues `alarm_notify` after commit for each new alarm (never for one seen again in
a later window). Each channel is recorded on the alarm (`Alarm.notified`) as soon as it is sent,
so a retry after one channel failed sends only what is still missing.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from inspection.supervision.models import Alarm, DriftSettings
from inspection.webhooks.targets import WebhookTargetRefused, webhook_target_check, webhook_target_post

logger = logging.getLogger(__name__)

EMAIL, CHAT = "email", "chat"


class NotificationFailed(Exception):
    pass


def alarm_channels(settings_row: DriftSettings) -> list[str]:
    """The channels a station's alarms go to."""
    return [
        name
        for name, wanted in ((EMAIL, settings_row.alarm_recipients()), (CHAT, settings_row.alarm_chat_url))
        if wanted
    ]


def alarm_message(alarm: Alarm) -> tuple[str, str]:
    """The subject and text people read: what, where, since when, and the page to open."""
    station = alarm.station
    page = settings.LOUPE_PUBLIC_URL.rstrip("/") + reverse("dashboard-station", kwargs={"slug": station.slug})
    subject = f"[Loupe] {station.slug}: {alarm.get_kind_display()}"
    lines = [
        f"Alarm {alarm.pk} at station {station.slug} ({station.name or station.slug}): {alarm.summary}",
        f"Raised {alarm.raised_at:%Y-%m-%d %H:%M %Z}; "
        f"automation level now {station.get_automation_level_display()}.",
    ]
    if alarm.actions:
        lines.append("Done about it: " + "; ".join(alarm.actions) + ".")
    lines.append(f"Open {page} to acknowledge it and, once the cause is dealt with, clear it.")
    return subject, "\n".join(lines)


def alarm_notify(*, alarm_id: int) -> list[str]:
    """Send what this alarm's station asks for and has not been sent yet; the channels sent now.
    Raises `NotificationFailed` (after recording what did go out) when a channel failed. The chat
    message goes where a webhook may (`inspection.webhooks.targets`): a public address, or one
    the operator allowed."""
    import urllib3

    alarm = Alarm.objects.select_related("station").get(pk=alarm_id)
    row = DriftSettings.of(alarm.station)
    subject, text = alarm_message(alarm)
    sent, failures = [], []
    for channel in alarm_channels(row):
        if channel in alarm.notified:
            continue
        try:
            if channel == EMAIL:
                send_mail(subject, text, None, row.alarm_recipients())
            else:
                status_code = webhook_target_post(
                    webhook_target_check(row.alarm_chat_url),
                    body=json.dumps({"text": f"*{subject}*\n{text}"}).encode(),  # Slack and Teams read "text"
                    headers={"Content-Type": "application/json"},
                    timeout=settings.LOUPE_WEBHOOK_TIMEOUT_SECONDS,
                )
                if not 200 <= status_code < 300:
                    raise NotificationFailed(f"chat webhook answered HTTP {status_code}")
        except (OSError, urllib3.exceptions.HTTPError, WebhookTargetRefused, NotificationFailed) as error:
            failures.append(f"{channel}: {error}")
            continue
        _record(alarm, channel)
        sent.append(channel)
    if failures:
        raise NotificationFailed("; ".join(failures))
    return sent


def _record(alarm: Alarm, channel: str) -> None:
    with transaction.atomic():
        locked = Alarm.objects.select_for_update().get(pk=alarm.pk)
        locked.notified = {**locked.notified, channel: timezone.now().isoformat()}
        locked.save(update_fields=["notified"])
    alarm.notified = locked.notified
