"""The record tables are append-only in the database itself (PostgreSQL triggers, migration 0013):
no `update()`, `delete()`, cascade or raw SQL from the application's role changes them."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inspection.history.models import UnitComment
from inspection.models import DecisionEvent, Station, StationChange, Unit
from inspection.services.decisions import decision_record
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from inspection.supervision.services import alarm_clear
from tests.inspection.factories import person, posted_unit

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's"),
]


def refused(statement) -> str:
    """Run `statement` in its own savepoint; the database's refusal, as text."""
    with pytest.raises(IntegrityError) as refusal, transaction.atomic():
        statement()
    return str(refusal.value)


def raw(sql: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def decided_unit(make_station, device_client, media_root) -> Unit:
    station = make_station(level="human")
    unit = Unit.objects.get(pk=posted_unit(device_client(station))["id"])
    decision_record(unit=unit, verdict="pass", user=person("ines", role="inspector"))
    return unit


def test_decision_events_cannot_be_updated_or_deleted_by_any_path(decided_unit):
    events = DecisionEvent.objects.filter(unit=decided_unit)
    event = events.get()

    assert "append-only: UPDATE refused" in refused(lambda: events.update(verdict="fail"))
    assert "append-only: DELETE refused" in refused(lambda: events.delete())
    assert "inspection_decisionevent" in refused(
        lambda: raw("UPDATE inspection_decisionevent SET verdict = 'fail' WHERE id = %s", event.pk)
    )
    assert "DELETE refused" in refused(
        lambda: raw("DELETE FROM inspection_decisionevent WHERE id = %s", event.pk)
    )
    assert events.get().verdict == "pass"
    # adding stays open: the record grows
    decision_record(unit=decided_unit, verdict="fail", user=person("noor", role="inspector"))
    assert events.count() == 2


def test_station_changes_and_comments_cannot_be_rewritten_nor_removed(decided_unit):
    change = StationChange.objects.filter(station=decided_unit.station).first()
    comment = UnitComment.objects.create(unit=decided_unit, author=person("noor"), body="burr on the left")

    assert "inspection_stationchange rows are append-only" in refused(
        lambda: StationChange.objects.filter(pk=change.pk).update(note="nothing happened")
    )
    assert "DELETE refused" in refused(
        lambda: raw("DELETE FROM inspection_stationchange WHERE id = %s", change.pk)
    )
    assert "inspection_unitcomment rows are append-only" in refused(
        lambda: UnitComment.objects.filter(pk=comment.pk).update(body="no burr")
    )
    assert "DELETE refused" in refused(lambda: comment.delete())
    assert UnitComment.objects.get(pk=comment.pk).body == "burr on the left"


def test_a_station_with_history_cannot_be_deleted_even_by_cascade(make_station):
    station = make_station()  # its creation is already a station change

    assert "inspection_stationchange rows are append-only: DELETE refused" in refused(
        lambda: Station.objects.filter(pk=station.pk).delete()
    )
    assert Station.objects.filter(pk=station.pk).exists()


def test_an_alarm_is_handled_but_once_cleared_it_is_history(make_station):
    station = make_station()
    alarm = Alarm.objects.create(
        station=station, kind=AlarmKind.SCORE, summary="scores shifted", last_seen_at=timezone.now()
    )
    supervisor = person("sam", role="supervisor")
    # while open: seen again, acknowledged, cleared
    Alarm.objects.filter(pk=alarm.pk).update(times_seen=2)
    alarm_clear(alarm=alarm, user=supervisor, note="lamp replaced")

    rows = Alarm.objects.filter(pk=alarm.pk)
    assert f"alarm {alarm.pk} is cleared" in refused(lambda: rows.update(note="nothing to see"))
    assert "is cleared" in refused(lambda: rows.update(status=AlarmStatus.OPEN))
    assert "DELETE of alarm" in refused(lambda: rows.delete())
    rows.update(notified={"email": timezone.now().isoformat()})  # a notice sent late is still recorded
    cleared = rows.get()
    assert (cleared.status, cleared.note, cleared.times_seen) == (AlarmStatus.CLEARED, "lamp replaced", 2)
    assert "email" in cleared.notified


def test_an_open_alarm_cannot_be_deleted_either(make_station):
    alarm = Alarm.objects.create(
        station=make_station(), kind=AlarmKind.CAMERA, summary="blank frames", last_seen_at=timezone.now()
    )
    assert "DELETE of alarm" in refused(lambda: raw("DELETE FROM inspection_alarm WHERE id = %s", alarm.pk))
