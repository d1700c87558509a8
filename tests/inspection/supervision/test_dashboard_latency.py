"""The line API's latency: recorded per request by the middleware, kept in Redis as histograms,
read back as percentiles per station, for all stations, and per chart bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inspection.supervision.dashboard.latency import (
    EDGES_MS,
    bucket_of,
    histogram_percentile,
    latency_flush,
    latency_record,
    latency_series,
)
from inspection.supervision.dashboard.periods import PERIODS, window_at
from tests.inspection.factories import posted_unit

NOW = datetime(2026, 3, 2, 12, 30, 30, tzinfo=UTC)


def test_percentiles_from_the_histogram_are_within_the_bucket_resolution():
    rng = np.random.default_rng(3)
    values = rng.lognormal(mean=np.log(25), sigma=0.6, size=5000)
    histogram: dict[int, int] = {}
    for value in values:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    step = 10 ** (1 / 20)  # one bucket's ratio
    for quantile in (0.5, 0.99):
        exact = float(np.quantile(values, quantile))
        assert exact / step <= histogram_percentile(histogram, quantile) <= exact * step
    assert histogram_percentile({}, 0.5) is None
    assert bucket_of(0.01) == 0 and bucket_of(1e9) == len(EDGES_MS)


def test_recorded_requests_add_up_per_station_and_for_all_stations(redis_client):
    start = NOW.timestamp() - 50 * 60  # bucket 11:40 of the last hour (index 9)
    for milliseconds in range(1, 101):  # 1 .. 100 ms at station A
        latency_record(station_slug="line-a", milliseconds=milliseconds, at=start)
    latency_record(station_slug="line-b", milliseconds=400, at=NOW.timestamp() - 60)
    latency_record(station_slug="line-b", milliseconds=5, at=NOW.timestamp() - 3 * 3600)  # outside
    latency_flush()  # (the recorder's thread may have sent some already)
    window = window_at(period=PERIODS["hour"], now=NOW)
    series = latency_series(scopes=["line-a", "line-b", None], window=window)
    a = series["line-a"].summary()
    assert a["count"] == 100
    assert a["p50_ms"] == pytest.approx(50, rel=0.06) and a["p99_ms"] == pytest.approx(99, rel=0.06)
    per_bucket = series["line-a"].per_bucket()
    assert per_bucket["count"][9] == 100 and sum(per_bucket["count"]) == 100
    assert per_bucket["p50_ms"][10] is None
    assert series["line-b"].summary()["count"] == 1
    assert series[None].summary()["count"] == 101
    # the day reads the quarter-hours' histograms and the week the hours', each holding every request
    day = latency_series(scopes=["line-a", "line-b"], window=window_at(period=PERIODS["day"], now=NOW))
    assert day["line-b"].summary()["count"] == 2 and day["line-b"].per_bucket()["count"][-13] == 1
    assert day["line-a"].per_bucket()["count"][-5] == 100  # 11:40:30 is in the quarter from 11:30
    week = latency_series(scopes=["line-b"], window=window_at(period=PERIODS["week"], now=NOW))
    assert week["line-b"].summary()["count"] == 2


@pytest.mark.django_db
def test_a_unit_posted_by_the_line_is_timed_for_its_station(
    media_root, redis_client, make_station, device_client
):
    station = make_station(slug="timed-line")
    client = device_client(station)
    posted_unit(client, "SN-T1")
    client.post("/api/v1/units/", {"serial": "SN-BAD"}, format="multipart")  # 400: not counted
    latency_flush()
    window = window_at(period=PERIODS["hour"], now=datetime.now(UTC))
    summary = latency_series(scopes=["timed-line"], window=window)["timed-line"].summary()
    assert summary["count"] == 1 and summary["p50_ms"] > 0
