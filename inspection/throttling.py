"""Failed credentials, counted per client: wrong passwords at sign-in, wrong device keys on the API.

Each counter is a sliding window of `LOUPE_FAILURE_WINDOW_SECONDS`, estimated from two fixed
buckets in Django's cache (Redis, so that every web process counts together): the failures of
the current bucket plus the previous bucket's, weighted by how much of it the window still
covers. Past its limit a counter refuses the client until enough failures have aged out; a
success does not reset it, so a guessed password is refused like a wrong one while the window
is full. With Redis unreachable the counters neither count nor refuse (the line keeps posting
through a Redis restart). See docs/operations.md ("Sign-in and device-key throttling").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("loupe.security")
# What Django's Redis cache raises when Redis is down or restarting (incr of an expired key is
# a ValueError, handled by add() before it).
CACHE_ERRORS = (redis.RedisError, OSError)


@dataclass(frozen=True)
class FailureCounter:
    """One kind of failure counted under one name (`sign-in:client:10.0.0.7`)."""

    name: str
    limit: int

    def _buckets(self, now: float) -> tuple[str, str, float]:
        window = settings.LOUPE_FAILURE_WINDOW_SECONDS
        bucket = int(now // window)
        elapsed = (now - bucket * window) / window
        return f"failures:{self.name}:{bucket}", f"failures:{self.name}:{bucket - 1}", elapsed

    def retry_after(self, now: float | None = None) -> int | None:
        """Seconds until the client may try again, or None while it is under its limit."""
        now = time.time() if now is None else now
        current_key, previous_key, elapsed = self._buckets(now)
        try:
            counts = cache.get_many([current_key, previous_key])
        except CACHE_ERRORS as error:
            # Redis away (a restart): count nothing rather than refuse the line and the people
            # while it is; the window resumes with Redis.
            logger.warning(
                "failure counter %s not read (cache unreachable: %s): not throttling", self.name, error
            )
            return None
        current, previous = counts.get(current_key, 0), counts.get(previous_key, 0)
        if current + previous * (1 - elapsed) < self.limit:
            return None
        window = settings.LOUPE_FAILURE_WINDOW_SECONDS
        if current >= self.limit:  # full on its own: it must become the previous bucket and fade
            return math.ceil(window * ((1 - elapsed) + (1 - self.limit / current))) + 1
        # the previous bucket's share fades: the count falls under the limit when its weight does
        fade = 1 - (self.limit - current) / previous
        return max(1, math.ceil(window * (fade - elapsed)))

    def add(self, now: float | None = None) -> None:
        current_key, _, _ = self._buckets(time.time() if now is None else now)
        window = settings.LOUPE_FAILURE_WINDOW_SECONDS
        try:
            cache.add(current_key, 0, timeout=int(2 * window) + 1)
            cache.incr(current_key)
        except CACHE_ERRORS as error:
            logger.warning("failure of %s not counted (cache unreachable: %s)", self.name, error)


def client_address(meta: Mapping[str, str]) -> str:
    """The client's address from a request's META (or an ASGI scope's headers in that form):
    `REMOTE_ADDR`, or behind a reverse proxy the header it sets (`LOUPE_CLIENT_IP_HEADER`, e.g.
    `HTTP_X_REAL_IP`; of a list, the last address, the one the proxy added)."""
    header = settings.LOUPE_CLIENT_IP_HEADER
    if header:
        forwarded = meta.get(header, "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return meta.get("REMOTE_ADDR", "") or "unknown"


def sign_in_counters(client: str, username: str) -> list[FailureCounter]:
    counters = [FailureCounter(f"sign-in:client:{client}", settings.LOUPE_SIGN_IN_CLIENT_FAILURES)]
    if username:
        name = username.strip().casefold()[:150]
        counters.append(FailureCounter(f"sign-in:user:{name}", settings.LOUPE_SIGN_IN_USER_FAILURES))
    return counters


def device_key_counter(client: str) -> FailureCounter:
    return FailureCounter(f"device-key:client:{client}", settings.LOUPE_DEVICE_KEY_FAILURES)


def refusal_seconds(counters: list[FailureCounter]) -> int | None:
    """How long the first full counter still refuses, or None when none is full."""
    waits = [wait for wait in (counter.retry_after() for counter in counters) if wait is not None]
    return max(waits) if waits else None


def failure_record(counters: list[FailureCounter]) -> None:
    for counter in counters:
        counter.add()
