"""How long the line waits on `POST /api/v1/units/`: recorded per request, kept in Redis as
histograms, read back as percentiles.

The request-metrics middleware (`config.metrics`) times each successful post and hands the time
(`unit_post_observe`) to a per-process buffer; a daemon thread adds the buffer to Redis every
`FLUSH_SECONDS` (one pipelined round trip of HINCRBYs), so the line's request never waits on
Redis and every web process adds to the same counts. Each station, and all stations together
(scope `*`), has one hash per minute, per quarter-hour and per hour, each kept as long as the
period that reads it needs (the hour's charts read minutes, the day's quarter-hours, the week's
hours: at most 168 hashes a scope). Their fields are bucket numbers of fixed log-spaced edges:
20 per decade from 0.1 ms to 100 s (each bucket 12 % wide), so a percentile read back,
interpolated inside its bucket, is within 12 % of the exact one. A process that exits sends what
it holds; one that is killed loses at most its last two seconds.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import redis
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from inspection.events import per_process, redis_client
from inspection.supervision.dashboard.periods import Window

logger = logging.getLogger(__name__)

EDGES_MS: tuple[float, ...] = tuple(0.1 * 10 ** (step / 20) for step in range(121))
ALL_STATIONS = "*"  # not a valid slug character: no station's keys can collide with it
FLUSH_SECONDS = 2.0
MINUTE_TTL_SECONDS = 2 * 3600  # the hour view reads minutes
QUARTER_TTL_SECONDS = 2 * 24 * 3600  # the day view reads quarter-hours
HOUR_TTL_SECONDS = 8 * 24 * 3600  # the week view reads hours
KEEP_UNSENT_SECONDS = 3600  # counts Redis refused are retried for this long, then dropped


def bucket_of(milliseconds: float) -> int:
    """0 below the first edge, len(EDGES_MS) at or above the last; else the edge interval."""
    return bisect.bisect_right(EDGES_MS, milliseconds)


def histogram_key(scope: str, resolution_seconds: int, slot: int) -> str:
    return f"loupe:latency:{scope}:{resolution_seconds}:{slot}"


def histogram_percentile(histogram: Mapping[int, int], quantile: float) -> float | None:
    """The quantile in ms, interpolated geometrically inside its bucket; None for no requests."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if count and seen + count >= rank:
            if bucket == 0:
                return EDGES_MS[0]
            if bucket >= len(EDGES_MS):
                return EDGES_MS[-1]
            low, high = EDGES_MS[bucket - 1], EDGES_MS[bucket]
            return low * (high / low) ** ((rank - seen) / count)
        seen += count
    return EDGES_MS[-1]


def histogram_merge(histograms: Iterable[Mapping[int, int]]) -> Counter:
    merged: Counter = Counter()
    for histogram in histograms:
        merged.update(histogram)
    return merged


def latency_record(*, station_slug: str, milliseconds: float, at: float | None = None) -> None:
    """Count one request of the station's line (no I/O: it goes to Redis within FLUSH_SECONDS)."""
    _recorder().add(station_slug, milliseconds, time.time() if at is None else at)


def latency_flush() -> int:
    """Send what this process has buffered to Redis now (tests; the thread does it otherwise).
    Returns the number of requests sent."""
    return _recorder().flush()


@dataclass(frozen=True)
class LatencySeries:
    total: Counter  # the whole window's histogram
    buckets: list[Counter]  # one per window bucket

    def summary(self) -> dict:
        return _summary(self.total)

    def per_bucket(self) -> dict[str, list]:
        summaries = [_summary(histogram) for histogram in self.buckets]
        return {key: [summary[key] for summary in summaries] for key in ("count", "p50_ms", "p99_ms")}


def latency_series(*, scopes: Iterable[str | None], window: Window) -> dict[str | None, LatencySeries]:
    """The histograms of the window's buckets for each scope (a station's slug, or None for all
    stations): the hashes of its period's resolution (minutes for the hour, quarter-hours for the
    day, hours for the week), all read in one pipelined round trip."""
    scopes = list(scopes)
    resolution = window.period.latency_resolution_seconds
    width = window.period.bucket_seconds
    first_slot = int(window.start.timestamp()) // resolution
    slots = range(first_slot, int(window.now.timestamp()) // resolution + 1)
    pipeline = redis_client().pipeline(transaction=False)
    for scope in scopes:
        for slot in slots:
            pipeline.hgetall(histogram_key(scope or ALL_STATIONS, resolution, slot))
    replies = iter(pipeline.execute())
    series = {}
    for scope in scopes:
        buckets = [Counter() for _ in range(window.period.bucket_count)]
        for slot in slots:
            fields = next(replies)
            index = window.index_of(slot * resolution // width)
            if index is not None and fields:
                buckets[index].update({int(bucket): int(count) for bucket, count in fields.items()})
        series[scope] = LatencySeries(total=histogram_merge(buckets), buckets=buckets)
    return series


def _summary(histogram: Mapping[int, int]) -> dict:
    return {
        "count": sum(histogram.values()),
        "p50_ms": histogram_percentile(histogram, 0.50),
        "p99_ms": histogram_percentile(histogram, 0.99),
    }


class _Recorder:
    """The process's buffer of counts, keyed (station, minute, bucket), and its flushing thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._thread = threading.Thread(target=self._run, name="loupe-latency-recorder", daemon=True)
        self._thread.start()

    def add(self, station_slug: str, milliseconds: float, at: float) -> None:
        with self._lock:
            self._counts[(station_slug, int(at) // 60, bucket_of(milliseconds))] += 1

    def flush(self) -> int:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        pipeline = redis_client().pipeline(transaction=False)
        expiries: dict[str, int] = {}
        for (slug, minute, bucket), count in counts.items():
            for scope in (slug, ALL_STATIONS):
                for resolution, slot, ttl in (
                    (60, minute, MINUTE_TTL_SECONDS),
                    (900, minute // 15, QUARTER_TTL_SECONDS),
                    (3600, minute // 60, HOUR_TTL_SECONDS),
                ):
                    key = histogram_key(scope, resolution, slot)
                    pipeline.hincrby(key, str(bucket), count)
                    expiries[key] = ttl
        for key, ttl in expiries.items():
            pipeline.expire(key, ttl)
        try:
            pipeline.execute()
        except redis.RedisError:
            logger.exception("Could not add %d latency counts to Redis; retrying them", sum(counts.values()))
            oldest = int(time.time() - KEEP_UNSENT_SECONDS) // 60
            with self._lock:
                self._counts.update({key: n for key, n in counts.items() if key[1] >= oldest})
            return 0
        return sum(counts.values())

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # the thread must outlive any surprise; the error is logged
                logger.exception("Latency flush failed")


# The process's recorder; what it holds at exit is sent.
_recorder = per_process(_Recorder, at_exit=lambda recorder: recorder.flush())


@cache
def _unit_post_path() -> str:
    return reverse("unit-list")


def unit_post_observe(request: HttpRequest, response: HttpResponse | None, seconds: float) -> None:
    """Keep the time of a successful line post (`POST /api/v1/units/` with a device key) for the
    dashboard. The request-metrics middleware (`config.metrics`), which times every request from
    the top of the stack, calls it: one timing serves Prometheus and the dashboard."""
    if request.method != "POST" or response is None or not 200 <= response.status_code < 300:
        return
    if request.path_info != _unit_post_path():
        return
    # DRF puts the device-key principal on the Django request too; people and strangers are skipped.
    station = getattr(getattr(request, "user", None), "station", None)
    if station is not None:
        latency_record(station_slug=station.slug, milliseconds=seconds * 1000)
