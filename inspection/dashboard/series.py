"""The figures per time bucket, for the dashboard's charts: three GROUP BY queries on the bucket
number computed in the database, and the window's drift checks.

The queue length over time is not stored anywhere; it follows from the events. A unit enters
the queue when it arrives with a queue reason and leaves with the decision that takes it out
(reason deferred, audit or human; an override comes after). Counting back from the queue now:
pending(end of bucket i) = pending(now) - sum over later buckets j of (entries_j - exits_j).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Q

from inspection.dashboard.figures import (
    QUEUE_EXIT_REASONS,
    automatic_decision_exists,
    blind_judged,
    decisions_in,
    judged_aggregates,
    units_in,
)
from inspection.dashboard.periods import EpochBucket, Window
from inspection.models import DriftCheck


def _per_bucket(window: Window, rows, fields: Sequence[str]) -> dict[str, list[int]]:
    """Rows of {bucket, field...} as one list per field, zero where a bucket had none."""
    columns = {name: [0] * window.period.bucket_count for name in fields}
    for row in rows:
        index = window.index_of(row["bucket"])
        if index is not None:
            for name in fields:
                columns[name][index] = row[name]
    return columns


def _ratio(counts: Sequence[int], totals: Sequence[int]) -> list[float | None]:
    return [count / total if total else None for count, total in zip(counts, totals, strict=True)]


def count_series(*, window: Window, station_ids: Sequence[int] | None, pending_now: int) -> dict[str, list]:
    """Units received, decisions by model and by people, automation rate, agreement on blind
    units and queue length, one value per bucket of the window."""
    width = window.period.bucket_seconds
    units = units_in(window, station_ids).annotate(bucket=EpochBucket("received_at", seconds=width))
    arrivals = _per_bucket(
        window,
        units.values("bucket").annotate(
            received=Count("id"),
            automatic=Count("id", filter=Q(automatic_decision_exists())),
            entered_queue=Count("id", filter=~Q(queue_reason="")),
        ),
        ("received", "automatic", "entered_queue"),
    )
    decisions = _per_bucket(
        window,
        decisions_in(window, station_ids)
        .annotate(bucket=EpochBucket("created_at", seconds=width))
        .values("bucket")
        .annotate(
            by_model=Count("id", filter=Q(decided_by_model__isnull=False)),
            by_human=Count("id", filter=Q(decided_by_user__isnull=False)),
            left_queue=Count("id", filter=Q(reason__in=QUEUE_EXIT_REASONS)),
        ),
        ("by_model", "by_human", "left_queue"),
    )
    judged = _per_bucket(
        window,
        blind_judged(units).values("bucket").annotate(**judged_aggregates()),
        ("judged", "agreed"),
    )
    queue = [0] * window.period.bucket_count
    pending = pending_now
    for index in reversed(range(window.period.bucket_count)):
        queue[index] = pending
        pending -= arrivals["entered_queue"][index] - decisions["left_queue"][index]
    return {
        "received": arrivals["received"],
        "decided_by_model": decisions["by_model"],
        "decided_by_human": decisions["by_human"],
        "automation_rate": _ratio(arrivals["automatic"], arrivals["received"]),
        "judged": judged["judged"],
        "agreement": _ratio(judged["agreed"], judged["judged"]),
        "queue_length": queue,
    }


def drift_points(*, window: Window, station_ids: Sequence[int] | None) -> dict[str, list]:
    """Each drift check of the window: when, where, its smallest Holm-adjusted p-value, the
    significance it was judged at, and the tests that found a shift."""
    checks = DriftCheck.objects.filter(checked_at__gte=window.start, checked_at__lte=window.now)
    if station_ids is not None:
        checks = checks.filter(station_id__in=station_ids)
    points: dict[str, list] = {
        "t": [],
        "station": [],
        "min_adjusted_p": [],
        "significance": [],
        "shifted": [],
        "shifted_tests": [],
    }
    for slug, checked_at, tests, significance, shifted in checks.order_by("checked_at", "id").values_list(
        "station__slug", "checked_at", "tests", "significance", "shifted"
    ):
        adjusted = [test["adjusted_p_value"] for test in tests if test.get("adjusted_p_value") is not None]
        points["t"].append(checked_at.timestamp())
        points["station"].append(slug)
        points["min_adjusted_p"].append(min(adjusted, default=None))
        points["significance"].append(significance)
        points["shifted"].append(shifted)
        points["shifted_tests"].append([test["name"] for test in tests if test.get("shifted")])
    return points
