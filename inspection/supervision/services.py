"""Alarms: raising them (with the station's automatic step-down), acknowledging, clearing.

A drift check (`workers.drift_checks`) hands its findings to `alarms_raise`; a run of frames that
fail the frame check raises a camera fault (`camera_fault_check`); audits showing partial
automation's escape rate above its target raise an escape-rate alarm (`escape_rate_check`). A
finding of a kind the station already has an active (open or acknowledged) alarm for counts on
that alarm; a new kind raises a new alarm and, when the station says so
(`DriftSettings.alarm_step_down`), steps the automation level down one notch: full -> partial ->
assisted. The level change is an ordinary audited `StationChange` by nobody, naming the alarm.
Only a supervisor raises the level again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from inspection.background import Task, task_enqueue
from inspection.enums import AutomationLevel, QueueReason
from inspection.events import station_event_publish
from inspection.models import Station, StationChange, Unit
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus, DriftCheck, DriftSettings
from inspection.supervision.notifications import alarm_channels
from inspection.supervision.selectors import LiveEscapeState, escape_rates_live
from models_registry.models import ModelVersion

STEP_DOWN = {AutomationLevel.FULL: AutomationLevel.PARTIAL, AutomationLevel.PARTIAL: AutomationLevel.ASSISTED}
ALARM_RAISED = "alarm.raised"
ALARM_CHANGED = "alarm.changed"
STATION_CHANGED = "station.changed"


@dataclass(frozen=True)
class AlarmFinding:
    kind: str  # an AlarmKind value
    summary: str
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmsRaised:
    raised: list[Alarm]  # new alarms
    seen_again: list[Alarm]  # active alarms the findings counted on
    level_change: StationChange | None


def alarm_representation(alarm: Alarm) -> dict:
    return {
        "id": alarm.pk,
        "station": alarm.station.slug,
        "kind": alarm.kind,
        "kind_display": alarm.get_kind_display(),
        "status": alarm.status,
        "summary": alarm.summary,
        "actions": alarm.actions,
        "model_version": str(alarm.model_version) if alarm.model_version_id else None,
        "raised_at": alarm.raised_at.isoformat(),
        "last_seen_at": alarm.last_seen_at.isoformat(),
        "times_seen": alarm.times_seen,
        "acknowledged_by": alarm.acknowledged_by.get_username() if alarm.acknowledged_by_id else None,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "cleared_by": alarm.cleared_by.get_username() if alarm.cleared_by_id else None,
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "note": alarm.note,
    }


def alarms_raise(
    *,
    station: Station,
    findings: Sequence[AlarmFinding],
    model_version: ModelVersion | None = None,
    drift_check: DriftCheck | None = None,
) -> AlarmsRaised:
    """Record `findings` as alarms; step the level down once if any alarm is new."""
    if not findings:
        return AlarmsRaised([], [], None)
    now = timezone.now()
    raised: list[Alarm] = []
    seen_again: list[Alarm] = []
    level_change = None
    with transaction.atomic():
        locked = Station.objects.select_for_update().get(pk=station.pk)
        for finding in findings:
            active = (
                Alarm.objects.select_for_update()
                .filter(station=locked, kind=finding.kind)
                .exclude(status=AlarmStatus.CLEARED)
                .first()
            )
            if active is not None:
                active.last_seen_at = now
                active.times_seen += 1
                active.detail = {**active.detail, "latest": finding.detail}
                active.save(update_fields=["last_seen_at", "times_seen", "detail"])
                seen_again.append(active)
                continue
            raised.append(
                Alarm.objects.create(
                    station=locked,
                    kind=finding.kind,
                    model_version=model_version,
                    drift_check=drift_check,
                    summary=finding.summary[:300],
                    detail=finding.detail,
                    last_seen_at=now,
                )
            )
        if raised and DriftSettings.of(locked).alarm_step_down and locked.automation_level in STEP_DOWN:
            level_change = _step_down(locked, raised)
        events = [{"type": ALARM_RAISED, "alarm": alarm_representation(a)} for a in raised]
        events += [{"type": ALARM_CHANGED, "alarm": alarm_representation(a)} for a in seen_again]
        if level_change is not None:
            events.append(
                {
                    "type": STATION_CHANGED,
                    "station": locked.slug,
                    "changes": {"automation_level": level_change.new_value},
                    "alarm": raised[0].pk,
                }
            )
        transaction.on_commit(lambda: station_event_publish(station_slug=locked.slug, events=events))
        if raised and alarm_channels(DriftSettings.of(locked)):  # new alarms only: once per alarm
            ids = [alarm.pk for alarm in raised]
            transaction.on_commit(
                lambda: [task_enqueue(Task.ALARM_NOTIFY, pk, what="alarm notification") for pk in ids]
            )
    station.automation_level = locked.automation_level
    return AlarmsRaised(raised, seen_again, level_change)


def camera_fault_check(*, station: Station) -> AlarmsRaised:
    """A camera or lighting fault: the station's last `LOUPE_CAMERA_FAULT_RUN` units all failed
    the frame check (each went to a person). Raised like a drift alarm, with its step-down; a
    run already alarmed counts on the active alarm."""
    run = settings.LOUPE_CAMERA_FAULT_RUN
    recent = list(
        Unit.objects.filter(station=station)
        .order_by("-received_at", "-id")
        .values_list("id", "queue_reason", "routing")[:run]
    )
    if len(recent) < run or any(reason != QueueReason.FRAME_CHECK for _, reason, _ in recent):
        return AlarmsRaised([], [], None)
    problems = Counter(routing["frame_check"]["problem"].replace("_", " ") for _, _, routing in recent)
    named = ", ".join(f"{count} {problem}" for problem, count in problems.most_common())
    finding = AlarmFinding(
        kind=AlarmKind.CAMERA,
        summary=f"camera or lighting fault: the last {run} frames failed the frame check ({named})",
        detail={"units": [unit_id for unit_id, _, _ in recent], "problems": dict(problems)},
    )
    return alarms_raise(station=station, findings=[finding], model_version=station.champion)


def escape_rate_check(*, station: Station) -> AlarmsRaised:
    """Partial automation's live escape rate against its target (`escape_rates_live`): when the
    whole interval lies above the target, an escape-rate alarm, raised like a drift alarm with its
    step-down; while it is active, later checks that still find the rate above count on it.

    Run after each audit decision at partial automation commits (`decision_record` queues it): a
    new verdict is the only thing that moves the estimate, and the check is one indexed count over
    the window's audits, so checking each one is exact (an alarm the moment the evidence is
    there) and cheaper than a periodic sweep over every station."""
    live = escape_rates_live(stations=[station]).get(station.pk)
    if live is None or live.state != LiveEscapeState.ABOVE:
        return AlarmsRaised([], [], None)
    finding = AlarmFinding(
        kind=AlarmKind.ESCAPE,
        summary=f"partial automation's escape rate is {live.text()}",
        detail=live.as_dict(),
    )
    return alarms_raise(station=station, findings=[finding], model_version=station.champion)


def _step_down(station: Station, raised: list[Alarm]) -> StationChange:
    old = station.automation_level
    new = STEP_DOWN[AutomationLevel(old)]
    station.automation_level = new
    station.save(update_fields=["automation_level", "updated_at"])
    names = ", ".join(f"alarm {a.pk} ({a.get_kind_display().split(' (')[0].lower()})" for a in raised)
    change = StationChange.objects.create(
        station=station,
        changed_by=None,
        field="automation_level",
        old_value=old,
        new_value=new,
        note=f"automatic step-down on {names}"[:300],
        alarm=raised[0],
    )
    action = f"automation level {old} -> {new}"
    for alarm in raised:
        alarm_action_add(alarm=alarm, action=action)
    return change


def alarm_action_add(*, alarm: Alarm, action: str) -> None:
    """Note on the alarm something the system did about it."""
    alarm.actions = [*alarm.actions, action]
    alarm.save(update_fields=["actions"])


def alarm_acknowledge(*, alarm: Alarm, user) -> Alarm:
    """A supervisor has seen the alarm; it stays active until cleared."""
    with transaction.atomic():
        locked = Alarm.objects.select_for_update().select_related("station").get(pk=alarm.pk)
        if locked.status != AlarmStatus.OPEN:
            raise ValidationError(f"alarm {locked.pk} is {locked.status}, not open: nothing to acknowledge")
        locked.status = AlarmStatus.ACKNOWLEDGED
        locked.acknowledged_by = user
        locked.acknowledged_at = timezone.now()
        locked.save(update_fields=["status", "acknowledged_by", "acknowledged_at"])
        _publish_changed(locked)
    return locked


def alarm_clear(*, alarm: Alarm, user, note: str = "") -> Alarm:
    """The cause is dealt with: the alarm closes, and the next shift of its kind raises a new one.
    Clearing does not raise the automation level again; the supervisor sets it."""
    with transaction.atomic():
        locked = Alarm.objects.select_for_update().select_related("station").get(pk=alarm.pk)
        if locked.status == AlarmStatus.CLEARED:
            raise ValidationError(f"alarm {locked.pk} is already cleared")
        now = timezone.now()
        if locked.acknowledged_at is None:
            locked.acknowledged_by, locked.acknowledged_at = user, now
        locked.status = AlarmStatus.CLEARED
        locked.cleared_by = user
        locked.cleared_at = now
        locked.note = note.strip()[:500]
        locked.save(
            update_fields=["status", "acknowledged_by", "acknowledged_at", "cleared_by", "cleared_at", "note"]
        )
        _publish_changed(locked)
    return locked


def _publish_changed(alarm: Alarm) -> None:
    event = {"type": ALARM_CHANGED, "alarm": alarm_representation(alarm)}
    slug = alarm.station.slug
    transaction.on_commit(lambda: station_event_publish(station_slug=slug, events=[event]))
