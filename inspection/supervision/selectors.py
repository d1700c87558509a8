"""Supervision's reads that the background checks (drift, the live escape rate) and the
dashboard share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery

from inspection.enums import AutomationLevel, QueueReason
from inspection.models import DecisionEvent, Prediction, Station, StationChange, Unit
from inspection.supervision.dashboard.proportions import CONFIDENCE, Proportion, fewest_to_show_below
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus

BLIND_REASONS = (QueueReason.SHADOW, QueueReason.AUDIT)


def blind_judged(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """Blind units with a person's verdict (their latest) and the deciding model's, annotated as
    `human_verdict` and `model_verdict`."""
    return verdicts_annotated(
        units.filter(queue_reason__in=BLIND_REASONS, deciding_model__isnull=False)
    ).filter(human_verdict__isnull=False, model_verdict__isnull=False)


def verdicts_annotated(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """Units annotated with a person's latest verdict (`human_verdict`) and the deciding model's
    (`model_verdict`), None where there is none."""
    human = (
        DecisionEvent.objects.filter(unit=OuterRef("pk"), decided_by_user__isnull=False)
        .order_by("-created_at", "-id")
        .values("verdict")[:1]
    )
    # At most one prediction per unit and model version; no ORDER BY, which could lead PostgreSQL
    # to walk the whole table in id order for each unit.
    model = (
        Prediction.objects.filter(unit=OuterRef("pk"), model_version=OuterRef("deciding_model"))
        .order_by()
        .values("verdict")[:1]
    )
    return units.annotate(human_verdict=Subquery(human), model_verdict=Subquery(model))


# What fixes the threshold partial automation decides at: a change of any starts a new window.
THRESHOLD_FIELDS = {
    "champion": "the champion changed",
    "target_escape_rate": "the target escape rate changed",
    "uncertainty_band": "the uncertainty band changed",
}
ESCAPE_ALARM_CLEARED = "the last escape-rate alarm was cleared"


class LiveEscapeState(StrEnum):
    NONE = "none"  # no audit judged yet
    TOO_FEW = "too_few"  # the interval holds the target, and too few audits to ever show it met
    UNDECIDED = "undecided"  # the interval holds the target
    BELOW = "below"  # the whole interval lies below the target
    ABOVE = "above"  # the whole interval lies above the target: an alarm


@dataclass(frozen=True)
class LiveEscapeRate:
    """The escape rate of partial automation's own decisions, measured on its blind audits of one
    champion since the threshold it decides at came into force, with its exact interval.

    An audit is a unit the model would have decided alone; it was wrong when the person's latest
    verdict differs from the model's (`blind_judged`), which is what the threshold was certified
    to keep under the target."""

    station_id: int
    model_version: str
    target: float
    since: datetime | None  # when the window starts; None: the champion's first audit
    since_reason: str  # what started it ("the target escape rate changed"); "" with `since` None
    wrong: Proportion  # wrong audits / audits judged

    @property
    def audits_needed(self) -> int:
        """The fewest audits, all right, whose interval shows the target met."""
        return fewest_to_show_below(self.target)

    @property
    def state(self) -> str:
        interval = self.wrong.interval()
        if interval is None:
            return LiveEscapeState.NONE
        low, high = interval
        if low > self.target:
            return LiveEscapeState.ABOVE
        if high < self.target:
            return LiveEscapeState.BELOW
        if self.wrong.total < self.audits_needed:
            return LiveEscapeState.TOO_FEW
        return LiveEscapeState.UNDECIDED

    def text(self) -> str:
        """The estimate in words, as the dashboard shows it and the alarm says it."""
        count, total = self.wrong.count, self.wrong.total
        state = self.state
        if state == LiveEscapeState.NONE:
            return "no audit of partial automation judged yet"
        low, high = self.wrong.interval()
        audits = "audit" if total == 1 else "audits"
        measured = (
            f"{count} of {total} {audits} wrong, {_percent(self.wrong.rate)} %"
            f" ({_percent(low)}–{_percent(high)} %, {_percent(CONFIDENCE)} % interval),"
            f" target {_percent(self.target)} %"
        )
        if state == LiveEscapeState.TOO_FEW:
            return (
                f"{total} {audits}: too few to tell ({measured}; {self.audits_needed} audits without "
                f"an error would show the target met)"
            )
        words = {
            LiveEscapeState.ABOVE: "above target",
            LiveEscapeState.BELOW: "within target",
            LiveEscapeState.UNDECIDED: "not yet conclusive: the interval holds the target",
        }
        return f"{words[state]}: {measured}"

    def as_dict(self) -> dict:
        return {
            "model_version": self.model_version,
            "target": self.target,
            "since": self.since.isoformat() if self.since else None,
            "since_reason": self.since_reason,
            "confidence": CONFIDENCE,
            "audits": self.wrong.total,
            "wrong": self.wrong.as_dict(),
            "audits_needed": self.audits_needed,
            "state": self.state,
            "text": self.text(),
        }


def _percent(share: float) -> str:
    """A share as a percentage to three significant digits: "62.5", "0.11", "0"."""
    return f"{share * 100:.3g}"


@dataclass(frozen=True)
class EscapeWindow:
    """Where a station's live escape rate starts counting: its champion's partial automation
    audits received since `since` (None: since its first)."""

    champion_id: int
    since: datetime | None
    since_reason: str  # "" with `since` None


def escape_windows(*, stations: Sequence[Station]) -> dict[int, EscapeWindow]:
    """Each station's live escape window (stations without a champion have none), in two
    queries whatever the number of stations: the latest change of what fixes the threshold, and
    the latest cleared escape-rate alarm."""
    with_champion = [station for station in stations if station.champion_id is not None]
    if not with_champion:
        return {}
    ids = [station.pk for station in with_champion]
    starts: dict[int, tuple[datetime, str]] = {}

    def later(station_id: int, at: datetime, reason: str) -> None:
        if station_id not in starts or at > starts[station_id][0]:
            starts[station_id] = (at, reason)

    changes = (
        StationChange.objects.filter(station_id__in=ids, field__in=THRESHOLD_FIELDS)
        .values("station_id", "field")
        .annotate(at=Max("changed_at"))
    )
    for row in changes:
        later(row["station_id"], row["at"], THRESHOLD_FIELDS[row["field"]])
    cleared = (
        Alarm.objects.filter(station_id__in=ids, kind=AlarmKind.ESCAPE, status=AlarmStatus.CLEARED)
        .values("station_id")
        .annotate(at=Max("cleared_at"))
    )
    for row in cleared:
        later(row["station_id"], row["at"], ESCAPE_ALARM_CLEARED)
    return {
        station.pk: EscapeWindow(station.champion_id, *starts.get(station.pk, (None, "")))
        for station in with_champion
    }


def partial_audits(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """Partial automation's audits among `units`, annotated with the verdicts (`verdicts_annotated`);
    count them with `partial_audit_counts`."""
    return verdicts_annotated(
        units.filter(queue_reason=QueueReason.AUDIT, automation_level=AutomationLevel.PARTIAL)
    )


def partial_audit_counts() -> dict:
    """Over `partial_audits`: those a person judged (and the model predicted), and those agreed.
    Counted with filters rather than `blind_judged`'s WHERE, which PostgreSQL runs each verdict's
    subquery for twice (to filter, then to compare): 40 % of the time at 8,000 audits."""
    judged = Q(human_verdict__isnull=False, model_verdict__isnull=False)
    return {
        "judged": Count("id", filter=judged),
        "agreed": Count("id", filter=Q(human_verdict=F("model_verdict"))),
    }


def escape_rates_of(
    *, stations: Sequence[Station], windows: dict[int, EscapeWindow], judged: dict[int, Proportion]
) -> dict[int, LiveEscapeRate]:
    """The live escape rates, from each window's audits judged and agreed (`judged`: agreed of
    judged, by station id; absent: none)."""
    rates = {}
    for station in stations:
        window = windows.get(station.pk)
        if window is None:
            continue
        agreed = judged.get(station.pk, Proportion(0, 0))
        rates[station.pk] = LiveEscapeRate(
            station_id=station.pk,
            model_version=f"{station.champion.name}:{station.champion.version}",
            target=station.target_escape_rate,
            since=window.since,
            since_reason=window.since_reason,
            wrong=Proportion(agreed.total - agreed.count, agreed.total),
        )
    return rates


def partial_audits_judged(*, within: Q) -> dict[int, Proportion]:
    """Per station, the partial automation audits among the units `within` that a person judged,
    as agreed of judged: one grouped count, through the `unit_partial_audits` index when `within`
    names the station and deciding model, each audit's human verdict through
    `decision_human_latest`."""
    return {
        row["station_id"]: Proportion(row["agreed"], row["judged"])
        for row in partial_audits(Unit.objects.filter(within))
        .values("station_id")
        .annotate(**partial_audit_counts())
        .order_by()
    }


def escape_rates_live(*, stations: Sequence[Station]) -> dict[int, LiveEscapeRate]:
    """Each station's live escape rate (stations without a champion have none), from the rows in
    three queries whatever the number of stations and units: the windows' starts and one count
    over their audits. (The dashboard reads the same counts from its rollups:
    `dashboard.tallies.escape_rates`.)"""
    windows = escape_windows(stations=stations)
    if not windows:
        return {}
    within = Q()
    for station_id, window in windows.items():
        each = Q(station_id=station_id, deciding_model_id=window.champion_id)
        if window.since is not None:
            each &= Q(received_at__gte=window.since)
        within |= each
    return escape_rates_of(stations=stations, windows=windows, judged=partial_audits_judged(within=within))
