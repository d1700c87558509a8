"""The dashboard's counts, read from the rows (units, predictions, decision events) with aggregate
queries grouped by station and time bucket (the bucket number computed in the database), and the
figures made of them.

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

Every figure is a count, so the overall figures are sums over stations, and counts per minute add
up to any longer bucket: the rollups (`rollups`) are these very queries per minute, and a window
is read from them plus these queries over the minutes they do not hold (`tallies`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import reduce

from django.db.models import Count, F, Min, Q, QuerySet

from inspection.enums import DecisionReason, QueueReason, UnitStatus, Verdict
from inspection.models import DecisionEvent, Prediction, Unit
from inspection.supervision.dashboard.periods import EpochBucket, Window
from inspection.supervision.dashboard.proportions import Proportion
from inspection.supervision.selectors import blind_judged, partial_audit_counts, partial_audits

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
        self.received += other.received
        self.automatic += other.automatic
        self.deferred += other.deferred
        self.entered_queue += other.entered_queue
        self.agreement += other.agreement
        self.audit_wrong += other.audit_wrong
        self.audit_missed += other.audit_missed
        self.decided_by_model += other.decided_by_model
        self.decided_by_human += other.decided_by_human
        self.left_queue += other.left_queue
        self.pending += other.pending
        if other.oldest_pending_at is not None and (
            self.oldest_pending_at is None or other.oldest_pending_at < self.oldest_pending_at
        ):
            self.oldest_pending_at = other.oldest_pending_at


def counts_total(counts: Iterable[Counts]) -> Counts:
    """Several stations' (or buckets') counts together; the oldest pending unit of all."""
    total = Counts()
    for each in counts:
        total.add(each)
    return total


@dataclass
class VersionCounts:
    """What one model version did at a station: units it predicted, units it decided alone, and
    the partial automation audits it was the deciding model of that a person judged, and agreed
    with (its live escape rate)."""

    predicted: int = 0
    decided: int = 0
    audits_judged: int = 0
    audits_agreed: int = 0

    def add(self, other: VersionCounts) -> None:
        for name in (f.name for f in fields(VersionCounts)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# (station id, bucket number) -> what happened there then.
Tally = dict[tuple[int, int], Counts]
# (station id, bucket number, model version id) -> what that version did there then.
VersionTally = dict[tuple[int, int, int], VersionCounts]


@dataclass
class WindowCounts:
    stations: dict[int, Counts]  # by station id; stations with nothing to count are absent
    buckets: list[Counts]  # by the window's buckets, all the stations asked for together


@dataclass(frozen=True)
class Span:
    """A stretch of time: from `start` (included; None: from the beginning) to `end` (excluded,
    or included with `end_included`, as a window's `now` is; None: no end)."""

    start: datetime | None
    end: datetime | None
    end_included: bool = False

    def q(self, name: str) -> Q:
        bounds = {}
        if self.start is not None:
            bounds[f"{name}__gte"] = self.start
        if self.end is not None:
            bounds[f"{name}__{'lte' if self.end_included else 'lt'}"] = self.end
        return Q(**bounds)


def _within(name: str, spans: Sequence[Span]) -> Q:
    if not spans:
        raise ValueError("no time span to count over")
    return reduce(operator.or_, (span.q(name) for span in spans))


def _of_stations(queryset: QuerySet, name: str, station_ids: Sequence[int] | None) -> QuerySet:
    return queryset if station_ids is None else queryset.filter(**{f"{name}__in": station_ids})


def units_in(spans: Sequence[Span], station_ids: Sequence[int] | None) -> QuerySet[Unit]:
    return _of_stations(Unit.objects.filter(_within("received_at", spans)), "station_id", station_ids)


def decisions_in(spans: Sequence[Span], station_ids: Sequence[int] | None) -> QuerySet[DecisionEvent]:
    decisions = DecisionEvent.objects.filter(_within("created_at", spans))
    return _of_stations(decisions, "unit__station_id", station_ids)


def automatic_decisions_of(
    spans: Sequence[Span], station_ids: Sequence[int] | None
) -> QuerySet[DecisionEvent]:
    """The automatic decisions of the units received in the spans (one per unit: the model
    decides when the unit arrives). A join, not a subquery per unit: PostgreSQL runs it as one
    hash join however many units the spans hold."""
    decisions = DecisionEvent.objects.filter(
        _within("unit__received_at", spans), reason=DecisionReason.AUTOMATIC
    )
    return _of_stations(decisions, "unit__station_id", station_ids)


def judged_aggregates() -> dict:
    """Over `blind_judged` units: how many, how many agreed, how many the model wrongly passed."""
    return {
        "judged": Count("id"),
        "agreed": Count("id", filter=Q(human_verdict=F("model_verdict"))),
        "missed": Count("id", filter=Q(model_verdict=Verdict.PASS, human_verdict=Verdict.FAIL)),
    }


def counts_tally(*, spans: Sequence[Span], station_ids: Sequence[int] | None, bucket_seconds: int) -> Tally:
    """The spans' counts per station and time bucket, in four grouped queries: the units by when
    they arrived (received, deferred, entered the queue, automatic decisions, blind units judged)
    and the decision events by when they were made."""
    width = bucket_seconds
    tally: Tally = {}

    def add(station_id: int, bucket: int, counts: Counts) -> None:
        tally.setdefault((station_id, bucket), Counts()).add(counts)

    units = units_in(spans, station_ids).annotate(bucket=EpochBucket("received_at", seconds=width))
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
        automatic_decisions_of(spans, station_ids)
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
        decisions_in(spans, station_ids)
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
    return tally


def versions_tally(
    *, spans: Sequence[Span], station_ids: Sequence[int] | None, bucket_seconds: int
) -> VersionTally:
    """Per station, time bucket (of the units' arrival) and model version: what it did to the
    spans' units (`VersionCounts`), in three grouped queries."""
    width = bucket_seconds
    tally: VersionTally = {}

    def add(row: dict, station: str, version: str, counts: VersionCounts) -> None:
        tally.setdefault((row[station], row["bucket"], row[version]), VersionCounts()).add(counts)

    predictions = Prediction.objects.filter(_within("unit__received_at", spans))
    for row in (
        _of_stations(predictions, "unit__station_id", station_ids)
        .annotate(bucket=EpochBucket("unit__received_at", seconds=width))
        .values("unit__station_id", "bucket", "model_version_id")
        .annotate(count=Count("id"))
    ):
        add(row, "unit__station_id", "model_version_id", VersionCounts(predicted=row["count"]))
    for row in (
        automatic_decisions_of(spans, station_ids)
        .annotate(bucket=EpochBucket("unit__received_at", seconds=width))
        .values("unit__station_id", "bucket", "decided_by_model_id")
        .annotate(count=Count("unit_id", distinct=True))
    ):
        add(row, "unit__station_id", "decided_by_model_id", VersionCounts(decided=row["count"]))
    for row in (
        partial_audits(units_in(spans, station_ids).filter(deciding_model__isnull=False))
        .annotate(bucket=EpochBucket("received_at", seconds=width))
        .values("station_id", "bucket", "deciding_model_id")
        .annotate(**partial_audit_counts())
        .order_by()
    ):
        if row["judged"]:
            audits = VersionCounts(audits_judged=row["judged"], audits_agreed=row["agreed"])
            add(row, "station_id", "deciding_model_id", audits)
    return tally


def pending_now(station_ids: Sequence[int] | None) -> dict[int, Counts]:
    """The queue now, per station: how many units wait and since when the oldest has."""
    pending = _of_stations(Unit.objects.filter(status=UnitStatus.PENDING), "station_id", station_ids)
    return {
        row["station_id"]: Counts(pending=row["pending"], oldest_pending_at=row["oldest"])
        for row in pending.values("station_id").annotate(pending=Count("id"), oldest=Min("received_at"))
    }


def window_counts_of(*, window: Window, tally: Tally, pending: dict[int, Counts]) -> WindowCounts:
    """A window's counts per station and per bucket, from a tally at the width of its period's
    buckets and the queue now, so that a chart's bars add up to its station's figure."""
    stations: dict[int, Counts] = {}
    buckets = [Counts() for _ in range(window.period.bucket_count)]
    for (station_id, bucket), counts in tally.items():
        stations.setdefault(station_id, Counts()).add(counts)
        index = window.index_of(bucket)
        if index is not None:
            buckets[index].add(counts)
    for station_id, queue in pending.items():
        stations.setdefault(station_id, Counts()).add(queue)
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
