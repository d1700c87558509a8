"""A station with history is retired, never deleted: the line's posts get a JSON 410 naming it,
it leaves the inspectors' queues, its history stays, and the admin says why it will not delete."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from inspection.models import Station, StationChange, Unit
from inspection.services.queue import unit_claim_next
from inspection.services.stations import station_retire
from tests.inspection.factories import jpeg_bytes, person, posted_unit, signed_in, upload

pytestmark = pytest.mark.django_db


def post(client, serial: str, **headers):
    return client.post(
        "/api/v1/units/", {"serial": serial, "image": upload(jpeg_bytes())}, format="multipart", **headers
    )


def test_a_retired_station_refuses_the_lines_posts_with_a_410_naming_it(
    make_station, device_client, media_root
):
    station = make_station("screens-7", level="human")
    line = device_client(station)
    accepted = post(line, "SN-1", HTTP_IDEMPOTENCY_KEY="sn-1")
    assert accepted.status_code == 201
    supervisor = person("sam", role="supervisor")

    change = station_retire(station=station, user=supervisor, note="line dismantled")

    refused = post(line, "SN-2")
    assert refused.status_code == 410
    assert refused.json()["station"] == "screens-7"
    assert "station screens-7 is retired" in refused.json()["detail"]
    assert Unit.objects.filter(station=station).count() == 1  # nothing half-stored
    # a retry of a unit accepted before still gets its answer
    assert post(line, "SN-1", HTTP_IDEMPOTENCY_KEY="sn-1").status_code == 201
    assert (change.field, change.changed_by, change.note) == ("retired", supervisor, "line dismantled")
    assert StationChange.objects.filter(station=station, field="retired").count() == 1
    with pytest.raises(ValidationError, match="already retired"):
        station_retire(station=station, user=supervisor)


def test_a_retired_station_leaves_the_inspectors_queues_but_keeps_its_history(
    make_station, device_client, media_root
):
    kept = make_station("screens-1", level="human", champion=None)
    retired = make_station("screens-2", level="human", champion=None)
    posted_unit(device_client(kept), "K-1")
    old = posted_unit(device_client(retired), "R-1")
    station_retire(station=retired, user=person("sam", role="supervisor"))
    inspector = person("ines", role="inspector")
    client = signed_in(inspector)

    listing = client.get("/stations/").content.decode()
    assert "screens-1" in listing and "screens-2" not in listing
    assert client.get("/stations/screens-2/").status_code == 404
    assert unit_claim_next(station=Station.objects.get(slug="screens-2"), user=inspector) is None
    # its pending unit is not handed out: the station page's queue is empty
    assert (
        client.post("/api/v1/stations/screens-2/claim/", {}, content_type="application/json").status_code
        == 204
    )
    # nor is it claimed by its id (a unit skipped before): 409 naming the station
    refused = client.post(f"/api/v1/units/{old['id']}/claim/")
    assert refused.status_code == 409
    assert "station screens-2 is retired" in refused.json()["detail"]
    assert unit_claim_next(station=kept, user=inspector) is not None
    # its units stay readable
    assert client.get(f"/units/{old['id']}/").status_code == 200


def test_the_admin_refuses_to_delete_a_station_and_offers_retire(make_station):
    station = make_station("screens-3")
    supervisor = User.objects.create_superuser("root", password="pw")
    admin = signed_in(supervisor)

    page = admin.post(f"/admin/inspection/station/{station.pk}/delete/", {"post": "yes"}, follow=True)

    assert "screens-3 cannot be deleted" in page.content.decode()
    assert "Retire it instead" in page.content.decode()
    assert Station.objects.filter(pk=station.pk).exists()
    listing = admin.get("/admin/inspection/station/").content.decode()
    assert 'value="retire"' in listing and 'value="delete_selected"' not in listing

    admin.post(
        "/admin/inspection/station/",
        {"action": "retire", "_selected_action": [station.pk]},
        follow=True,
    )
    station.refresh_from_db()
    assert station.retired
    assert StationChange.objects.get(station=station, field="retired").changed_by == supervisor
