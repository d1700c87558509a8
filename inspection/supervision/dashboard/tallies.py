"""Reading a window's counts, the model versions' and the live escape rates: from the rollups
where they hold the minutes (`rollups`), from the rows for the rest, in the report's one snapshot.

A read covers its time with the longest rollup blocks that fit (`cover`): days, hours,
quarter-hours, minutes, each lying in a single bucket of the period. Those hold every minute up
to `counted_through` as the last refresh counted it; where a minute was touched since, its stale
minute row is taken away and the rows of that minute counted instead (a longer block is the sum
of its minutes as they were counted, so the difference is exact). The rows also give what is
not counted yet: the minutes since the last refresh, the part of a minute before a window's
start. With no rollups (`ROWS_ONLY`) the same functions read every row: today's queries, which
the rollup path must always equal (tests and `bench/dashboard.py` compare them).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

from django.db.models import F, Q, Sum

from inspection.models import Station
from inspection.supervision.dashboard.figures import (
    Counts,
    Span,
    Tally,
    VersionCounts,
    WindowCounts,
    counts_tally,
    pending_now,
    versions_tally,
    window_counts_of,
)
from inspection.supervision.dashboard.models import CountsRollup, RollupState, RollupTouch, VersionRollup
from inspection.supervision.dashboard.periods import Window
from inspection.supervision.dashboard.proportions import Proportion
from inspection.supervision.dashboard.rollups import (
    COUNT_FIELDS,
    MINUTE,
    RESOLUTIONS,
    VERSION_FIELDS,
    counts_of_row,
    epoch_at,
    minute_runs,
    starts_within,
)
from inspection.supervision.selectors import (
    LiveEscapeRate,
    escape_rates_of,
    escape_windows,
    partial_audits_judged,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECONDS_PER_MINUTE = 60_000_000


@dataclass(frozen=True)
class RollupView:
    """What the rollups hold as this transaction sees them: every minute up to `counted_through`
    (epoch seconds / 60; None: nothing), but for the `touched` ones."""

    counted_through: int | None
    touched: frozenset[int]


ROWS_ONLY = RollupView(counted_through=None, touched=frozenset())


def rollup_view() -> RollupView:
    """The rollups' state and the touched minutes they hold, in two queries (a scan of the
    touches, which the refreshes keep few)."""
    through = RollupState.objects.filter(pk=1).values_list("counted_through", flat=True).first()
    if through is None:
        return ROWS_ONLY
    touched = RollupTouch.objects.filter(minute__lte=through).values_list("minute", flat=True).distinct()
    return RollupView(counted_through=through, touched=frozenset(touched))


@dataclass(frozen=True)
class Cover:
    """A stretch of time as rollup rows to add (`blocks`: resolution, first start, last start),
    stale minute rows inside them to take away (`stale`: their starts) and spans of rows to
    count (never empty: at least what follows the rollups)."""

    blocks: list[tuple[int, int, int]]
    stale: list[int]
    spans: list[Span]

    def added(self) -> Q | None:
        return starts_within(self.blocks) if self.blocks else None

    def removed(self) -> Q | None:
        return Q(resolution=MINUTE, start__in=self.stale) if self.stale else None


def cover(
    view: RollupView,
    *,
    start: datetime | None,
    end: datetime | None,
    end_included: bool,
    resolutions: Sequence[int],
) -> Cover:
    """From `start` (None: the beginning) to `end` (None: no end): the whole minutes from the
    first after `start` up to the minute that holds `end` or the last counted, whichever is
    earlier, from rollup blocks of the given resolutions; the rest from rows."""
    whole = _minute_ceiling(start) if start is not None else 0
    if view.counted_through is None:
        until = whole
    else:
        until = (view.counted_through + 1) * MINUTE
        if end is not None:
            until = min(until, _minute_floor(end))
    if until <= whole:
        return Cover(blocks=[], stale=[], spans=[Span(start, end, end_included)])
    stale = sorted(minute for minute in view.touched if whole <= minute * MINUTE < until)
    spans = [Span(start, epoch_at(whole))] if start is None or start < epoch_at(whole) else []
    spans += [
        Span(epoch_at(first * MINUTE), epoch_at((last + 1) * MINUTE)) for first, last in minute_runs(stale)
    ]
    spans.append(Span(epoch_at(until), end, end_included))
    return Cover(
        blocks=_blocks(whole, until, sorted(resolutions)),
        stale=[minute * MINUTE for minute in stale],
        spans=spans,
    )


def _minute_floor(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1) // MICROSECONDS_PER_MINUTE * MINUTE


def _minute_ceiling(at: datetime) -> int:
    return -(-((at - EPOCH) // timedelta(microseconds=1)) // MICROSECONDS_PER_MINUTE) * MINUTE


def _blocks(first: int, end: int, resolutions: list[int]) -> list[tuple[int, int, int]]:
    """[first, end) (epoch seconds, whole minutes) as aligned blocks, the longest that fit: a range
    of the longest resolution in the middle, shorter ones at the edges."""
    if first >= end:
        return []
    *shorter, longest = resolutions
    low, high = -(-first // longest) * longest, end // longest * longest
    if low >= high:
        return _blocks(first, end, shorter)
    return [*_blocks(first, low, shorter), (longest, low, high - longest), *_blocks(high, end, shorter)]


def _rollup_sums(
    model, *, added: Q | None, removed: Q | None, keys: dict, names: Sequence[str]
) -> dict[tuple, list[int]]:
    """The rollup rows of `added` less those of `removed`, summed per key (field names, or
    expressions under their names), each as a list of `names`' totals."""
    sums: dict[tuple, list[int]] = {}
    for condition, sign in ((added, 1), (removed, -1)):
        if condition is None:
            continue
        rows = (
            model.objects.filter(condition)
            .annotate(**{name: value for name, value in keys.items() if not isinstance(value, str)})
            .values(*keys)
            .annotate(**{f"total_{name}": Sum(name) for name in names})
            .order_by()
        )
        for row in rows:
            totals = sums.setdefault(tuple(row[key] for key in keys), [0] * len(names))
            for index, name in enumerate(names):
                totals[index] += sign * row[f"total_{name}"]
    return sums


@dataclass
class WindowTally:
    counts: WindowCounts
    versions: dict[tuple[int, int], VersionCounts]  # (station id, model version id) over the window


def window_tally(*, window: Window, station_ids: Sequence[int] | None, view: RollupView) -> WindowTally:
    """The window's counts per station and bucket with the queue now, and what each model
    version did there: whatever the rows, two rollup sums (four with touched minutes), six grouped
    queries on the rows the rollups do not hold and one on the queue."""
    width = window.period.bucket_seconds
    span = cover(
        view,
        start=window.start,
        end=window.now,
        end_included=True,
        resolutions=[resolution for resolution in RESOLUTIONS if width % resolution == 0],
    )
    stations = Q() if station_ids is None else Q(station_id__in=station_ids)
    added = stations & span.added() if span.blocks else None
    removed = stations & span.removed() if span.stale else None

    tally: Tally = {}
    for key, totals in _rollup_sums(
        CountsRollup,
        added=added,
        removed=removed,
        keys={"station_id": "station_id", "bucket": F("start") / width},
        names=COUNT_FIELDS,
    ).items():
        tally.setdefault(key, Counts()).add(counts_of_row(dict(zip(COUNT_FIELDS, totals, strict=True))))
    for key, counts in counts_tally(spans=span.spans, station_ids=station_ids, bucket_seconds=width).items():
        tally.setdefault(key, Counts()).add(counts)

    versions: dict[tuple[int, int], VersionCounts] = {}
    for key, totals in _rollup_sums(
        VersionRollup,
        added=added,
        removed=removed,
        keys={"station_id": "station_id", "model_version_id": "model_version_id"},
        names=VERSION_FIELDS,
    ).items():
        versions.setdefault(key, VersionCounts()).add(VersionCounts(*totals))
    for (station_id, _, version_id), counts in versions_tally(
        spans=span.spans, station_ids=station_ids, bucket_seconds=width
    ).items():
        versions.setdefault((station_id, version_id), VersionCounts()).add(counts)
    counts = window_counts_of(window=window, tally=tally, pending=pending_now(station_ids))
    return WindowTally(counts=counts, versions=versions)


def escape_rates(*, stations: Sequence[Station], view: RollupView) -> dict[int, LiveEscapeRate]:
    """Partial automation's live escape rates (`selectors.escape_rates_live`), each over its own
    window from its start to now: whatever the rows, the windows' two queries, two rollup sums
    (three with touched minutes) and one count of the audits the rollups do not hold."""
    windows = escape_windows(stations=stations)
    if not windows:
        return {}
    covers = {
        station_id: cover(view, start=window.since, end=None, end_included=False, resolutions=RESOLUTIONS)
        for station_id, window in windows.items()
    }

    def each_station(part) -> Q | None:
        conditions = [
            Q(station_id=station_id, model_version_id=window.champion_id) & part(covers[station_id])
            for station_id, window in windows.items()
            if part(covers[station_id]) is not None
        ]
        return reduce(operator.or_, conditions) if conditions else None

    judged: dict[int, Proportion] = {}
    for (station_id,), (count_judged, count_agreed) in _rollup_sums(
        VersionRollup,
        added=each_station(Cover.added),
        removed=each_station(Cover.removed),
        keys={"station_id": "station_id"},
        names=("audits_judged", "audits_agreed"),
    ).items():
        judged[station_id] = Proportion(count_agreed, count_judged)
    rows = reduce(
        operator.or_,
        (
            Q(station_id=station_id, deciding_model_id=window.champion_id)
            & reduce(operator.or_, (span.q("received_at") for span in covers[station_id].spans))
            for station_id, window in windows.items()
        ),
    )
    for station_id, agreed in partial_audits_judged(within=rows).items():
        judged[station_id] = judged.get(station_id, Proportion(0, 0)) + agreed
    return escape_rates_of(stations=stations, windows=windows, judged=judged)
