"""The dashboard's WebSocket `/ws/dashboard/`, through the real ASGI stack and Redis channel layer:
who is refused (and with which close code), and the notices a supervisor receives."""

from __future__ import annotations

import pytest

from inspection.enums import AutomationLevel
from inspection.supervision.models import AlarmKind
from inspection.supervision.services import AlarmFinding, alarms_raise
from tests.inspection.factories import person, posted_unit
from tests.inspection.test_realtime import close_code, events_during, key_headers, new_key, session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]

DASHBOARD = "/ws/dashboard/"


@pytest.mark.parametrize("role", ["inspector", "labeler"])
def test_people_without_the_dashboard_permission_are_refused(redis_client, role):
    assert close_code(DASHBOARD, session_headers(person(role=role))) == 4403


def test_strangers_and_device_keys_are_refused(redis_client, make_station):
    assert close_code(DASHBOARD, []) == 4401
    station = make_station(slug="screens-1", champion=None)
    assert close_code(DASHBOARD, key_headers(new_key(station))) == 4401  # keys never see the dashboard


def test_a_supervisor_on_another_sites_page_is_refused(redis_client):
    headers = session_headers(person("sam", role="supervisor"))
    site = [(b"host", b"loupe.factory.local")]
    assert close_code(DASHBOARD, headers + site + [(b"origin", b"https://evil.example")]) == 4403


def test_an_inactive_supervisor_is_refused(redis_client):
    supervisor = person("sam", role="supervisor")
    headers = session_headers(supervisor)
    supervisor.is_active = False
    supervisor.save()
    assert close_code(DASHBOARD, headers) == 4401


def test_a_supervisor_hears_of_a_unit_posted_at_any_station(
    media_root, redis_client, make_station, device_client
):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    client = device_client(station)
    headers = session_headers(person("sam", role="supervisor"))

    _, (notice,) = events_during(DASHBOARD, headers, lambda: posted_unit(client, "SN-1"), count=1)

    assert notice == {
        "type": "station.activity",
        "station": "screens-1",
        "kinds": ["unit.decided", "unit.received"],
        "alarms": [],
    }


def test_a_new_alarm_comes_in_full_with_the_notice(redis_client, make_station):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    headers = session_headers(person("sam", role="supervisor"))

    def raise_alarm():
        return alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.SCORE, "less sure")]).raised[0]

    alarm, (notice,) = events_during(DASHBOARD, headers, raise_alarm, count=1)

    assert notice["station"] == "screens-1"
    assert notice["kinds"] == ["alarm.raised", "station.changed"]
    assert [(a["id"], a["status"], a["summary"]) for a in notice["alarms"]] == [
        (alarm.pk, "open", "less sure")
    ]
