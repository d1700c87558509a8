"""The JSON the dashboard pages fetch: the overview of every station, or one station's figures.

A fixed number of queries per report, whatever the number of units and stations, reading the
rollups and the rows they do not hold (`tallies`) in one snapshot; the latency histograms are
one Redis round trip. `from_rows=True` reads every row of the period instead, as the dashboard
did before its rollups: the same JSON, which tests and `bench/dashboard.py` compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from inspection.models import Station
from inspection.supervision.dashboard.figures import Counts, counts_total, figures_body
from inspection.supervision.dashboard.in_play import alarms_active, models_in_play
from inspection.supervision.dashboard.latency import LatencySeries, latency_series
from inspection.supervision.dashboard.periods import Period, Window, window_at
from inspection.supervision.dashboard.series import count_series, drift_points
from inspection.supervision.dashboard.tallies import (
    ROWS_ONLY,
    RollupView,
    escape_rates,
    rollup_view,
    window_tally,
)


@contextmanager
def _snapshot(*, from_rows: bool) -> Iterator[RollupView]:
    """One transaction for the report's queries, and the rollups as it sees them. On PostgreSQL
    it is REPEATABLE READ (when it is the outermost one), so that every query sees the same
    rollups, touches and rows: a refresh committing meanwhile changes none of them. And with the
    JIT compiler off: the row queries' cost estimates (a subquery per blind unit) pass its
    threshold, and compiling took 0.4 s of a 0.5 s query that runs in 10 ms (200,000 units).
    SQLite's transaction is one snapshot already, and it has no JIT."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SET LOCAL jit = off")
        yield ROWS_ONLY if from_rows else rollup_view()


def _window_body(window: Window) -> dict:
    return {
        "period": window.period.name,
        "bucket_seconds": window.period.bucket_seconds,
        "start": window.start.isoformat(),
        "now": window.now.isoformat(),
    }


def _station_body(station: Station) -> dict:
    return {
        "slug": station.slug,
        "name": station.name,
        "line": station.line,
        "automation_level": station.automation_level,
        "automation_level_display": station.get_automation_level_display(),
        "target_escape_rate": station.target_escape_rate,
        "audit_share": station.audit_share,
        "dashboard_url": reverse("dashboard-station", args=[station.slug]),
    }


def _live_escape_body(live) -> dict | None:
    """Partial automation's live escape rate, whatever the period shown: its window is the
    threshold's (`tallies.escape_rates`); None for a station without a champion."""
    return live.as_dict() if live is not None else None


def _series(window: Window, counts: dict, drift: dict, latency: LatencySeries) -> dict:
    return {
        "t": window.bucket_starts,
        **counts,
        **{f"latency_{key}": values for key, values in latency.per_bucket().items()},
        "drift": drift,
    }


def _received(counts: dict[int, Counts]) -> dict[int, int]:
    return {station_id: each.received for station_id, each in counts.items()}


def dashboard_overview(*, period: Period, now: datetime | None = None, from_rows: bool = False) -> dict:
    """Every station's headline figures, models and live escape rate, the active alarms, and the
    charts' series for all stations together."""
    window = window_at(period=period, now=now or timezone.now())
    with _snapshot(from_rows=from_rows) as view:
        stations = list(Station.objects.select_related("champion").order_by("slug"))
        tally = window_tally(window=window, station_ids=None, view=view)
        live_escape = escape_rates(stations=stations, view=view)
        total = counts_total(tally.counts.stations.values())
        models = models_in_play(
            stations=stations, versions=tally.versions, received=_received(tally.counts.stations)
        )
        alarms = alarms_active()
        series = count_series(counts=tally.counts, pending_now=total.pending)
        drift = drift_points(window=window, station_ids=None)
    latency = latency_series(scopes=[None, *(s.slug for s in stations)], window=window)
    rows = []
    for station in stations:
        figures = figures_body(
            tally.counts.stations.get(station.pk, Counts()),
            window=window,
            latency=latency[station.slug].summary(),
        )
        active = [alarm for alarm in alarms if alarm["station"] == station.slug]
        rows.append(
            {
                **_station_body(station),
                "figures": figures,
                "models": models[station.pk],
                "live_escape": _live_escape_body(live_escape.get(station.pk)),
                "alarms": {
                    "open": sum(alarm["status"] == "open" for alarm in active),
                    "acknowledged": sum(alarm["status"] == "acknowledged" for alarm in active),
                },
            }
        )
    return {
        **_window_body(window),
        "overall": figures_body(total, window=window, latency=latency[None].summary()),
        "stations": rows,
        "alarms": alarms,
        "series": _series(window, series, drift, latency[None]),
    }


def dashboard_station(
    *, station: Station, period: Period, now: datetime | None = None, from_rows: bool = False
) -> dict:
    """One station's figures, models in play, live escape rate, active alarms and the charts'
    series."""
    window = window_at(period=period, now=now or timezone.now())
    ids = [station.pk]
    with _snapshot(from_rows=from_rows) as view:
        tally = window_tally(window=window, station_ids=ids, view=view)
        counts = tally.counts.stations.get(station.pk, Counts())
        live_escape = escape_rates(stations=[station], view=view).get(station.pk)
        models = models_in_play(
            stations=[station], versions=tally.versions, received=_received(tally.counts.stations)
        )[station.pk]
        alarms = alarms_active(station_ids=ids)
        series = count_series(counts=tally.counts, pending_now=counts.pending)
        drift = drift_points(window=window, station_ids=ids)
    latency = latency_series(scopes=[station.slug], window=window)[station.slug]
    return {
        **_window_body(window),
        "station": _station_body(station),
        "figures": figures_body(counts, window=window, latency=latency.summary()),
        "models": models,
        "live_escape": _live_escape_body(live_escape),
        "alarms": alarms,
        "series": _series(window, series, drift, latency),
    }
