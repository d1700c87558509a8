"""Access is audited like a station's settings: who made or revoked a device key, made an account,
deactivated it or changed its roles, in append-only `AccessChange` rows."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client

from config.accounts import first_run_path
from inspection.models import AccessChange, DeviceKey
from inspection.services.stations import device_key_create, device_key_revoke
from tests.inspection.factories import signed_in

pytestmark = pytest.mark.django_db


def trail(**subject) -> list[tuple]:
    rows = AccessChange.objects.filter(**subject).order_by("id")
    return [(row.field, row.old_value, row.new_value, row.changed_by, row.note) for row in rows]


def supervisor() -> User:
    user = User.objects.create(username="sam", is_staff=True)
    user.groups.add(Group.objects.get(name="supervisor"))
    return user


def test_device_keys_made_and_revoked_are_recorded_with_who(make_station):
    station = make_station(champion=None, level="human")
    call_command(
        "create_device_key", station.slug, "--name", "line pc 1", stdout=StringIO(), stderr=StringIO()
    )
    from_command = DeviceKey.objects.get(name="line pc 1")
    sam = supervisor()
    key, _ = device_key_create(station=station, name="line pc 2", created_by=sam)

    device_key_revoke(key=key, user=sam, note="computer replaced")

    assert trail(device_key=from_command) == [("created", None, "line pc 1", None, "command line")]
    assert trail(device_key=key) == [
        ("created", None, "line pc 2", sam, ""),
        ("revoked", False, True, sam, "computer replaced"),
    ]
    with pytest.raises(ValidationError, match="already revoked"):
        device_key_revoke(key=key, user=sam)


def test_the_admin_records_keys_made_and_revoked_and_deletes_none(make_station):
    station = make_station(champion=None, level="human")
    sam = supervisor()
    client = signed_in(sam)
    assert (
        client.post("/admin/inspection/devicekey/add/", {"name": "pc", "station": station.pk}).status_code
        == 302
    )
    key = DeviceKey.objects.get(name="pc")

    revoked = client.post(
        f"/admin/inspection/devicekey/{key.pk}/change/",
        {"name": "pc", "station": station.pk, "revoked": "on"},
    )

    assert revoked.status_code == 302
    assert trail(device_key=key) == [
        ("created", None, "pc", sam, "admin"),
        ("revoked", False, True, sam, "admin"),
    ]
    assert client.get(f"/admin/inspection/devicekey/{key.pk}/delete/").status_code == 403


def test_accounts_made_deactivated_and_given_roles_in_the_admin_are_recorded():
    sam = supervisor()
    client = signed_in(sam)
    added = client.post(
        "/admin/auth/user/add/",
        {
            "username": "ines",
            "usable_password": "true",
            "password1": "a-long-pass",
            "password2": "a-long-pass",
        },
    )
    assert added.status_code == 302, added.content.decode()
    ines = User.objects.get(username="ines")
    inspector = Group.objects.get(name="inspector")

    given = client.post(
        f"/admin/auth/user/{ines.pk}/change/",
        {"username": "ines", "groups": [inspector.pk], "is_active": "on"},
    )
    deactivated = client.post(
        f"/admin/auth/user/{ines.pk}/change/", {"username": "ines", "groups": [inspector.pk]}
    )

    assert given.status_code == deactivated.status_code == 302
    assert trail(account=ines) == [
        ("created", None, "ines", sam, "admin"),
        ("is_active", False, True, sam, "admin"),
        ("roles", [], ["inspector"], sam, "admin"),
        ("is_active", True, False, sam, "admin"),
    ]


def test_the_first_account_is_recorded_as_made_by_the_first_run_link():
    client = Client()
    made = client.post(
        first_run_path(),
        {"username": "root", "password": "a-long-passphrase", "password_again": "a-long-passphrase"},
    )
    assert made.status_code == 302
    root = User.objects.get(username="root")
    assert trail(account=root) == [
        ("created", None, "root", None, "first-run link"),
        ("is_active", False, True, None, "first-run link"),
        ("is_staff", False, True, None, "first-run link"),
        ("is_superuser", False, True, None, "first-run link"),
        ("roles", [], ["supervisor"], None, "first-run link"),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_access_trail_is_append_only_in_the_database(make_station):
    key, _ = device_key_create(station=make_station(champion=None, level="human"), name="pc")
    rows = AccessChange.objects.filter(device_key=key)
    with pytest.raises(IntegrityError, match="append-only: UPDATE refused"), transaction.atomic():
        rows.update(note="nobody")
    with pytest.raises(IntegrityError, match="append-only: DELETE refused"), transaction.atomic():
        rows.delete()
    assert rows.get().note == ""
