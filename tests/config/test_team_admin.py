"""Supervisors manage their team and their stations in the admin, and can give no more than the
roles: the admin's people and station pages against staff inspectors, supervisors, superusers."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from inspection.models import DeviceKey, Station
from tests.inspection.factories import signed_in
from tests.labeling.formats.roundtrip import labelstudio_dataset

pytestmark = pytest.mark.django_db


def staff(name: str, role: str | None) -> User:
    if role is None:
        return User.objects.create(username=name, is_staff=True, is_superuser=True)
    user = User.objects.create(username=name, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


ADMIN_PAGES = [
    "/admin/auth/user/",
    "/admin/auth/user/add/",
    "/admin/inspection/station/add/",
    "/admin/inspection/devicekey/add/",
    "/admin/labeling/dataset/",
]


@pytest.mark.parametrize("path", ADMIN_PAGES)
@pytest.mark.parametrize(
    ("role", "allowed"), [("inspector", False), ("labeler", False), ("supervisor", True), (None, True)]
)
def test_team_and_station_pages_are_for_supervisors(path, role, allowed):
    response = signed_in(staff("someone", role)).get(path)
    assert (response.status_code == 200) is allowed, (path, role, response.status_code)
    if not allowed:
        assert response.status_code == 403


def test_a_supervisor_adds_an_inspector_who_can_then_sign_in():
    client = signed_in(staff("sam", "supervisor"))
    added = client.post(
        "/admin/auth/user/add/",
        {
            "username": "ines",
            "usable_password": "true",
            "password1": "a-long-passphrase",
            "password2": "a-long-passphrase",
        },
    )
    assert added.status_code == 302, added.content.decode()
    ines = User.objects.get(username="ines")
    page = client.get(f"/admin/auth/user/{ines.pk}/change/").content.decode()
    # only the roles are offered, never superuser status or single permissions
    assert "is_superuser" not in page and "user_permissions" not in page
    offered = {
        option for option in ("inspector", "labeler", "supervisor", "auditors") if f">{option}<" in page
    }
    Group.objects.create(name="auditors")
    changed = client.post(
        f"/admin/auth/user/{ines.pk}/change/",
        {
            "username": "ines",
            "groups": [Group.objects.get(name="inspector").pk],
            "is_active": "on",
            "is_superuser": "on",
        },
    )
    assert changed.status_code == 302, changed.content.decode()
    ines.refresh_from_db()
    assert [g.name for g in ines.groups.all()] == ["inspector"] and not ines.is_superuser
    assert offered == {"inspector", "labeler", "supervisor"}
    assert Client().login(username="ines", password="a-long-passphrase")


def test_a_supervisor_cannot_give_other_groups_or_touch_a_superuser():
    client = signed_in(staff("sam", "supervisor"))
    lea = User.objects.create(username="lea")
    powerful = Group.objects.create(name="everything")
    powerful.permissions.set(Permission.objects.all())
    refused = client.post(f"/admin/auth/user/{lea.pk}/change/", {"username": "lea", "groups": [powerful.pk]})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not lea.groups.exists()
    root = staff("root", None)
    assert "root" not in client.get("/admin/auth/user/").content.decode()
    assert client.get(f"/admin/auth/user/{root.pk}/change/").status_code == 302  # "no such user"
    assert client.get(f"/admin/auth/user/{root.pk}/password/").status_code == 404


def test_a_supervisor_creates_a_station_and_its_device_key():
    client = signed_in(staff("sam", "supervisor"))
    page = client.get("/admin/inspection/station/add/").context
    form = page["adminform"].form
    data = {name: field.initial for name, field in form.fields.items() if field.initial is not None}
    for inline in page["inline_admin_formsets"]:  # none of the inlines' rows
        data.update({f"{inline.formset.prefix}-TOTAL_FORMS": 0, f"{inline.formset.prefix}-INITIAL_FORMS": 0})
    data.update(slug="line-9", name="Line 9", automation_level="assisted", defect_classes="crack")
    data = {name: ("on" if value is True else value) for name, value in data.items() if value is not False}
    created = client.post("/admin/inspection/station/add/", data)
    assert created.status_code == 302, created.context["adminform"].form.errors
    station = Station.objects.get(slug="line-9")
    key = client.post("/admin/inspection/devicekey/add/", {"name": "line 9 computer", "station": station.pk})
    assert key.status_code == 302
    assert DeviceKey.objects.get(station=station).name == "line 9 computer"


def test_a_supervisor_exports_a_data_set(tmp_path, media_root):
    dataset = labelstudio_dataset(tmp_path)
    client = signed_in(staff("sam", "supervisor"))
    response = client.post(
        "/admin/labeling/dataset/", {"action": "export_coco", "_selected_action": [dataset.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="mixed-coco.zip"'
