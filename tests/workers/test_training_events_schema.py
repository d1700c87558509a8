"""A training's live events are what the OpenAPI schema says: a real toy retraining (queued, run
in this process, gated) followed over the station's WebSocket by a supervisor's page, every
`training.status` and `training.progress` validated against the route's messages."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from inspection.models import Station
from tests.inspection.factories import person
from tests.inspection.test_realtime import WebsocketClient, events_path, session_headers
from tests.openapi import openapi_document, schema_errors
from workers.models import ACTIVE_TRAINING_STATUSES, TrainingJob, TrainingTrigger
from workers.retraining import training_job_request, training_job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]

MAX_EVENTS = 500


def training_followed(station: Station, supervisor) -> tuple[TrainingJob, list[dict]]:
    """Ask for a retraining and run it while subscribed; the events up to the job's last status."""

    def request_and_run() -> TrainingJob:
        job, created = training_job_request(station=station, trigger=TrainingTrigger.ADMIN, user=supervisor)
        assert created
        return training_job_run(job=job)

    headers = session_headers(supervisor)

    async def scenario() -> tuple[TrainingJob, list[dict]]:
        websocket = WebsocketClient(events_path(station.slug), headers)
        assert await websocket.connect()
        job = await sync_to_async(request_and_run)()
        events: list[dict] = []
        while len(events) < MAX_EVENTS:
            event = await websocket.receive_json_from()
            events.append(event)
            if event["type"] == "training.status" and event["job"]["status"] not in ACTIVE_TRAINING_STATUSES:
                break
        await websocket.disconnect()
        return job, events

    return async_to_sync(scenario)()


def test_a_trainings_events_are_documented(tiny_retraining, labelled_station):
    station = labelled_station(slug="line-a", units=36, gate_auroc_margin=1.0)
    supervisor = person("sam", role="supervisor")
    document = openapi_document()

    job, events = training_followed(station, supervisor)

    statuses = [event["job"]["status"] for event in events if event["type"] == "training.status"]
    assert statuses[0] == "queued" and statuses[-1] == job.status == "shadow"
    assert any(event["type"] == "training.progress" for event in events)
    last = events[-1]["job"]
    assert last["requested_by"] == "sam" and last["passed"] is True and last["comparison"]
    schema = document["x-websockets"]["/ws/stations/{slug}/events/"]["messages"]
    for event in events:
        assert schema_errors(document, schema, event) == [], event
