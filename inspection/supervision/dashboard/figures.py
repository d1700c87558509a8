"""Figures per station and per time bucket over a window, from aggregate queries grouped by
station and bucket (the bucket number computed in the database).

Definitions (units are counted by when they arrived, decisions by when they were made):

- **automation rate**: units with an automatic decision event (a model decided) / units received;
- **deferral rate**: units the policy deferred to a person (partial automation) / units received;
- **agreement**: blind units (shadow level and audits) a person has judged and the deciding model
  predicted: the person's current verdict equals the model's / such units, with its interval;
- **escape rate**: audit units (those partial or full automation would have decided alone) where
  the model's verdict was wrong per the person / audits judged; **misses** are the wrong passes
  among them (the model passed a unit the person failed), the escapes that reach a customer
  (partial automation's estimate against its target, over the threshold's own window, is
  `inspection.supervision.selectors.escape_rates_live`);
- **decisions per hour**: decision events made in the window by a model and by people, over its
  length; **queue**: pending units now and the age of the oldest.

Every figure is a count, so the overall figures are sums over stations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime

from django.db.models import Count, F, Min, Q, QuerySet

from inspection.enums import DecisionReason, QueueReason, UnitStatus, Verdict
from inspection.models import DecisionEvent, Unit
from inspection.supervision.dashboard.periods import EpochBucket, Window
from inspection.supervision.dashboard.proportions import Proportion
from inspection.supervision.selectors import blind_judged

# The reasons of the decision that takes a unit out of the human queue (an override comes later).
QUEUE_EXIT_REASONS = (DecisionReason.DEFERRED, DecisionReason.AUDIT, DecisionReason.HUMAN)


@dataclass
class Counts:
    """What happened at a station, or in a time bucket, or anywhere: additive counts."""

    received: int = 0
    automatic: int = 0
    deferred: int = 0
    entered_queue: int = 0  # units that arrived with a queue reason
    agreement: Proportion = field(default_factory=lambda: Proportion(0, 0))
    audit_wrong: Proportion = field(default_factory=lambda: Proportion(0, 0))
    audit_missed: Proportion = field(default_factory=lambda: Proportion(0, 0))
    decided_by_model: int = 0
    decided_by_human: int = 0
    left_queue: int = 0  # decisions that took a unit out of the queue
    pending: int = 0  # now (not per bucket)
    oldest_pending_at: datetime | None = None

    def add(self, other: Counts) -> None:
        for name in (f.name for f in fields(Counts)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "oldest_pending_at":
                setattr(self, name, min((m for m in (mine, theirs) if m is not None), default=None))
            else:
                setattr(self, name, mine + theirs)


def counts_total(counts: Iterable[Counts]) -> Counts:
    """Several stations' (or buckets') counts together; the oldest pending unit of all."""
    total = Counts()
    for each in counts:
        total.add(each)
    return total


@dataclass
class WindowCounts:
    stations: dict[int, Counts]  # by station id; stations with nothing to count are absent
    buckets: list[Counts]  # by the window's buckets, all the stations asked for together


def units_in(window: Window, station_ids: Sequence[int] | None) -> QuerySet[Unit]:
    units = Unit.objects.filter(received_at__gte=window.start, received_at__lte=window.now)
    return units if station_ids is None else units.filter(station_id__in=station_ids)


def decisions_in(window: Window, station_ids: Sequence[int] | None) -> QuerySet[DecisionEvent]:
    decisions = DecisionEvent.objects.filter(created_at__gte=window.start, created_at__lte=window.now)
    return decisions if station_ids is None else decisions.filter(unit__station_id__in=station_ids)


def automatic_decisions_of(window: Window, station_ids: Sequence[int] | None) -> QuerySet[DecisionEvent]:
    """The automatic decisions of the units received in the window (one per unit: the model
    decides when the unit arrives). A join, not a subquery per unit: PostgreSQL runs it as one
    hash join however many units the window holds."""
    decisions = DecisionEvent.objects.filter(
        reason=DecisionReason.AUTOMATIC,
        unit__received_at__gte=window.start,
        unit__received_at__lte=window.now,
    )
    return decisions if station_ids is None else decisions.filter(unit__station_id__in=station_ids)


def judged_aggregates() -> dict:
    """Over `blind_judged` units: how many, how many agreed, how many the model wrongly passed."""
    return {
        "judged": Count("id"),
        "agreed": Count("id", filter=Q(human_verdict=F("model_verdict"))),
        "missed": Count("id", filter=Q(model_verdict=Verdict.PASS, human_verdict=Verdict.FAIL)),
    }


def window_counts(*, window: Window, station_ids: Sequence[int] | None = None) -> WindowCounts:
    """Counts per station and per time bucket from the same five queries (four grouped by
    station and bucket, and the queue now), so a chart's bars add up to its station's figure."""
    width = window.period.bucket_seconds
    stations: dict[int, Counts] = {}
    buckets = [Counts() for _ in range(window.period.bucket_count)]

    def add(station_id: int, bucket: int, counts: Counts) -> None:
        stations.setdefault(station_id, Counts()).add(counts)
        index = window.index_of(bucket)
        if index is not None:
            buckets[index].add(counts)

    units = units_in(window, station_ids).annotate(bucket=EpochBucket("received_at", seconds=width))
    for row in units.values("station_id", "bucket").annotate(
        received=Count("id"),
        deferred=Count("id", filter=Q(queue_reason=QueueReason.DEFERRED)),
        entered_queue=Count("id", filter=~Q(queue_reason="")),
    ):
        add(
            row["station_id"],
            row["bucket"],
            Counts(row["received"], deferred=row["deferred"], entered_queue=row["entered_queue"]),
        )
    for row in (
        automatic_decisions_of(window, station_ids)
        .annotate(bucket=EpochBucket("unit__received_at", seconds=width))
        .values("unit__station_id", "bucket")
        .annotate(units=Count("unit_id", distinct=True))
    ):
        add(row["unit__station_id"], row["bucket"], Counts(automatic=row["units"]))
    for row in (
        blind_judged(units).values("station_id", "queue_reason", "bucket").annotate(**judged_aggregates())
    ):
        judged = Counts(agreement=Proportion(row["agreed"], row["judged"]))
        if row["queue_reason"] == QueueReason.AUDIT:
            judged.audit_wrong = Proportion(row["judged"] - row["agreed"], row["judged"])
            judged.audit_missed = Proportion(row["missed"], row["judged"])
        add(row["station_id"], row["bucket"], judged)
    for row in (
        decisions_in(window, station_ids)
        .annotate(bucket=EpochBucket("created_at", seconds=width))
        .values("unit__station_id", "bucket")
        .annotate(
            by_model=Count("id", filter=Q(decided_by_model__isnull=False)),
            by_human=Count("id", filter=Q(decided_by_user__isnull=False)),
            left_queue=Count("id", filter=Q(reason__in=QUEUE_EXIT_REASONS)),
        )
    ):
        decided = Counts(
            decided_by_model=row["by_model"], decided_by_human=row["by_human"], left_queue=row["left_queue"]
        )
        add(row["unit__station_id"], row["bucket"], decided)

    pending = Unit.objects.filter(status=UnitStatus.PENDING)
    if station_ids is not None:
        pending = pending.filter(station_id__in=station_ids)
    for row in pending.values("station_id").annotate(pending=Count("id"), oldest=Min("received_at")):
        stations.setdefault(row["station_id"], Counts()).add(
            Counts(pending=row["pending"], oldest_pending_at=row["oldest"])
        )
    return WindowCounts(stations=stations, buckets=buckets)


def figures_body(counts: Counts, *, window: Window, latency: dict) -> dict:
    """The figures as the dashboard's JSON gives them (rates in [0, 1], intervals at 95 %)."""
    hours = window.hours
    oldest = counts.oldest_pending_at
    return {
        "units_received": counts.received,
        "automation": Proportion(counts.automatic, counts.received).as_dict(),
        "deferral": Proportion(counts.deferred, counts.received).as_dict(),
        "agreement": counts.agreement.as_dict(),
        "escape": {
            "audits": counts.audit_wrong.total,
            "wrong": counts.audit_wrong.as_dict(),
            "missed": counts.audit_missed.as_dict(),
        },
        "decisions": {
            "by_model": counts.decided_by_model,
            "by_human": counts.decided_by_human,
            "per_hour": {
                "model": counts.decided_by_model / hours,
                "human": counts.decided_by_human / hours,
                "total": (counts.decided_by_model + counts.decided_by_human) / hours,
            },
        },
        "queue": {
            "pending": counts.pending,
            "oldest_pending_seconds": (window.now - oldest).total_seconds() if oldest else None,
        },
        "latency": latency,
    }
