"""The webhook secret is write-only in the station admin: set by typing a new one or rotated (the
new one shown once, to whoever rotated it), never shown again; pages say only "set" or "not set"."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.contrib.auth.models import Group, User

from inspection.enums import AutomationLevel
from inspection.models import Unit
from inspection.roles import INSPECTOR, SUPERVISOR
from inspection.services.decisions import decision_record
from inspection.webhooks.models import WebhookDelivery
from inspection.webhooks.services import webhook_attempt
from tests.inspection.factories import posted_unit, station_admin_form

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback_webhooks")]

SECRET = "receiver-shared-secret-7f3a"


def _staff(name: str, role: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _change_page(station) -> str:
    return f"/admin/inspection/station/{station.pk}/change/"


def _rotate_page(station) -> str:
    return f"/admin/inspection/station/{station.pk}/webhook-secret/"


@pytest.fixture
def station(make_station, webhook_receiver):
    hook = {"webhook_url": webhook_receiver.url, "webhook_secret": SECRET}
    return make_station(level=AutomationLevel.ASSISTED, **hook)


@pytest.mark.parametrize("role", [SUPERVISOR, INSPECTOR])
def test_the_station_page_says_the_secret_is_set_and_never_shows_it(station, client, role):
    client.force_login(_staff("pat", role))

    page = client.get(_change_page(station))

    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    assert "Webhook secret" in html and ">set<" in html.replace("\n", "").replace(" ", "")
    assert ("webhook-secret/" in html) == (role == SUPERVISOR)  # the rotate link
    assert ('name="webhook_secret"' in html) == (role == SUPERVISOR)


def test_saving_the_page_with_the_secret_left_empty_keeps_it(station, client):
    client.force_login(_staff("sam", SUPERVISOR))

    response = client.post(_change_page(station), station_admin_form(station, name="Screens, line 1"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    station.refresh_from_db()
    assert (station.name, station.webhook_secret) == ("Screens, line 1", SECRET)
    assert not station.changes.filter(field="webhook_secret").exists()


def test_a_secret_typed_in_replaces_it_and_is_audited_without_its_value(station, client):
    client.force_login(_staff("sam", SUPERVISOR))

    form = station_admin_form(station, webhook_secret="typed-in-secret")
    response = client.post(_change_page(station), form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    station.refresh_from_db()
    assert station.webhook_secret == "typed-in-secret"
    change = station.changes.get(field="webhook_secret")
    assert (change.old_value, change.new_value) == ("(set)", "(set)")
    assert "typed-in-secret" not in client.get(_change_page(station)).content.decode()


def test_rotating_shows_the_new_secret_once_and_deliveries_are_signed_with_it(
    station, client, media_root, device_client, webhook_receiver
):
    supervisor = _staff("sam", SUPERVISOR)
    client.force_login(supervisor)
    posted = posted_unit(device_client(station), "SN-1")
    decision_record(unit=Unit.objects.get(pk=posted["id"]), user=supervisor, verdict="pass")

    confirm = client.get(_rotate_page(station))
    rotated = client.post(_rotate_page(station))

    assert confirm.status_code == rotated.status_code == 200
    assert SECRET not in confirm.content.decode()
    station.refresh_from_db()
    new_secret = station.webhook_secret
    assert new_secret != SECRET and len(new_secret) >= 32
    assert new_secret in rotated.content.decode()
    assert "no-store" in rotated["Cache-Control"]
    assert new_secret not in client.get(_change_page(station)).content.decode()
    assert new_secret not in client.get(_rotate_page(station)).content.decode()
    change = station.changes.get(field="webhook_secret")
    assert (change.old_value, change.new_value, change.note) == ("(set)", "(set)", "webhook secret rotated")
    assert change.changed_by.username == "sam"

    # a delivery made before the rotation is signed with the new secret when it is sent
    delivery = WebhookDelivery.objects.select_related("station").get()
    webhook_attempt(delivery=delivery)
    (post,) = webhook_receiver.received()
    expected = "sha256=" + hmac.new(new_secret.encode(), post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-Loupe-Signature"] == expected


def test_an_inspector_cannot_rotate_the_secret(station, client):
    client.force_login(_staff("ines", INSPECTOR))

    assert client.post(_rotate_page(station)).status_code == 403

    station.refresh_from_db()
    assert station.webhook_secret == SECRET
