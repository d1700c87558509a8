"""The human queue: claims (oldest first, never twice, expiring), skip, and the station pages."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from inspection.models import Prediction, Unit
from inspection.roles import LABELER
from inspection.services.decisions import DecisionConflict, decision_record
from inspection.services.queue import (
    UnitUnavailable,
    inspector_shift_stats,
    queue_stats,
    unit_claim,
    unit_claim_next,
    unit_claim_release,
)
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
    assert b"js/station.js" in page.content and b'data-action="pass"' in page.content


def test_signing_in_with_a_password_leads_to_the_stations(make_station, client):
    make_station(level="assisted")
    person("ines")
    response = client.post("/accounts/login/", {"username": "ines", "password": "pw"}, follow=True)
    assert response.redirect_chain == [("/", 302), ("/stations/", 302)]
    assert b"screens-1" in response.content


# -- going back to a skipped unit ----------------------------------------------------------------------


def test_an_inspector_goes_back_to_a_skipped_unit_unless_it_was_taken_or_decided(make_station, device_client):
    station = make_station(level="assisted")
    first, second = pending_units(station, device_client, 2)
    ines, omar = person("ines"), person("omar")
    # ines skips the first unit and takes it back while it is still free
    unit_claim_release(unit=unit_claim_next(station=station, user=ines), user=ines)
    assert unit_claim(unit=Unit.objects.get(pk=first), user=ines).claimed_by == ines
    assert unit_claim(unit=Unit.objects.get(pk=first), user=ines).id == first  # her own: again
    # once omar holds a unit, ines is told who does, and his claim stays
    taken = unit_claim_next(station=station, user=omar)
    assert taken.id == second
    with pytest.raises(UnitUnavailable, match="SN-1 is being judged by omar"):
        unit_claim(unit=Unit.objects.get(pk=second), user=ines)
    assert Unit.objects.get(pk=second).claimed_by == omar
    # a unit decided meanwhile is not claimed
    decision_record(unit=Unit.objects.get(pk=second), user=omar, verdict="pass")
    with pytest.raises(UnitUnavailable, match="SN-1 was decided meanwhile"):
        unit_claim(unit=Unit.objects.get(pk=second), user=ines)
    assert Unit.objects.get(pk=second).claimed_by is None


def test_the_claim_unit_endpoint_answers_the_unit_or_why_not(make_station, device_client):
    station = make_station(level="assisted")
    first, second = pending_units(station, device_client, 2)
    ines, omar = APIClient(), APIClient()
    ines.force_authenticate(person("ines"))
    omar.force_authenticate(person("omar"))
    body = ines.post(f"/api/v1/units/{first}/claim/")
    assert body.status_code == 200
    assert body.json()["id"] == first
    assert body.json()["why"] == "AI-assisted: the model's highlights are shown"
    assert "model" in body.json() and body.json()["claim_expires_at"] is not None
    refused = omar.post(f"/api/v1/units/{first}/claim/")
    assert refused.status_code == 409 and refused.json() == {"detail": "SN-0 is being judged by ines"}
    assert omar.post("/api/v1/units/999999/claim/").status_code == 404
    labeler = APIClient()
    labeler.force_authenticate(person("lena", LABELER))
    assert labeler.post(f"/api/v1/units/{second}/claim/").status_code == 403
    assert Unit.objects.get(pk=second).claimed_by is None


def claim_at_once(unit_id: int, inspectors: list) -> list[str]:
    """Each inspector claims the unit at the same moment: "claimed" or the refusal's words."""
    barrier = threading.Barrier(len(inspectors))
    outcomes = [""] * len(inspectors)

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            unit_claim(unit=Unit.objects.get(pk=unit_id), user=inspectors[index])
            outcomes[index] = "claimed"
        except UnitUnavailable as refusal:
            outcomes[index] = str(refusal)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(inspectors))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_inspectors_going_back_to_the_same_unit_at_once_one_gets_it(make_station, device_client):
    station = make_station(level="assisted")
    (only,) = pending_units(station, device_client, 1)
    inspectors = [person("ines"), person("omar")]
    for _ in range(5):  # several rounds: each time exactly one of the two wins
        Unit.objects.filter(pk=only).update(claimed_by=None, claim_expires_at=None)
        outcomes = claim_at_once(only, inspectors)
        assert outcomes.count("claimed") == 1, outcomes
        winner = outcomes.index("claimed")
        loser = inspectors[1 - winner]
        assert outcomes[1 - winner] in {
            f"SN-0 is being judged by {inspectors[winner].username}",
            "SN-0 was just taken by another inspector",
        }, outcomes
        assert Unit.objects.get(pk=only).claimed_by == inspectors[winner] != loser


# -- why a unit is shown -------------------------------------------------------------------------------

ROUTED = {"level": "partial", "target_escape_rate": 0.005, "uncertainty_band": 0.02, "audit_share": 0.0}
FRAME_PROBLEM = "frame check: uniform frame (spread 0.4, at least 3 needed)"
WHY = [
    # (queue reason, blind, the routing snapshot's own figures, the model's confidence, the words)
    ("deferred", False, {"required_confidence": 0.97}, 0.91,
     "Deferred: confidence 0.91 below the 0.97 this station needs"),
    ("deferred", False, {"required_confidence": 1.0}, 0.996,
     "Deferred: confidence 0.996 below the 1.000 this station needs"),
    ("deferred", False, {"required_confidence": None}, 0.91,
     "Deferred: no confidence threshold is certified for this station's target (0.5 % escapes), "
     "so the model decides nothing alone"),
    ("audit", True, {"level": "full", "audit_share": 0.02}, 0.99,
     "Random audit (2 % of full automation's units): judge it blind"),
    ("audit", True, {"level": "full", "audit_share": 0.005}, 0.99,
     "Random audit (0.5 % of full automation's units): judge it blind"),
    ("audit", True, {"level": "partial", "audit_share": 0.05}, 0.99,
     "Random audit (5 % of partial automation's units): judge it blind"),
    ("shadow", True, {"level": "shadow"}, 0.99, "Shadow level: the model's verdict is hidden"),
    ("assisted", False, {"level": "assisted"}, 0.99, "AI-assisted: the model's highlights are shown"),
    ("human", True, {"level": "human"}, None, "Human-only level"),
    ("no_model", True, {"level": "partial"}, None, "No model could decide"),
    ("frame_check", True, {"frame_check": {"problem": "uniform", "message": FRAME_PROBLEM}}, 0.99,
     "Frame check: uniform frame (spread 0.4, at least 3 needed)"),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "blind", "routing", "confidence", "words"), WHY)
def test_the_claim_says_in_words_why_the_unit_is_shown(
    make_station, make_model_version, reason, blind, routing, confidence, words
):
    # given a pending unit routed for `reason`, with the thresholds in force when it arrived
    station = make_station(level=routing.get("level", "partial"))
    unit = Unit.objects.create(
        station=station,
        serial="SN-WHY",
        image="units/why.jpg",
        image_sha256="0" * 64,
        image_width=1920,
        image_height=1080,
        image_format="JPEG",
        received_at=timezone.now(),
        status="pending",
        automation_level=routing.get("level", "partial"),
        queue_reason=reason,
        blind=blind,
        deciding_model=station.champion if confidence is not None else None,
        routing={**ROUTED, **routing, "queue_reason": reason},
    )
    if confidence is not None:
        Prediction.objects.create(
            unit=unit, model_version=station.champion, role="champion", defect_probability=1 - confidence,
            label="ok", confidence=confidence, verdict="pass", latency_ms=1.0,
        )  # fmt: skip
    # when an inspector claims it
    client = APIClient()
    client.force_authenticate(person("ines"))
    body = client.post(f"/api/v1/stations/{station.slug}/claim/", {}, format="json").json()
    # then the claim says why in words; a blind unit's words carry nothing of the model's output
    assert body["why"] == words
    if blind:
        assert "model" not in body and f"{confidence}" not in body["why"]
