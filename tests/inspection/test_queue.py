"""The human queue: claims (oldest first, never twice, expiring), skip, and the station pages."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from inspection.models import Unit
from inspection.roles import LABELER
from inspection.services.decisions import DecisionConflict, decision_record
from inspection.services.queue import inspector_shift_stats, queue_stats, unit_claim_next, unit_claim_release
from tests.inspection.factories import jpeg_bytes, person, upload

pytestmark = pytest.mark.django_db


def pending_units(station, device_client, count: int) -> list[int]:
    client = device_client(station)
    ids = []
    for index in range(count):
        response = client.post(
            "/api/v1/units/",
            {"image": upload(jpeg_bytes(index)), "serial": f"SN-{index}"},
            format="multipart",
        )
        ids.append(response.json()["id"])
    return ids


def test_claims_go_oldest_first_and_never_twice(make_station, device_client):
    station = make_station(level="assisted")
    first, second, third = pending_units(station, device_client, 3)
    ines, omar = person("ines"), person("omar")
    assert unit_claim_next(station=station, user=ines).id == first
    assert unit_claim_next(station=station, user=omar).id == second
    # the inspector's own claim comes back (a reloaded page), unless the page holds it already
    assert unit_claim_next(station=station, user=ines).id == first
    assert unit_claim_next(station=station, user=ines, exclude=[first]).id == third
    assert unit_claim_next(station=station, user=omar, exclude=[second]) is None


def test_an_expired_claim_returns_to_the_queue(make_station, device_client, settings):
    station = make_station(level="assisted")
    (only,) = pending_units(station, device_client, 1)
    ines, omar = person("ines"), person("omar")
    unit_claim_next(station=station, user=ines)
    assert unit_claim_next(station=station, user=omar) is None
    later = timezone.now() + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS + 1)
    assert unit_claim_next(station=station, user=omar, now=later).id == only


def test_skip_releases_and_a_decision_clears_the_claim(make_station, device_client):
    station = make_station(level="assisted")
    first, second = pending_units(station, device_client, 2)
    ines, omar = person("ines"), person("omar")
    unit = unit_claim_next(station=station, user=ines)
    # only the claimant can give it back
    assert not unit_claim_release(unit=unit, user=omar)
    assert unit_claim_release(unit=unit, user=ines)
    assert unit_claim_next(station=station, user=omar).id == first
    # another inspector's live claim blocks a decision; the claimant's decision clears it
    with pytest.raises(DecisionConflict, match="being decided by omar"):
        decision_record(unit=Unit.objects.get(pk=first), user=ines, verdict="pass")
    decision_record(unit=Unit.objects.get(pk=first), user=omar, verdict="pass")
    decided = Unit.objects.get(pk=first)
    assert decided.status == "decided" and decided.claimed_by is None


def test_queue_figures_and_the_inspectors_pace(make_station, device_client):
    station = make_station(level="assisted")
    ids = pending_units(station, device_client, 3)
    ines = person("ines")
    stats = queue_stats(station=station)
    assert stats.pending == 3 and stats.unclaimed == 3 and stats.oldest_pending_seconds >= 0
    unit_claim_next(station=station, user=ines)
    assert queue_stats(station=station).unclaimed == 2
    for unit_id in ids[:2]:
        decision_record(unit=Unit.objects.get(pk=unit_id), user=ines, verdict="pass")
    shift = inspector_shift_stats(user=ines, station=station)
    assert shift.decisions == 2 and shift.per_hour > 0
    assert queue_stats(station=station).pending == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_inspectors_claiming_at_once_get_different_units(make_station, device_client):
    station = make_station(level="assisted")
    pending_units(station, device_client, 2)
    inspectors = [person("ines"), person("omar")]
    barrier = threading.Barrier(2)
    claimed: list[int | None] = [None, None]

    def work(index: int) -> None:
        barrier.wait()
        unit = unit_claim_next(station=station, user=inspectors[index])
        claimed[index] = unit.id if unit else None
        connection.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert None not in claimed and claimed[0] != claimed[1]


def test_the_claim_api_hides_the_model_on_blind_units(make_station, make_model_version, device_client):
    station = make_station(level="shadow")
    pending_units(station, device_client, 1)
    client = APIClient()
    client.force_authenticate(person("ines"))
    body = client.post(f"/api/v1/stations/{station.slug}/claim/", {}, format="json").json()
    assert body["blind"] is True and "model" not in body
    assert (
        client.post(
            f"/api/v1/stations/{station.slug}/claim/", {"exclude": [body["id"]]}, format="json"
        ).status_code
        == 204
    )


def test_the_claim_api_shows_the_model_when_assisted(make_station, device_client):
    station = make_station(level="assisted")
    pending_units(station, device_client, 1)
    client = APIClient()
    client.force_authenticate(person("ines"))
    body = client.post(f"/api/v1/stations/{station.slug}/claim/", {}, format="json").json()
    assert body["blind"] is False and {"score", "regions", "version"} <= set(body["model"])
    assert body["image_url"] == f"/api/v1/units/{body['id']}/image"
    figures = client.get(f"/api/v1/stations/{station.slug}/queue/").json()
    assert figures["pending"] == 1 and figures["unclaimed"] == 0 and figures["mine"]["decisions"] == 0


def test_only_inspectors_claim(make_station, device_client):
    station = make_station(level="assisted")
    pending_units(station, device_client, 1)
    labeler = APIClient()
    labeler.force_authenticate(person("lena", LABELER))
    assert labeler.post(f"/api/v1/stations/{station.slug}/claim/", {}, format="json").status_code == 403
    assert (
        device_client(station).post(f"/api/v1/stations/{station.slug}/claim/", {}, format="json").status_code
        == 403
    )


def test_pages_need_a_sign_in_and_the_right_role(make_station, client):
    station = make_station(level="assisted")
    # signed out: to the login page
    response = client.get("/stations/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/accounts/login/").status_code == 200
    # a labeler sees the stations but cannot open the station page
    client.force_login(person("lena", LABELER))
    assert client.get("/stations/").status_code == 200
    assert client.get(f"/stations/{station.slug}/").status_code == 403
    # an inspector can
    client.force_login(person("ines"))
    page = client.get(f"/stations/{station.slug}/")
    assert page.status_code == 200
    assert b"js/station.js" in page.content and b"<kbd>P</kbd>" in page.content


def test_signing_in_with_a_password_leads_to_the_stations(make_station, client):
    make_station(level="assisted")
    person("ines")
    response = client.post("/accounts/login/", {"username": "ines", "password": "pw"}, follow=True)
    assert response.redirect_chain == [("/", 302), ("/stations/", 302)]
    assert b"screens-1" in response.content
