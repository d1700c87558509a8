"""Publishing what happens at a station, after the database has committed it.

One helper, `station_event_publish`, sends an event to the station's Channels group (the WebSocket
`/ws/stations/<slug>/events/` forwards it to the line and to browser pages) and, for a decision,
wakes the unit's long-polls through Redis pub/sub. Publishing never fails the request that caused
it: the event is already committed, and pollers re-read the database at least every second.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

UNIT_RECEIVED = "unit.received"
UNIT_DECIDED = "unit.decided"

_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()


def station_group(station_slug: str) -> str:
    return f"station.{station_slug}"


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


def station_event_publish(*, station_slug: str, event: dict[str, Any]) -> None:
    """Send `event` (a JSON-able dict with a "type") to the station's subscribers."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            station_group(station_slug), {"type": "station.event", "event": event}
        )
    except Exception:  # the event is committed; a Redis hiccup must not fail the line's request
        logger.exception("Could not publish %s for station %s", event.get("type"), station_slug)
    if event.get("type") == UNIT_DECIDED:
        try:
            redis_client().publish(unit_channel(event["unit"]["id"]), "decided")
        except redis.RedisError:
            logger.exception("Could not wake long-polls of unit %s", event["unit"]["id"])
