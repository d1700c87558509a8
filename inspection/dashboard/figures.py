"""Headline figures per station over a window, each from one aggregate query grouped by station.

Definitions (units are counted by when they arrived, decisions by when they were made):

- **automation rate**: units with an automatic decision event (a model decided) / units received;
- **deferral rate**: units the policy deferred to a person (partial automation) / units received;
- **agreement**: blind units (shadow level and audits) a person has judged and the deciding model
  predicted: the person's current verdict equals the model's / such units, with its interval;
- **escape rate**: audit units (those full automation would have decided alone) where the model's
  verdict was wrong per the person / audits judged; **misses** are the wrong passes among them
  (the model passed a unit the person failed), the escapes that reach a customer;
- **decisions per hour**: decision events made in the window by a model and by people, over its
  length; **queue**: pending units now and the age of the oldest.

Every figure is a count, so the overall figures are sums over stations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime

from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet, Subquery

from inspection.dashboard.periods import Window
from inspection.dashboard.proportions import Proportion
from inspection.models import (
    DecisionEvent,
    DecisionReason,
    Prediction,
    QueueReason,
    Unit,
    UnitStatus,
    Verdict,
)

BLIND_REASONS = (QueueReason.SHADOW, QueueReason.AUDIT)
# The reasons of the decision that takes a unit out of the human queue (an override comes later).
QUEUE_EXIT_REASONS = (DecisionReason.DEFERRED, DecisionReason.AUDIT, DecisionReason.HUMAN)


@dataclass
class StationCounts:
    received: int = 0
    automatic: int = 0
    deferred: int = 0
    agreement: Proportion = field(default_factory=lambda: Proportion(0, 0))
    audit_wrong: Proportion = field(default_factory=lambda: Proportion(0, 0))
    audit_missed: Proportion = field(default_factory=lambda: Proportion(0, 0))
    decided_by_model: int = 0
    decided_by_human: int = 0
    pending: int = 0
    oldest_pending_at: datetime | None = None


def counts_total(counts: Iterable[StationCounts]) -> StationCounts:
    """The counts of several stations together (the oldest pending unit is the oldest of all)."""
    total = StationCounts()
    for each in counts:
        for name in (f.name for f in fields(StationCounts)):
            mine, theirs = getattr(total, name), getattr(each, name)
            if name == "oldest_pending_at":
                oldest = [moment for moment in (mine, theirs) if moment is not None]
                setattr(total, name, min(oldest, default=None))
            else:
                setattr(total, name, mine + theirs)
    return total


def units_in(window: Window, station_ids: Sequence[int] | None) -> QuerySet[Unit]:
    units = Unit.objects.filter(received_at__gte=window.start, received_at__lte=window.now)
    return units if station_ids is None else units.filter(station_id__in=station_ids)


def decisions_in(window: Window, station_ids: Sequence[int] | None) -> QuerySet[DecisionEvent]:
    decisions = DecisionEvent.objects.filter(created_at__gte=window.start, created_at__lte=window.now)
    return decisions if station_ids is None else decisions.filter(unit__station_id__in=station_ids)


def automatic_decision_exists() -> Exists:
    return Exists(DecisionEvent.objects.filter(unit=OuterRef("pk"), reason=DecisionReason.AUTOMATIC))


def blind_judged(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """Blind units with a person's verdict (their latest) and the deciding model's, annotated as
    `human_verdict` and `model_verdict`."""
    human = (
        DecisionEvent.objects.filter(unit=OuterRef("pk"), decided_by_user__isnull=False)
        .order_by("-created_at", "-id")
        .values("verdict")[:1]
    )
    model = Prediction.objects.filter(unit=OuterRef("pk"), model_version=OuterRef("deciding_model")).values(
        "verdict"
    )[:1]
    return (
        units.filter(queue_reason__in=BLIND_REASONS, deciding_model__isnull=False)
        .annotate(human_verdict=Subquery(human), model_verdict=Subquery(model))
        .filter(human_verdict__isnull=False, model_verdict__isnull=False)
    )


def judged_aggregates() -> dict:
    """Over `blind_judged` units: how many, how many agreed, how many the model wrongly passed."""
    return {
        "judged": Count("id"),
        "agreed": Count("id", filter=Q(human_verdict=F("model_verdict"))),
        "missed": Count("id", filter=Q(model_verdict=Verdict.PASS, human_verdict=Verdict.FAIL)),
    }


def station_counts(*, window: Window, station_ids: Sequence[int] | None = None) -> dict[int, StationCounts]:
    """Counts per station id (stations with nothing in the window are absent): four queries."""
    counts: dict[int, StationCounts] = {}

    def of(station_id: int) -> StationCounts:
        return counts.setdefault(station_id, StationCounts())

    units = units_in(window, station_ids)
    for row in units.values("station_id").annotate(
        received=Count("id"),
        automatic=Count("id", filter=Q(automatic_decision_exists())),
        deferred=Count("id", filter=Q(queue_reason=QueueReason.DEFERRED)),
    ):
        of(row["station_id"]).received = row["received"]
        of(row["station_id"]).automatic = row["automatic"]
        of(row["station_id"]).deferred = row["deferred"]

    for row in blind_judged(units).values("station_id", "queue_reason").annotate(**judged_aggregates()):
        station = of(row["station_id"])
        station.agreement += Proportion(row["agreed"], row["judged"])
        if row["queue_reason"] == QueueReason.AUDIT:
            station.audit_wrong += Proportion(row["judged"] - row["agreed"], row["judged"])
            station.audit_missed += Proportion(row["missed"], row["judged"])

    for row in (
        decisions_in(window, station_ids)
        .values("unit__station_id")
        .annotate(
            by_model=Count("id", filter=Q(decided_by_model__isnull=False)),
            by_human=Count("id", filter=Q(decided_by_user__isnull=False)),
        )
    ):
        of(row["unit__station_id"]).decided_by_model = row["by_model"]
        of(row["unit__station_id"]).decided_by_human = row["by_human"]

    pending = Unit.objects.filter(status=UnitStatus.PENDING)
    if station_ids is not None:
        pending = pending.filter(station_id__in=station_ids)
    for row in pending.values("station_id").annotate(pending=Count("id"), oldest=Min("received_at")):
        of(row["station_id"]).pending = row["pending"]
        of(row["station_id"]).oldest_pending_at = row["oldest"]
    return counts


def figures_body(counts: StationCounts, *, window: Window, latency: dict) -> dict:
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
