"""The publisher of station events (`inspection.events`), on the real Redis channel layer: events
sent in batches (one group message per station per batch), each exactly once and in each
station's order, the long-polls woken (not for a unit decided as it arrived), the dashboards told
at most once a second per station (an alarm at once), and a lone event sent at once.

To make a batch certain without timing anything, a test holds the publisher inside a send (its
channel layer lookup waits on a gate) while threads queue their events behind it."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from channels.layers import get_channel_layer

from inspection import events
from inspection.events import (
    PUBLISH_BATCH,
    STATION_ACTIVITY,
    SUPERVISION_GROUP,
    UNIT_DECIDED,
    UNIT_RECEIVED,
    station_event_publish,
    station_events_flush,
    station_group,
    unit_channel,
)

pytestmark = pytest.mark.usefixtures("channel_layer")

STATIONS = ("screens-1", "screens-2")
THREADS = 4
UNITS_PER_THREAD = 25  # each published as received + decided, half to each station
EVENTS_PER_STATION = THREADS * UNITS_PER_THREAD
WAIT_SECONDS = 10
END = "test.end"


def unit_events(thread: int, sequence: int) -> tuple[str, list[dict]]:
    """The station and events of one unit as the line API publishes them."""
    unit = {"id": thread * 1000 + sequence, "thread": thread}
    return STATIONS[(thread + sequence) % 2], [
        {"type": kind, "unit": unit} for kind in (UNIT_RECEIVED, UNIT_DECIDED)
    ]


def publish_from_threads() -> dict[str, list[dict]]:
    """Each thread publishes its units, alternating stations; the events, per station, in the
    order each thread published them (threads interleave in no set order)."""
    published: dict[str, list[dict]] = {slug: [] for slug in STATIONS}
    lock = threading.Lock()

    def publish(thread: int) -> None:
        for sequence in range(UNITS_PER_THREAD):
            slug, unit = unit_events(thread, sequence)
            with lock:  # the record's order, not the publisher's: each thread's own order is what counts
                published[slug].extend(unit)
            station_event_publish(station_slug=slug, events=unit)

    threads = [threading.Thread(target=publish, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return published


@pytest.fixture
def publisher_held(monkeypatch) -> Iterator[Callable[[], threading.Event]]:
    """`hold()` sends a warm-up event and returns once the publisher is stuck sending it: what is
    queued until the test ends (or `release` is set) is drained in as few batches as fit."""
    reached, release = threading.Event(), threading.Event()
    real_layer = events.get_channel_layer

    def held_layer():
        reached.set()
        release.wait(WAIT_SECONDS)
        return real_layer()

    def hold() -> threading.Event:
        monkeypatch.setattr(events, "get_channel_layer", held_layer)
        station_event_publish(station_slug="warm-up", events=[{"type": "warm.up"}])
        assert reached.wait(WAIT_SECONDS), "the publisher did not pick the warm-up event"
        return release

    try:
        yield hold
    finally:
        release.set()


async def subscribed(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def messages_until_end(layer, channel: str) -> list[dict]:
    """What the channel received before the test's own end marker (sent after a flush, so every
    message the publisher sent is ahead of it): exactly what arrived, none missed by a timeout."""
    await layer.send(channel, {"type": END})
    received = []
    while (message := await asyncio.wait_for(layer.receive(channel), WAIT_SECONDS))["type"] != END:
        received.append(message)
    return received


def woken_units(pubsub: redis.client.PubSub, expected: int) -> list[int]:
    woken: list[int] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while len(woken) < expected and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            woken.append(int(message["channel"].decode().rsplit(":", 1)[1]))
    return woken


def test_events_from_many_threads_arrive_once_in_order_batched_per_station(publisher_held, redis_client):
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(unit_channel(0).rsplit(":", 1)[0] + ":*")

    async def scenario() -> tuple[dict[str, list[dict]], dict[str, list[dict]], list[dict]]:
        layer = get_channel_layer()
        channels = {slug: await subscribed(layer, station_group(slug)) for slug in STATIONS}
        dashboard = await subscribed(layer, SUPERVISION_GROUP)

        def publish_held_then_flush() -> dict[str, list[dict]]:
            release = publisher_held()
            published = publish_from_threads()
            release.set()
            assert station_events_flush(WAIT_SECONDS)
            return published

        published = await asyncio.to_thread(publish_held_then_flush)
        received = {slug: await messages_until_end(layer, channel) for slug, channel in channels.items()}
        return published, received, await messages_until_end(layer, dashboard)

    published, received, notices = asyncio.run(scenario())

    for slug in STATIONS:
        messages = received[slug]
        delivered = [event for message in messages for event in message["events"]]
        assert {message["type"] for message in messages} == {"station.event"}
        assert len(published[slug]) == EVENTS_PER_STATION
        for thread in range(THREADS):  # every event once, in the order its thread published it
            assert [e for e in delivered if e["unit"]["thread"] == thread] == [
                e for e in published[slug] if e["unit"]["thread"] == thread
            ]
        assert len(delivered) == len(published[slug])
        # all queued before the publisher drained them: as few group messages as batches
        assert len(messages) <= math.ceil(THREADS * UNITS_PER_THREAD / PUBLISH_BATCH) < EVENTS_PER_STATION
        # and the dashboards hear of the station at most once per batch, of every kind sent
        told = [n for n in notices if n["station"] == slug]
        assert 1 <= len(told) <= len(messages)
        assert {n["type"] for n in told} == {STATION_ACTIVITY}
        assert set().union(*(n["kinds"] for n in told)) == {UNIT_RECEIVED, UNIT_DECIDED}
    decided = [e["unit"]["id"] for slug in STATIONS for e in published[slug] if e["type"] == UNIT_DECIDED]
    assert sorted(woken_units(pubsub, len(decided))) == sorted(decided)
    pubsub.close()


def test_a_lone_event_when_idle_is_sent_without_a_flush(redis_client):
    event = {"type": UNIT_RECEIVED, "unit": {"id": 7, "thread": 0}}

    async def scenario() -> dict:
        layer = get_channel_layer()
        channel = await subscribed(layer, station_group(STATIONS[0]))
        station_event_publish(station_slug=STATIONS[0], events=[event])
        return await asyncio.wait_for(layer.receive(channel), WAIT_SECONDS)

    message = asyncio.run(scenario())

    assert message == {"type": "station.event", "events": [event]}


def test_a_redis_outage_is_logged_and_the_publisher_goes_on(redis_client, monkeypatch, caplog):
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    decided = {"type": UNIT_DECIDED, "unit": {"id": 8, "thread": 0}}
    later = {"type": UNIT_RECEIVED, "unit": {"id": 9, "thread": 0}}

    async def scenario() -> list[dict]:
        layer = get_channel_layer()
        channel = await subscribed(layer, station_group(STATIONS[0]))

        def publish_during_an_outage_then_after() -> None:
            with monkeypatch.context() as outage:
                outage.setattr(events, "redis_client", lambda: unreachable)
                station_event_publish(station_slug=STATIONS[0], events=[decided])
                assert station_events_flush(WAIT_SECONDS)
            station_event_publish(station_slug=STATIONS[0], events=[later])
            assert station_events_flush(WAIT_SECONDS)

        await asyncio.to_thread(publish_during_an_outage_then_after)
        return await messages_until_end(layer, channel)

    messages = asyncio.run(scenario())

    assert [event for message in messages for event in message["events"]] == [decided, later]
    assert "Could not wake long-polls of units [8]" in caplog.text
    unreachable.close()


def test_a_failing_send_does_not_stop_the_publisher(redis_client, monkeypatch, caplog):
    def broken_layer():
        raise RuntimeError("no channel layer")

    with monkeypatch.context() as broken:
        broken.setattr(events, "get_channel_layer", broken_layer)
        station_event_publish(station_slug=STATIONS[0], events=[{"type": UNIT_RECEIVED, "unit": {"id": 10}}])
        assert station_events_flush(WAIT_SECONDS)

    async def scenario() -> dict:
        layer = get_channel_layer()
        channel = await subscribed(layer, station_group(STATIONS[0]))
        station_event_publish(station_slug=STATIONS[0], events=[{"type": UNIT_RECEIVED, "unit": {"id": 11}}])
        return await asyncio.wait_for(layer.receive(channel), WAIT_SECONDS)

    assert "Could not publish a batch of events" in caplog.text
    assert asyncio.run(scenario())["events"] == [{"type": UNIT_RECEIVED, "unit": {"id": 11}}]


def test_the_dashboards_hear_of_a_station_at_most_once_an_interval_and_of_an_alarm_at_once(
    redis_client, monkeypatch
):
    monkeypatch.setattr(events, "ACTIVITY_INTERVAL_SECONDS", 3600.0)
    slug = "screens-notices"
    received = {"type": UNIT_RECEIVED, "unit": {"id": 21, "thread": 0}}
    decided = {"type": UNIT_DECIDED, "unit": {"id": 21, "thread": 0}}
    alarm = {"type": "alarm.raised", "alarm": {"id": 5, "kind": "drift"}}

    async def scenario() -> tuple[dict, list[dict], dict, dict]:
        layer = get_channel_layer()
        dashboard = await subscribed(layer, SUPERVISION_GROUP)
        station = await subscribed(layer, station_group(slug))
        station_event_publish(station_slug=slug, events=[received])
        first = await asyncio.wait_for(layer.receive(dashboard), WAIT_SECONDS)
        # within the interval: the station's group hears at once, the dashboards are held
        station_event_publish(station_slug=slug, events=[decided])
        assert (await asyncio.wait_for(layer.receive(station), WAIT_SECONDS))["events"] == [received]
        assert (await asyncio.wait_for(layer.receive(station), WAIT_SECONDS))["events"] == [decided]
        held = await messages_until_end(layer, dashboard)
        # an alarm goes at once, with what was held
        station_event_publish(station_slug=slug, events=[alarm])
        alarmed = await asyncio.wait_for(layer.receive(dashboard), WAIT_SECONDS)
        # and a flush sends whatever is held
        station_event_publish(station_slug=slug, events=[received])
        await asyncio.to_thread(station_events_flush, WAIT_SECONDS)
        flushed = await asyncio.wait_for(layer.receive(dashboard), WAIT_SECONDS)
        return first, held, alarmed, flushed

    first, held, alarmed, flushed = asyncio.run(scenario())

    assert first == {"type": STATION_ACTIVITY, "station": slug, "kinds": [UNIT_RECEIVED], "alarms": []}
    assert held == []
    assert alarmed["kinds"] == sorted([UNIT_DECIDED, "alarm.raised"]) and alarmed["alarms"] == [
        alarm["alarm"]
    ]
    assert flushed["kinds"] == [UNIT_RECEIVED] and flushed["alarms"] == []


def test_a_unit_decided_as_it_arrived_wakes_no_long_poll(redis_client):
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(unit_channel(0).rsplit(":", 1)[0] + ":*")
    as_it_arrived = {"type": UNIT_DECIDED, "unit": {"id": 31, "thread": 0}}
    later = {"type": UNIT_DECIDED, "unit": {"id": 32, "thread": 0}}  # a person's decision
    station_event_publish(station_slug=STATIONS[0], events=[as_it_arrived], wake_long_polls=False)
    assert station_events_flush(WAIT_SECONDS)
    station_event_publish(station_slug=STATIONS[0], events=[later])
    assert station_events_flush(WAIT_SECONDS)
    # the wake-ups go out in order: had the first unit's been sent, it would come before the second's
    assert woken_units(pubsub, 1) == [32]
    pubsub.close()
