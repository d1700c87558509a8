"""Alarms and drift checks in the admin: supervisors see and handle them, nobody else does."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from inspection.enums import AutomationLevel
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from inspection.supervision.services import AlarmFinding, alarms_raise

pytestmark = pytest.mark.django_db

PAGES = ("/admin/inspection/alarm/", "/admin/inspection/driftcheck/")


def _staff(name: str, role: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def alarm(make_station, media_root) -> Alarm:
    station = make_station(level=AutomationLevel.FULL)
    (raised,) = alarms_raise(
        station=station, findings=[AlarmFinding(AlarmKind.INPUT, "brightness shifted")]
    ).raised
    return raised


@pytest.mark.parametrize("role", ["inspector", "labeler"])
def test_other_roles_cannot_see_alarms_or_drift_checks(client, alarm, role):
    client.force_login(_staff(f"someone-{role}", role))
    for page in PAGES:
        assert client.get(page).status_code == 403, page
    response = client.post(PAGES[0], {"action": "acknowledge", "_selected_action": [alarm.pk]})
    assert response.status_code == 403
    alarm.refresh_from_db()
    assert alarm.status == AlarmStatus.OPEN


def test_strangers_are_sent_to_sign_in(client, alarm):
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_supervisor_acknowledges_then_clears_alarms_in_the_admin(client, alarm):
    supervisor = _staff("sam", "supervisor")
    client.force_login(supervisor)
    for page in PAGES:
        assert client.get(page).status_code == 200, page
    listing = client.get(PAGES[0]).content.decode()
    assert "brightness shifted" in listing and "Acknowledge the selected alarms" in listing
    client.post(PAGES[0], {"action": "acknowledge", "_selected_action": [alarm.pk]})
    alarm.refresh_from_db()
    assert (alarm.status, alarm.acknowledged_by) == (AlarmStatus.ACKNOWLEDGED, supervisor)
    client.post(PAGES[0], {"action": "clear", "_selected_action": [alarm.pk]})
    alarm.refresh_from_db()
    assert (alarm.status, alarm.cleared_by) == (AlarmStatus.CLEARED, supervisor)
    # records are the system's: no editing by hand
    assert client.get(f"/admin/inspection/alarm/{alarm.pk}/change/").status_code == 200
    assert (
        client.post(f"/admin/inspection/alarm/{alarm.pk}/change/", {"summary": "edited"}).status_code == 403
    )
    alarm.refresh_from_db()
    assert alarm.summary == "brightness shifted"


def test_the_station_page_shows_the_automatic_step_down_naming_its_alarm(client, alarm):
    client.force_login(_staff("sam", "supervisor"))
    page = client.get(f"/admin/inspection/station/{alarm.station_id}/change/").content.decode()
    assert f"automatic step-down on alarm {alarm.pk}" in page
    assert 'name="drift_window"' in page and 'name="alarm_step_down"' in page
