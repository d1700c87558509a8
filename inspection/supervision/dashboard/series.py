"""The figures per time bucket, for the dashboard's charts (from `tallies.window_tally`), and
the window's drift checks.

The queue length over time is not stored anywhere; it follows from the events. A unit enters
the queue when it arrives with a queue reason and leaves with the decision that takes it out
(reason deferred, audit or human; an override comes after). Counting back from the queue now:
pending(end of bucket i) = pending(now) - sum over later buckets j of (entries_j - exits_j).
"""

from __future__ import annotations

from collections.abc import Sequence

from inspection.supervision.dashboard.figures import WindowCounts
from inspection.supervision.dashboard.periods import Window
from inspection.supervision.models import DriftCheck


def count_series(*, counts: WindowCounts, pending_now: int) -> dict[str, list]:
    """Units received, decisions by a model and by people, automation rate, agreement on blind
    units and queue length, one value per bucket of the window (None where a rate has no units)."""
    buckets = counts.buckets
    queue = [0] * len(buckets)
    pending = pending_now
    for index in reversed(range(len(buckets))):
        queue[index] = pending
        pending -= buckets[index].entered_queue - buckets[index].left_queue
    return {
        "received": [bucket.received for bucket in buckets],
        "decided_by_model": [bucket.decided_by_model for bucket in buckets],
        "decided_by_human": [bucket.decided_by_human for bucket in buckets],
        "automation_rate": [
            bucket.automatic / bucket.received if bucket.received else None for bucket in buckets
        ],
        "judged": [bucket.agreement.total for bucket in buckets],
        "agreement": [bucket.agreement.rate for bucket in buckets],
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
