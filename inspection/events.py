"""Publishing what happens at a station, after the database has committed it.

One helper, `station_event_publish`, hands events to the process's publisher thread, which
sends them to the station's Channels group (the WebSocket `/ws/stations/<slug>/events/` forwards
them to the line and to browser pages) and, for a decision, wakes the unit's long-polls through
Redis pub/sub. The line's request never waits for Redis: a `group_send` from a request thread costs
a round trip through an event loop (about 4 ms measured), more than the database writes. Events are
notifications; the database is the record, and long-polls re-read it at least every second, so a
process that dies with events still queued loses no decision.

The publisher sends in batches. One group message per event, one PUBLISH per decision and one
dashboard notice per `station_event_publish` cost the web process 13 Redis round trips for a unit
the model decides (a channels_redis `group_send` takes four), measured with a subscriber on the
station's group and one on the supervision group; batched, 3.8 at 100 units/s and 1.25 at 300.
It takes everything queued (up to `PUBLISH_BATCH` items) and sends at most once per
`PUBLISH_INTERVAL_SECONDS`; an event that finds the publisher idle goes out at once. Per station in
a batch: one `station.event` group message with the station's events in order (the consumer
forwards each to the client on its own, as before) and one `station.activity` notice (the event
types, and alarms in full) to the supervision group that the dashboard's WebSocket
`/ws/dashboard/` joins; the batch's long-poll wake-ups go in one pipeline.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

UNIT_RECEIVED = "unit.received"
UNIT_DECIDED = "unit.decided"
STATION_ACTIVITY = "station.activity"
SUPERVISION_GROUP = "supervision"  # every dashboard's WebSocket
PUBLISH_BATCH = 64  # queued items sent together, at most
PUBLISH_INTERVAL_SECONDS = 0.02  # between two sends, at least

_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()


def station_group(station_slug: str) -> str:
    return f"station.{station_slug}"


def station_activity(station_slug: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The supervision group's notice of a batch: which station, what kinds of event, and the
    alarms in full (the dashboard shows them at once; other figures it fetches again)."""
    return {
        "type": STATION_ACTIVITY,
        "station": station_slug,
        "kinds": sorted({event.get("type", "") for event in events}),
        "alarms": [event["alarm"] for event in events if isinstance(event.get("alarm"), dict)],
    }


def unit_channel(unit_id: int) -> str:
    return f"loupe:unit-decided:{unit_id}"


def redis_client() -> redis.Redis:
    """One pooled client per process (and Redis URL) for pub/sub."""
    url = settings.REDIS_URL
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            _redis_clients[url] = client
        return client


def station_event_publish(*, station_slug: str, events: list[dict[str, Any]]) -> None:
    """Queue `events` (JSON-able dicts with a "type") for the station's subscribers, in order.
    Call it from `transaction.on_commit`."""
    _publisher().put(station_slug, events)


def station_events_flush(timeout: float = 5.0) -> bool:
    """Wait until every queued event has been sent (tests, and before a process exits)."""
    return _publisher().flush(timeout)


class _Publisher:
    """A daemon thread with its own event loop that sends queued events in batches, in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="loupe-event-publisher", daemon=True)
        self._thread.start()

    def put(self, station_slug: str, events: list[dict[str, Any]]) -> None:
        self._queue.put((station_slug, events))

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        next_send = 0.0
        while True:
            first = self._queue.get()
            time.sleep(max(0.0, next_send - time.monotonic()))  # what arrives meanwhile joins the batch
            batch = self._take(first)
            by_station: dict[str, list[dict[str, Any]]] = {}
            for item in batch:
                if not isinstance(item, threading.Event):
                    station_slug, events = item
                    by_station.setdefault(station_slug, []).extend(events)
            if by_station:
                try:
                    loop.run_until_complete(self._send(by_station))
                except Exception:  # nothing may stop the publisher; the events are committed
                    logger.exception("Could not publish a batch of events")
                next_send = time.monotonic() + PUBLISH_INTERVAL_SECONDS
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()  # everything queued before it has been sent

    def _take(self, first: Any) -> list[Any]:
        """`first` and what is queued behind it, up to `PUBLISH_BATCH` items."""
        batch = [first]
        while len(batch) < PUBLISH_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    async def _send(self, by_station: dict[str, list[dict[str, Any]]]) -> None:
        layer = get_channel_layer()
        for station_slug, events in by_station.items():
            try:
                await layer.group_send(
                    station_group(station_slug), {"type": "station.event", "events": events}
                )
            except Exception:  # a Redis hiccup must not stop the publisher; the events are committed
                logger.exception("Could not publish %d events for station %s", len(events), station_slug)
        decided = [
            event["unit"]["id"]
            for events in by_station.values()
            for event in events
            if event.get("type") == UNIT_DECIDED
        ]
        if decided:
            try:
                pipeline = redis_client().pipeline(transaction=False)
                for unit_id in decided:
                    pipeline.publish(unit_channel(unit_id), "decided")
                pipeline.execute()
            except redis.RedisError:
                logger.exception("Could not wake long-polls of units %s", decided)
        for station_slug, events in by_station.items():
            try:
                await layer.group_send(SUPERVISION_GROUP, station_activity(station_slug, events))
            except Exception:  # as above: the events are committed, the dashboard refetches later
                logger.exception("Could not tell the dashboards of station %s's activity", station_slug)


def per_process(factory: Callable[[], T], *, at_exit: Callable[[T], object]) -> Callable[[], T]:
    """A getter of one `factory()` per process, made on first use: a forked child (a Celery pool
    process, a web worker) makes its own, since the parent's threads do not survive a fork.
    `at_exit(instance)` runs when the process exits (send what it still holds)."""
    lock = threading.Lock()
    made: dict[str, T | int | None] = {"instance": None, "pid": 0}

    def get() -> T:
        with lock:
            if made["instance"] is None or made["pid"] != os.getpid():
                instance = factory()
                made["instance"], made["pid"] = instance, os.getpid()
                atexit.register(at_exit, instance)
            return made["instance"]

    return get


# The process's publisher; events still queued at exit get two seconds to go out.
_publisher = per_process(_Publisher, at_exit=lambda publisher: publisher.flush(2.0))
