"""The live events are what the OpenAPI schema says: events a subscriber really receives over
`/ws/stations/{slug}/events/` and `/ws/dashboard/` (real services, the Redis channel layer, the
ASGI stack) validated against each route's messages in `x-websockets`, closed to keys the schema
does not name. Which event types exist is checked from the code in tests/config/test_api_schema.py;
the training events in tests/workers/test_training_events_schema.py."""

from __future__ import annotations

import pytest

from inspection.enums import AutomationLevel
from inspection.models import Unit
from inspection.services.decisions import HumanRegion, decision_record
from inspection.supervision.models import AlarmKind
from inspection.supervision.services import AlarmFinding, alarm_acknowledge, alarms_raise
from tests.inspection.camera import encoded, stain_unit
from tests.inspection.factories import person, posted_unit, upload
from tests.inspection.test_realtime import events_during, events_path, key_headers, new_key, session_headers
from tests.openapi import openapi_document, schema_errors

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]

CAMERA = {"width": 1280, "height": 720}


def messages_schema(document: dict, route: str) -> dict:
    return document["x-websockets"][route]["messages"]


def post_frame(client, data: bytes, serial: str) -> dict:
    response = client.post("/api/v1/units/", {"serial": serial, "image": upload(data)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def assert_documented(document: dict, route: str, events: list[dict]) -> None:
    schema = messages_schema(document, route)
    for event in events:
        assert schema_errors(document, schema, event) == [], event


def test_a_units_events_with_the_models_regions_are_documented(
    media_root, redis_client, make_station, make_model_version, stain_bundle, device_client
):
    """The model that finds the stain (tests/inspection/camera.py), so the events carry its regions."""
    champion = make_model_version("stain", 1, threshold=0.0, bundle=stain_bundle)
    station = make_station(slug="screens-1", level=AutomationLevel.FULL, champion=champion)
    client = device_client(station)
    document = openapi_document()

    def post_three() -> list[dict]:
        frames = [encoded(stain_unit(seed).frame(1280, 720), "JPEG", quality=92) for seed in (1, 2, 3)]
        return [post_frame(client, frame, f"SN-{n}") for n, frame in enumerate(frames)]

    headers = key_headers(new_key(station))
    posted, events = events_during(events_path(station.slug), headers, post_three, count=6)

    assert [event["type"] for event in events] == ["unit.received", "unit.decided"] * 3
    assert [event["unit"] for event in events[1::2]] == posted
    regions = [region for event in events for region in event["unit"]["regions"]]
    assert regions and all(region["x"] + region["width"] <= 1280 and "score" in region for region in regions)
    assert_documented(document, "/ws/stations/{slug}/events/", events)


def test_a_persons_decision_with_regions_is_documented(media_root, redis_client, make_station, device_client):
    station = make_station(slug="screens-1", level=AutomationLevel.ASSISTED)
    client = device_client(station)
    inspector = person()
    document = openapi_document()

    def post_then_decide() -> list[dict]:
        posted = [posted_unit(client, f"SN-{n}", seed=n, **CAMERA) for n in range(2)]
        first, second = (Unit.objects.get(pk=unit["id"]) for unit in posted)
        scratch = HumanRegion(x=912.0, y=188.5, width=140.0, height=6.0, label="scratch")
        decision_record(unit=first, user=inspector, verdict="fail", regions=[scratch])
        decision_record(unit=second, user=inspector, verdict="pass")
        return posted

    posted, events = events_during(
        events_path(station.slug), key_headers(new_key(station)), post_then_decide, count=4
    )

    assert [event["type"] for event in events] == ["unit.received"] * 2 + ["unit.decided"] * 2
    assert events[2]["unit"]["regions"] == [
        {"x": 912.0, "y": 188.5, "width": 140.0, "height": 6.0, "label": "scratch"}
    ]
    assert_documented(document, "/ws/stations/{slug}/events/", events)


def test_alarm_and_level_events_are_documented(redis_client, make_station):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    supervisor = person("sam", role="supervisor")
    document = openapi_document()

    def raise_see_again_acknowledge():
        (alarm,) = alarms_raise(
            station=station, findings=[AlarmFinding(AlarmKind.INPUT, "brightness shifted (p = 1e-06)")]
        ).raised
        alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "brightness still shifted")])
        alarm_acknowledge(alarm=alarm, user=supervisor)

    _, events = events_during(
        events_path(station.slug), session_headers(supervisor), raise_see_again_acknowledge, count=4
    )

    assert [event["type"] for event in events] == [
        "alarm.raised",
        "station.changed",
        "alarm.changed",
        "alarm.changed",
    ]
    assert events[1]["changes"] == {"automation_level": "partial"}
    assert events[3]["alarm"]["acknowledged_by"] == "sam"
    assert_documented(document, "/ws/stations/{slug}/events/", events)


def test_the_dashboards_notices_are_documented(media_root, redis_client, make_station, device_client):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    client = device_client(station)
    headers = session_headers(person("sam", role="supervisor"))
    document = openapi_document()

    def post_then_alarm():
        posted_unit(client, "SN-1", **CAMERA)
        alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.CAMERA, "frames too dark")])

    _, notices = events_during("/ws/dashboard/", headers, post_then_alarm, count=2)

    assert [notice["kinds"] for notice in notices] == [
        ["unit.decided", "unit.received"],
        ["alarm.raised", "station.changed"],
    ]
    assert notices[1]["alarms"][0]["kind"] == "camera_fault"
    assert_documented(document, "/ws/dashboard/", notices)


def test_an_event_unlike_its_schema_is_caught(redis_client):
    """The check bites: a type no schema names, a unit missing a key, an extra key."""
    document = openapi_document()
    schema = messages_schema(document, "/ws/stations/{slug}/events/")

    assert schema_errors(document, schema, {"type": "unit.vanished", "unit": {}}) != []
    assert schema_errors(document, schema, {"type": "station.changed", "station": "a", "alarm": 1}) != []
    extra = {"type": "station.changed", "station": "a", "changes": {"automation_level": "partial"}}
    assert schema_errors(document, schema, {**extra, "alarm": 1}) == []
    assert schema_errors(document, schema, {**extra, "alarm": 1, "why": "drift"}) != []
