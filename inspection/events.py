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

The dashboards hear of a station at most once every `ACTIVITY_INTERVAL_SECONDS` (a dashboard
refetches its figures at most every few seconds anyway), the notice carrying the kinds of all
that happened since; a notice with an alarm goes at once. A unit the model decided as it arrived
wakes no long-poll (nobody can wait on a unit whose id the commit has not yet answered). At one
unit at a time, each of those sends cost the web process about a millisecond of CPU a unit.
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
ACTIVITY_INTERVAL_SECONDS = 1.0  # between two of a station's notices to the dashboards, at least

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


def station_event_publish(
    *, station_slug: str, events: list[dict[str, Any]], wake_long_polls: bool = True
) -> None:
    """Queue `events` (JSON-able dicts with a "type") for the station's subscribers, in order.
    Call it from `transaction.on_commit`. `wake_long_polls=False` for a unit decided in the
    transaction that created it: nobody can be waiting on it (a long-poll subscribes, then reads
    the database, and learns the unit's id only after the commit)."""
    _publisher().put(station_slug, events, wake_long_polls)


def station_events_flush(timeout: float = 5.0) -> bool:
    """Wait until every queued event has been sent (tests, and before a process exits)."""
    return _publisher().flush(timeout)


class _Publisher:
    """A daemon thread with its own event loop that sends queued events in batches, in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="loupe-event-publisher", daemon=True)
        self._thread.start()

    def put(self, station_slug: str, events: list[dict[str, Any]], wake_long_polls: bool = True) -> None:
        self._queue.put((station_slug, events, wake_long_polls))

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        next_send = 0.0
        notices = _ActivityNotices()
        while True:
            try:
                first = self._queue.get(timeout=notices.wait())
            except queue.Empty:  # only the dashboards' notices are due
                batch = []
            else:
                time.sleep(max(0.0, next_send - time.monotonic()))  # what arrives meanwhile joins the batch
                batch = self._take(first)
            by_station: dict[str, list[dict[str, Any]]] = {}
            woken: list[int] = []
            for item in batch:
                if not isinstance(item, threading.Event):
                    station_slug, events, wake_long_polls = item
                    by_station.setdefault(station_slug, []).extend(events)
                    notices.add(station_slug, events)
                    if wake_long_polls:
                        woken += [
                            event["unit"]["id"] for event in events if event.get("type") == UNIT_DECIDED
                        ]
            flushing = any(isinstance(item, threading.Event) for item in batch)
            due = notices.due(time.monotonic(), everything=flushing)
            if flushing:  # everything held is sent: the next notice may go at once
                notices.schedule_clear()
            if by_station or due:
                try:
                    loop.run_until_complete(self._send(by_station, woken, due))
                except Exception:  # nothing may stop the publisher; the events are committed
                    logger.exception("Could not publish a batch of events")
                if by_station:
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

    async def _send(
        self, by_station: dict[str, list[dict[str, Any]]], woken: list[int], notices: list[dict[str, Any]]
    ) -> None:
        layer = get_channel_layer()
        for station_slug, events in by_station.items():
            try:
                await layer.group_send(
                    station_group(station_slug), {"type": "station.event", "events": events}
                )
            except Exception:  # a Redis hiccup must not stop the publisher; the events are committed
                logger.exception("Could not publish %d events for station %s", len(events), station_slug)
        if woken:
            try:
                pipeline = redis_client().pipeline(transaction=False)
                for unit_id in woken:
                    pipeline.publish(unit_channel(unit_id), "decided")
                pipeline.execute()
            except redis.RedisError:
                logger.exception("Could not wake long-polls of units %s", woken)
        for notice in notices:
            try:
                await layer.group_send(SUPERVISION_GROUP, notice)
            except Exception:  # as above: the events are committed, the dashboard refetches later
                logger.exception("Could not tell the dashboards of station %s's activity", notice["station"])


class _ActivityNotices:
    """The dashboards' notices: per station at most one every `ACTIVITY_INTERVAL_SECONDS`, with the
    kinds of everything that happened since the last; one with an alarm goes at once (a dashboard
    refetches its figures at most every few seconds, but shows an alarm as it comes)."""

    def __init__(self) -> None:
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._next: dict[str, float] = {}

    def add(self, station_slug: str, events: list[dict[str, Any]]) -> None:
        self._events.setdefault(station_slug, []).extend(events)

    def due(self, now: float, *, everything: bool = False) -> list[dict[str, Any]]:
        notices = []
        for station_slug in list(self._events):
            events = self._events[station_slug]
            alarmed = any(isinstance(event.get("alarm"), dict) for event in events)
            if everything or alarmed or now >= self._next.get(station_slug, 0.0):
                notices.append(station_activity(station_slug, self._events.pop(station_slug)))
                self._next[station_slug] = now + ACTIVITY_INTERVAL_SECONDS
        return notices

    def schedule_clear(self) -> None:
        self._next.clear()

    def wait(self) -> float | None:
        """Seconds until the next held notice is due; None when none is held."""
        if not self._events:
            return None
        return max(0.0, min(self._next[slug] for slug in self._events) - time.monotonic())


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
