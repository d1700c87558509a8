"""The station's live feed over WebSocket, through the real ASGI stack and the Redis channel layer.

Events are published after commit, so these tests commit (`transactional_db`). pytest-asyncio is
not a dependency: each test runs one coroutine with `async_to_sync`, and the sync work it needs
(posting through the REST API, recording a decision) runs through `sync_to_async` on the test's
own thread and database connection.

`channels.testing` cannot be imported without daphne (its package imports the live-server test
case), which this project does not install; `WebsocketClient` is the few lines of its
`WebsocketCommunicator` these tests need, on asgiref's `ApplicationCommunicator`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from config.asgi import application
from inspection.enums import AutomationLevel
from inspection.models import Unit
from inspection.services.decisions import decision_record
from inspection.services.stations import device_key_create
from tests.inspection.factories import person, posted_unit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]

EVENT_TIMEOUT_SECONDS = 10
# Longer than channels_redis's 5 s blocking read, which a 5 s socket timeout used to cut.
IDLE_SECONDS = 6
T = TypeVar("T")


class WebsocketClient(ApplicationCommunicator):
    """A WebSocket handshake and frames, spoken to the ASGI application directly."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": headers,
            "subprotocols": [],
        }
        super().__init__(application, scope)

    async def connect(self) -> bool:
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(EVENT_TIMEOUT_SECONDS)
        return response["type"] == "websocket.accept"

    async def receive_json_from(self) -> dict:
        response = await self.receive_output(EVENT_TIMEOUT_SECONDS)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(EVENT_TIMEOUT_SECONDS)  # cancels the application if it has not stopped by then
        assert not self.future.cancelled(), "the consumer did not stop when its client left"


def events_path(slug: str) -> str:
    return f"/ws/stations/{slug}/events/"


def key_headers(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Api-Key {key}".encode())]


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_id}".encode())]


def new_key(station) -> str:
    return device_key_create(station=station, name="line computer")[1]


def close_code(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """The code the server closes a refused handshake with (it accepts, then closes)."""

    async def scenario() -> int:
        websocket = WebsocketClient(path, headers=headers)
        assert await websocket.connect()
        message = await websocket.receive_output(timeout=EVENT_TIMEOUT_SECONDS)
        assert message["type"] == "websocket.close"
        await websocket.disconnect()  # as a server does once the application closed
        return message["code"]

    return async_to_sync(scenario)()


def events_during(
    path: str, headers: list[tuple[bytes, bytes]], action: Callable[[], T], *, count: int
) -> tuple[T, list[dict]]:
    """Subscribe, run `action` (sync, on the test's thread and connection), then take the first
    `count` events the server pushes."""

    async def scenario() -> tuple[T, list[dict]]:
        websocket = WebsocketClient(path, headers)
        assert await websocket.connect()
        result = await sync_to_async(action)()
        events = [await websocket.receive_json_from() for _ in range(count)]
        await websocket.disconnect()
        return result, events

    return async_to_sync(scenario)()


def test_device_receives_unit_received_and_decided_at_full_automation(
    media_root, redis_client, make_station, device_client
):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    client = device_client(station)

    posted, events = events_during(
        events_path(station.slug), key_headers(new_key(station)), lambda: posted_unit(client, "SN-1"), count=2
    )

    assert [event["type"] for event in events] == ["unit.received", "unit.decided"]
    assert events[0]["unit"] == events[1]["unit"] == posted
    assert posted["serial"] == "SN-1" and posted["decided_by"] == "model"


def test_pending_unit_decided_by_a_person_is_pushed_as_unit_decided(
    media_root, redis_client, make_station, device_client
):
    station = make_station(slug="screens-1", level=AutomationLevel.ASSISTED)
    client = device_client(station)
    inspector = person()

    def post_then_decide() -> dict:
        posted = posted_unit(client, "SN-2")
        unit = Unit.objects.get(pk=posted["id"])
        decision_record(unit=unit, user=inspector, verdict="fail", defect_classes=["crack"])
        return posted

    posted, (received, decided) = events_during(
        events_path(station.slug), key_headers(new_key(station)), post_then_decide, count=2
    )

    assert posted["status"] == "pending"
    assert received == {"type": "unit.received", "unit": posted}
    assert decided["type"] == "unit.decided"
    assert decided["unit"]["id"] == posted["id"]
    assert decided["unit"]["status"] == "decided"
    assert decided["unit"]["decision"] == "fail"
    assert decided["unit"]["decided_by"] == "human"


def test_signed_in_inspector_receives_events(media_root, redis_client, make_station, device_client):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    client = device_client(station)

    posted, (event,) = events_during(
        events_path(station.slug), session_headers(person()), lambda: posted_unit(client, "SN-3"), count=1
    )

    assert event == {"type": "unit.received", "unit": posted}


def test_events_of_another_station_are_not_forwarded(media_root, redis_client, make_station, device_client):
    watched = make_station(slug="screens-1", level=AutomationLevel.FULL)
    other = make_station(slug="screens-2", level=AutomationLevel.FULL, champion=watched.champion)
    other_client, watched_client = device_client(other), device_client(watched)

    def post_both() -> None:
        posted_unit(other_client, "OTHER-1")
        posted_unit(watched_client, "WATCHED-1")

    _, (first,) = events_during(events_path(watched.slug), key_headers(new_key(watched)), post_both, count=1)

    assert first["unit"]["serial"] == "WATCHED-1"


def test_subscriber_idle_longer_than_the_layers_blocking_read_still_receives_events(
    media_root, redis_client, make_station, device_client
):
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    client = device_client(station)

    def idle_then_post() -> dict:
        time.sleep(IDLE_SECONDS)
        return posted_unit(client, "SN-IDLE")

    posted, (event,) = events_during(
        events_path(station.slug), key_headers(new_key(station)), idle_then_post, count=1
    )

    assert event == {"type": "unit.received", "unit": posted}


def test_key_of_another_station_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)
    other = make_station(slug="screens-2", champion=None)

    code = close_code(events_path(station.slug), key_headers(new_key(other)))

    assert code == 4403


def test_no_credentials_are_refused(make_station):
    station = make_station(slug="screens-1", champion=None)

    code = close_code(events_path(station.slug), headers=[])

    assert code == 4401


def test_wrong_or_revoked_key_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)
    revoked, revoked_key = device_key_create(station=station, name="old line computer")
    revoked.revoked = True
    revoked.save()

    wrong = close_code(events_path(station.slug), key_headers(new_key(station) + "x"))
    revoked_code = close_code(events_path(station.slug), key_headers(revoked_key))

    assert wrong == revoked_code == 4401


def test_unknown_station_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)

    code = close_code(events_path("no-such-station"), key_headers(new_key(station)))
    anonymous = close_code(events_path("no-such-station"), headers=[])

    assert code == 4404
    assert anonymous == 4401  # strangers cannot probe station names


def test_signed_in_user_without_the_permission_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)
    user = get_user_model().objects.create_user(username="visitor", password="unused-password")

    code = close_code(events_path(station.slug), session_headers(user))

    assert code == 4403


def test_inactive_user_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)
    user = person()
    headers = session_headers(user)
    user.is_active = False
    user.save()

    code = close_code(events_path(station.slug), headers)

    assert code == 4401


def test_a_signed_in_browser_on_another_sites_page_is_refused(make_station):
    station = make_station(slug="screens-1", champion=None)
    headers = session_headers(person())
    site = [(b"host", b"loupe.factory.local")]

    foreign = close_code(events_path(station.slug), headers + site + [(b"origin", b"https://evil.example")])

    assert foreign == 4403


def test_a_receive_cancelled_in_one_event_loop_does_not_break_the_next_loop(redis_client, monkeypatch):
    """The cause of "bound to a different event loop" under load, and the `channel_layer` fixture's
    cure: a consumer that leaves while its receive waits for the previous message's backup clean-up
    (slow on a loaded machine) leaves a lock behind, bound to its loop; the next loop that waits on
    it fails. A new layer per test has none."""
    import asyncio

    from tests.conftest import channel_layer_renew

    def slow_clean_up(layer):
        original = layer._clean_receive_backup

        async def slow(index, channel):
            await asyncio.sleep(0.2)
            await original(index, channel)

        monkeypatch.setattr(layer, "_clean_receive_backup", slow)

    async def leave_while_waiting(layer) -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "first"})
        await layer.receive(channel)
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting

    async def two_messages(layer) -> list[str]:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "one"})
        await layer.send(channel, {"type": "two"})
        return [(await layer.receive(channel))["type"] for _ in range(2)]

    shared = channel_layer_renew()
    slow_clean_up(shared)
    asyncio.run(leave_while_waiting(shared))
    with pytest.raises(RuntimeError, match="bound to a different event loop"):
        asyncio.run(two_messages(shared))

    fresh = channel_layer_renew()
    slow_clean_up(fresh)
    assert asyncio.run(two_messages(fresh)) == ["one", "two"]
    channel_layer_renew()
