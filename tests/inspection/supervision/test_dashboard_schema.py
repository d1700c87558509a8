"""The dashboard's answers are what the OpenAPI schema says: real responses of
`/api/v1/dashboard/` and `/api/v1/dashboard/stations/{slug}/`, at every period, for a busy station
(models in play, alarms, drift, latency) and an idle one (every nullable figure null), validated
against their response schemas, closed to keys the schema does not name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.enums import AutomationLevel, DecisionReason, RolloutMode
from inspection.services.stations import station_create
from inspection.supervision import services as alarm_services
from inspection.supervision.dashboard.latency import latency_flush, latency_record
from inspection.supervision.dashboard.periods import PERIODS
from inspection.supervision.models import AlarmKind, DriftCheck
from inspection.supervision.services import AlarmFinding, alarm_acknowledge, alarms_raise
from tests.inspection.factories import person, signed_in
from tests.inspection.supervision.dashboard_rows import automatic, decide, judged_blind, model_version, unit
from tests.openapi import openapi_document, response_schema, schema_errors

pytestmark = pytest.mark.django_db

OVERVIEW = "/api/v1/dashboard/"
STATION = "/api/v1/dashboard/stations/{slug}/"


@pytest.fixture(autouse=True)
def quiet_events(monkeypatch):
    """The alarm services' events are checked in tests/inspection/test_events_schema.py."""
    monkeypatch.setattr(alarm_services, "station_event_publish", lambda **kwargs: None)


@pytest.fixture
def stations(redis_client):
    """A busy station at full automation with a canary challenger and an earlier version, audits,
    a waiting unit, a drift check, line latency and two alarms (one acknowledged); and an idle
    station with no model and nothing counted."""
    now = timezone.now()
    earlier, champion, challenger = model_version("m", 1), model_version("m", 2), model_version("m", 3)
    busy = station_create(slug="line-a", level=AutomationLevel.FULL, champion=champion)
    busy.challenger, busy.rollout_mode, busy.canary_share = challenger, RolloutMode.CANARY, 0.25
    busy.save()
    station_create(slug="line-idle", level=AutomationLevel.HUMAN, champion=None)
    ines, sam = person("ines"), person("sam", role="supervisor")
    automatic(busy, earlier, at=now - timedelta(minutes=50))
    for minutes in (3, 8, 13):
        automatic(busy, champion, at=now - timedelta(minutes=minutes))
    automatic(busy, challenger, at=now - timedelta(minutes=4), verdict="fail")
    judged_blind(
        busy,
        champion,
        ines,
        at=now - timedelta(minutes=20),
        reason="audit",
        model_verdict="pass",
        human_verdict="fail",
        decided_at=now - timedelta(minutes=19),
    )
    deferred = unit(busy, at=now - timedelta(minutes=6), queue_reason="deferred", model=champion)
    decide(deferred, verdict="pass", at=now - timedelta(minutes=5), reason=DecisionReason.DEFERRED, user=ines)
    unit(busy, at=now - timedelta(minutes=2), queue_reason="deferred", model=champion, pending=True)
    check = DriftCheck.objects.create(
        station=busy,
        model_version=champion,
        first_unit_id=1,
        last_unit_id=200,
        window_size=200,
        significance=0.01,
        tests=[
            {"kind": "input_drift", "name": "brightness", "adjusted_p_value": 0.0004, "shifted": True},
            {"kind": "score_shift", "name": "confidence", "adjusted_p_value": None, "shifted": False},
        ],
        shifted=True,
    )
    DriftCheck.objects.filter(pk=check.pk).update(checked_at=now - timedelta(minutes=1))
    for milliseconds in (35.0, 42.0, 51.0, 380.0):
        latency_record(station_slug="line-a", milliseconds=milliseconds, at=now.timestamp() - 90)
    latency_flush()
    raised = alarms_raise(
        station=busy,
        findings=[
            AlarmFinding(AlarmKind.INPUT, "brightness shifted (p = 0.0004)"),
            AlarmFinding(AlarmKind.AGREEMENT, "audit agreement 0 of 1"),
        ],
        model_version=champion,
        drift_check=check,
    ).raised
    alarm_acknowledge(alarm=raised[0], user=sam)
    return signed_in(sam)


@pytest.mark.parametrize("period", list(PERIODS))
def test_the_overview_is_what_the_schema_says(stations, period):
    client = stations
    document = openapi_document(client)

    response = client.get(OVERVIEW, {"period": period})

    assert response.status_code == 200, response.content
    body = response.json()
    assert schema_errors(document, response_schema(document, OVERVIEW), body) == []
    # the check saw the whole of it: both stations, the alarms, the models, the latency
    assert [row["slug"] for row in body["stations"]] == ["line-a", "line-idle"]
    assert {alarm["status"] for alarm in body["alarms"]} == {"open", "acknowledged"}
    assert [m["role"] for m in body["stations"][0]["models"]] == ["champion", "challenger", "earlier"]
    assert body["stations"][1]["figures"]["agreement"]["rate"] is None
    assert body["overall"]["latency"]["count"] == 4


@pytest.mark.parametrize("slug", ["line-a", "line-idle"])
@pytest.mark.parametrize("period", list(PERIODS))
def test_a_stations_report_is_what_the_schema_says(stations, slug, period):
    client = stations
    document = openapi_document(client)

    response = client.get(STATION.format(slug=slug), {"period": period})

    assert response.status_code == 200, response.content
    body = response.json()
    assert schema_errors(document, response_schema(document, STATION), body) == []
    assert len(body["series"]["t"]) == PERIODS[period].bucket_count
    if slug == "line-a":
        assert body["series"]["drift"]["min_adjusted_p"] == [0.0004]
        assert body["models"][1]["rollout"] == "canary"
    else:
        assert body["models"] == [] and body["figures"]["queue"]["oldest_pending_seconds"] is None


def test_an_answer_unlike_the_schema_is_caught(stations):
    """The check bites: a key the schema does not name, a missing one, a wrong type."""
    client = stations
    document = openapi_document(client)
    schema = response_schema(document, STATION)
    body = client.get(STATION.format(slug="line-a")).json()

    body["figures"]["escape"]["surprise"] = 1
    del body["station"]["audit_share"]
    body["series"]["received"][0] = "many"

    errors = schema_errors(document, schema, body)
    assert len(errors) == 3, errors
    assert any(error.startswith("figures/escape:") and "surprise" in error for error in errors)
    assert any(error.startswith("station:") and "audit_share" in error for error in errors)
    assert any(error.startswith("series/received/0:") for error in errors)


def test_the_alarm_actions_answer_the_alarm_the_schema_describes(stations):
    client = stations
    document = openapi_document(client)
    alarm = client.get(OVERVIEW).json()["alarms"][0]
    assert alarm["status"] == "open"

    response = client.post(f"/api/v1/alarms/{alarm['id']}/clear/", {"note": "lamp replaced"})

    assert response.status_code == 200, response.content
    path = "/api/v1/alarms/{id}/clear/"
    assert schema_errors(document, response_schema(document, path, "post"), response.json()) == []
    assert response.json()["note"] == "lamp replaced" and response.json()["cleared_by"] == "sam"


def test_the_refusals_are_what_the_schema_says(stations):
    """A bad period, an unknown station, a person without the permission, a second clearing and
    a note too long: each answer is the error body its status documents."""
    supervisor = stations
    inspector = signed_in(person("ines-2"))
    document = openapi_document(supervisor)
    alarm_id = supervisor.get(OVERVIEW).json()["alarms"][0]["id"]
    clear, acknowledge = f"/api/v1/alarms/{alarm_id}/clear/", f"/api/v1/alarms/{alarm_id}/acknowledge/"
    assert supervisor.post(clear).status_code == 200

    answers = [
        (OVERVIEW, "get", supervisor.get(OVERVIEW, {"period": "month"})),
        (STATION, "get", supervisor.get(STATION.format(slug="line-a"), {"period": "month"})),
        (STATION, "get", supervisor.get(STATION.format(slug="no-such-line"))),
        (OVERVIEW, "get", inspector.get(OVERVIEW)),
        ("/api/v1/alarms/{id}/clear/", "post", supervisor.post(clear)),
        ("/api/v1/alarms/{id}/acknowledge/", "post", supervisor.post(acknowledge)),
        ("/api/v1/alarms/{id}/clear/", "post", supervisor.post(clear, {"note": "x" * 501})),
    ]

    assert [response.status_code for _, _, response in answers] == [400, 400, 404, 403, 409, 409, 400]
    for path, method, response in answers:
        schema = response_schema(document, path, method, str(response.status_code))
        assert schema_errors(document, schema, response.json()) == [], (path, response.json())
    assert "hour, day, week" in answers[0][2].json()["period"][0]
    assert "already cleared" in answers[4][2].json()["detail"]
