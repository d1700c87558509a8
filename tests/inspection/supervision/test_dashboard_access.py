"""Who may see the dashboard and act on alarms: every page and endpoint, for a stranger, an
inspector, a labeler, a supervisor, and a device key; the alarm actions' answers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient

from inspection.enums import AutomationLevel
from inspection.services.stations import device_key_create, station_create
from inspection.supervision import services as alarm_services
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from inspection.supervision.services import AlarmFinding, alarms_raise
from tests.inspection.factories import person
from tests.inspection.supervision.dashboard_rows import model_version

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/line-a/"]
ENDPOINTS = ["/api/v1/dashboard/?period=day", "/api/v1/dashboard/stations/line-a/?period=week"]


@pytest.fixture(autouse=True)
def quiet_events(monkeypatch):
    """The alarm services' events are not under test here."""
    monkeypatch.setattr(alarm_services, "station_event_publish", lambda **kwargs: None)


@pytest.fixture
def station(redis_client):
    return station_create(slug="line-a", level=AutomationLevel.FULL, champion=model_version())


@pytest.fixture
def alarm(station) -> Alarm:
    (raised,) = alarms_raise(
        station=station, findings=[AlarmFinding(AlarmKind.INPUT, "brightness shifted (p = 1e-06)")]
    ).raised
    return raised


def signed_in(role: str | None) -> Client:
    client = Client()
    if role is not None:
        client.force_login(person(f"someone-{role}", role=role))
    return client


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    ("role", "expected"), [(None, 302), ("inspector", 403), ("labeler", 403), ("supervisor", 200)]
)
def test_dashboard_pages_are_for_supervisors(station, path, role, expected):
    response = signed_in(role).get(path)
    assert response.status_code == expected
    if role is None:
        assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("role", "expected"), [(None, 401), ("inspector", 403), ("labeler", 403), ("supervisor", 200)]
)
def test_dashboard_figures_are_for_supervisors(station, path, role, expected):
    response = signed_in(role).get(path)
    assert response.status_code == expected, response.content
    if expected == 403:
        assert "supervisors" in response.json()["detail"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_device_key_cannot_read_the_dashboard(station, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {device_key_create(station=station, name='pc')[1]}")
    assert client.get(path).status_code == 403


def test_the_station_page_and_figures_name_what_is_missing(station):
    supervisor = signed_in("supervisor")
    assert supervisor.get("/dashboard/nowhere/").status_code == 404
    assert supervisor.get("/api/v1/dashboard/stations/nowhere/").status_code == 404
    response = supervisor.get("/api/v1/dashboard/?period=month")
    assert response.status_code == 400
    assert response.json() == {"period": ["period must be one of hour, day, week, not 'month'"]}


def test_the_supervisor_sees_the_dashboard_link_and_the_inspector_does_not(station):
    assert 'href="/dashboard/"' in signed_in("supervisor").get("/stations/").content.decode()
    assert 'href="/dashboard/"' not in signed_in("inspector").get("/stations/").content.decode()


def test_only_people_who_may_change_alarms_see_the_alarm_buttons(station):
    page = signed_in("supervisor").get("/dashboard/line-a/").content.decode()
    assert 'data-can-change-alarms="1"' in page
    viewer = User.objects.create_user("viewer", password="pw")
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = Client()
    client.force_login(viewer)
    assert 'data-can-change-alarms="0"' in client.get("/dashboard/line-a/").content.decode()


@pytest.mark.parametrize("action", ["acknowledge", "clear"])
@pytest.mark.parametrize(("role", "expected"), [(None, 401), ("inspector", 403), ("labeler", 403)])
def test_alarm_actions_need_change_alarm(alarm, action, role, expected):
    response = signed_in(role).post(f"/api/v1/alarms/{alarm.pk}/{action}/")
    assert response.status_code == expected
    alarm.refresh_from_db()
    assert alarm.status == AlarmStatus.OPEN


def test_viewing_the_dashboard_is_not_enough_to_change_an_alarm(alarm):
    viewer = User.objects.create_user("viewer", password="pw")
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = Client()
    client.force_login(viewer)
    assert client.get("/api/v1/dashboard/").status_code == 200
    response = client.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/")
    assert response.status_code == 403 and "change_alarm" in response.json()["detail"]


def test_a_supervisor_acknowledges_then_clears_with_a_note(alarm):
    client = signed_in("supervisor")
    response = client.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/")
    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    assert response.json()["acknowledged_by"] == "someone-supervisor"
    again = client.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/")
    assert again.status_code == 409
    assert again.json()["detail"] == f"alarm {alarm.pk} is acknowledged, not open: nothing to acknowledge"
    cleared = client.post(
        f"/api/v1/alarms/{alarm.pk}/clear/", {"note": "lamp replaced"}, content_type="application/json"
    )
    assert cleared.status_code == 200 and cleared.json()["note"] == "lamp replaced"
    assert client.post(f"/api/v1/alarms/{alarm.pk}/clear/").status_code == 409
    alarm.refresh_from_db()
    assert alarm.status == AlarmStatus.CLEARED and alarm.cleared_by.username == "someone-supervisor"


def test_alarm_actions_check_the_note_the_alarm_and_csrf(alarm):
    client = signed_in("supervisor")
    too_long = client.post(
        f"/api/v1/alarms/{alarm.pk}/clear/", {"note": "x" * 501}, content_type="application/json"
    )
    assert too_long.status_code == 400 and "note" in too_long.json()
    assert client.post("/api/v1/alarms/999999/acknowledge/").status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(username="someone-supervisor"))
    refused = strict.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    alarm.refresh_from_db()
    assert alarm.status == AlarmStatus.OPEN


def test_the_station_figures_list_the_active_alarms(alarm):
    body = signed_in("supervisor").get("/api/v1/dashboard/stations/line-a/").json()
    assert body["period"] == "hour"
    assert [(a["id"], a["status"], a["times_seen"]) for a in body["alarms"]] == [(alarm.pk, "open", 1)]
    assert body["alarms"][0]["actions"] == ["automation level full -> partial"]
