"""Keeping the dashboard's rollups: each station's counts per closed minute, quarter-hour, hour and
day, counted from the rows and counted again where the rows changed (docs/operations.md,
"Dashboard rollups").

- **Counted by the queries a window uses on rows** (`figures.counts_tally`, `versions_tally`, per
  minute). Every figure is a count, so a longer block is the sum of the shorter ones it holds.
- **Touched minutes are counted again.** Database triggers (migration 0018) append the minute of
  every unit, prediction or decision event written, changed or removed, in the transaction that
  writes it (a person's verdict on a unit of last week touches that unit's minute and the minute
  of the verdict): `RollupTouch`, a plain append that no writer waits on.
- **A refresh** takes the touches, counts those minutes again and every minute closed since the
  last refresh, and sums again the longer blocks that hold them, in a transaction per six hours
  of new minutes. A change committed while it counts leaves its touch for the next refresh (and
  for the reads meanwhile): counting again is idempotent, so a race costs a recount, never a
  wrong figure.
- **Reads never write** (`tallies`): the rollups for the minutes counted and untouched, the rows
  for the rest. Celery beat refreshes every `workers.schedule.ROLLUPS_REFRESH_SECONDS` so that
  the rest stays a few seconds' worth; `rollups_refresh(rebuild=True)` (`manage.py dashboard_rollups
  --rebuild`) counts everything again from the rows.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from django.db import connection, transaction
from django.db.models import F, Min, Q, Sum
from django.utils import timezone

from inspection.models import DecisionEvent, Unit
from inspection.supervision.dashboard.figures import Counts, Span, counts_tally, versions_tally
from inspection.supervision.dashboard.models import (
    CountsRollup,
    Resolution,
    RollupState,
    RollupTouch,
    VersionRollup,
)
from inspection.supervision.dashboard.proportions import Proportion

MINUTE = Resolution.MINUTE.value
RESOLUTIONS = tuple(resolution.value for resolution in Resolution)  # shortest first
MINUTES_PER_STEP = 360  # new minutes counted by one transaction of a refresh (a first build has many)
MINUTES_PER_PASS = 360  # minutes counted by one pass of queries: bounds a refresh's memory
RUNS_PER_PASS = 200  # runs of touched minutes counted by one pass (an OR of time ranges)
COUNT_FIELDS = (
    "received", "automatic", "deferred", "entered_queue", "judged", "agreed",
    "audits", "audits_wrong", "audits_missed", "decided_by_model", "decided_by_human", "left_queue",
)  # fmt: skip
VERSION_FIELDS = ("predicted", "decided", "audits_judged", "audits_agreed")  # as in VersionCounts


def counts_as_row(counts: Counts) -> dict[str, int]:
    return {
        "received": counts.received,
        "automatic": counts.automatic,
        "deferred": counts.deferred,
        "entered_queue": counts.entered_queue,
        "judged": counts.agreement.total,
        "agreed": counts.agreement.count,
        "audits": counts.audit_wrong.total,
        "audits_wrong": counts.audit_wrong.count,
        "audits_missed": counts.audit_missed.count,
        "decided_by_model": counts.decided_by_model,
        "decided_by_human": counts.decided_by_human,
        "left_queue": counts.left_queue,
    }


def counts_of_row(row: dict[str, int]) -> Counts:
    return Counts(
        received=row["received"],
        automatic=row["automatic"],
        deferred=row["deferred"],
        entered_queue=row["entered_queue"],
        agreement=Proportion(row["agreed"], row["judged"]),
        audit_wrong=Proportion(row["audits_wrong"], row["audits"]),
        audit_missed=Proportion(row["audits_missed"], row["audits"]),
        decided_by_model=row["decided_by_model"],
        decided_by_human=row["decided_by_human"],
        left_queue=row["left_queue"],
    )


def epoch_at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def minute_runs(minutes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted minutes as runs of consecutive ones, (first, last)."""
    runs: list[tuple[int, int]] = []
    for minute in minutes:
        if runs and minute == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], minute)
        else:
            runs.append((minute, minute))
    return runs


def starts_within(ranges: Iterable[tuple[int, int, int]]) -> Q:
    """Rollup rows of the given (resolution, first start, last start) ranges."""
    return reduce(
        operator.or_,
        (Q(resolution=resolution, start__gte=first, start__lte=last) for resolution, first, last in ranges),
    )


@dataclass(frozen=True)
class RollupsRefreshed:
    counted_through: int | None  # the last minute counted (epoch seconds / 60)
    minutes_counted: int  # minutes counted again or for the first time
    touches: int  # touches taken
    skipped: bool = False  # another refresh held the state row: this one did nothing


def rollups_refresh(*, rebuild: bool = False, now: datetime | None = None) -> RollupsRefreshed:
    """Count again the minutes touched since the last refresh, and count every minute closed
    since (every minute from the rows, with `rebuild`), in steps of at most `MINUTES_PER_STEP`
    new minutes, each its own transaction: a first build or a rebuild never holds a transaction
    (nor SQLite's write lock) for long, and the reads meanwhile take the rows after the minutes
    counted so far. One at a time, by the state row's lock: a refresh that finds it held returns
    at once, skipped (the one running counts what there is); a rebuild waits for it."""
    closed_through = int((now or timezone.now()).timestamp()) // MINUTE - 1
    steps = [_refresh_step(closed_through=closed_through, rebuild=rebuild, wait=rebuild)]
    while not steps[-1].skipped and (steps[-1].counted_through or 0) < closed_through:
        steps.append(_refresh_step(closed_through=closed_through, rebuild=False, wait=rebuild))
    return RollupsRefreshed(
        counted_through=steps[-1].counted_through,
        minutes_counted=sum(step.minutes_counted for step in steps),
        touches=sum(step.touches for step in steps),
        skipped=steps[-1].skipped,
    )


def _refresh_step(*, closed_through: int, rebuild: bool, wait: bool) -> RollupsRefreshed:
    with transaction.atomic():
        RollupState.objects.get_or_create(pk=1)
        state = RollupState.objects.select_for_update(skip_locked=not wait).filter(pk=1).first()
        if state is None:
            return RollupsRefreshed(counted_through=None, minutes_counted=0, touches=0, skipped=True)
        touched = _touches_take()
        through = None if rebuild else state.counted_through
        if rebuild:
            CountsRollup.objects.all().delete()
            VersionRollup.objects.all().delete()
        runs = minute_runs(sorted({m for m in touched if through is not None and m <= through}))
        first = _first_minute_with_rows(since=through + 1 if through is not None else None)
        last = closed_through
        if first is not None and first <= closed_through:
            last = min(closed_through, first + MINUTES_PER_STEP - 1)
            runs.append((first, last))
        for batch in _passes(runs):
            _minutes_count(batch)
        _longer_blocks_sum(runs)
        if through is None or last > through:
            state.counted_through = last
        state.refreshed_at = timezone.now()
        state.save(update_fields=["counted_through", "refreshed_at"])
    return RollupsRefreshed(
        counted_through=state.counted_through,
        minutes_counted=sum(last - first + 1 for first, last in runs),
        touches=len(touched),
    )


def _touches_take() -> list[int]:
    """The touched minutes, one per touch, removed in one statement that returns exactly the rows
    it deleted: a touch committed meanwhile stays for the next refresh."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {RollupTouch._meta.db_table} RETURNING minute")
        return [minute for (minute,) in cursor.fetchall()]


def _first_minute_with_rows(*, since: int | None) -> int | None:
    """The minute of the earliest unit received or decision event made from minute `since` on
    (predictions count at their unit's); the minutes before it have nothing to count."""
    units, decisions = Unit.objects.all(), DecisionEvent.objects.all()
    if since is not None:
        units = units.filter(received_at__gte=epoch_at(since * MINUTE))
        decisions = decisions.filter(created_at__gte=epoch_at(since * MINUTE))
    earliest = (units.aggregate(at=Min("received_at"))["at"], decisions.aggregate(at=Min("created_at"))["at"])
    return min((int(at.timestamp()) // MINUTE for at in earliest if at is not None), default=None)


def _passes(runs: Sequence[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """The runs in batches of at most `RUNS_PER_PASS` runs and `MINUTES_PER_PASS` minutes."""
    batch: list[tuple[int, int]] = []
    minutes = 0
    for first, last in runs:
        while first <= last:
            if len(batch) == RUNS_PER_PASS or minutes == MINUTES_PER_PASS:
                yield batch
                batch, minutes = [], 0
            end = min(last, first + MINUTES_PER_PASS - minutes - 1)
            batch.append((first, end))
            minutes += end - first + 1
            first = end + 1
    if batch:
        yield batch


def _minutes_count(runs: Sequence[tuple[int, int]]) -> None:
    """The runs' minutes counted from the rows into minute rollups, replacing what they held."""
    spans = [Span(epoch_at(first * MINUTE), epoch_at((last + 1) * MINUTE)) for first, last in runs]
    counts = counts_tally(spans=spans, station_ids=None, bucket_seconds=MINUTE)
    versions = versions_tally(spans=spans, station_ids=None, bucket_seconds=MINUTE)
    minutes = starts_within((MINUTE, first * MINUTE, last * MINUTE) for first, last in runs)
    CountsRollup.objects.filter(minutes).delete()
    VersionRollup.objects.filter(minutes).delete()
    CountsRollup.objects.bulk_create(
        CountsRollup(station_id=station_id, resolution=MINUTE, start=minute * MINUTE, **counts_as_row(each))
        for (station_id, minute), each in counts.items()
    )
    VersionRollup.objects.bulk_create(
        VersionRollup(
            station_id=station_id,
            resolution=MINUTE,
            start=minute * MINUTE,
            model_version_id=version_id,
            **{name: getattr(each, name) for name in VERSION_FIELDS},
        )
        for (station_id, minute, version_id), each in versions.items()
    )


def _longer_blocks_sum(runs: Sequence[tuple[int, int]]) -> None:
    """Each longer block that holds a minute of the runs, summed again from the blocks one step
    shorter (quarter-hours from minutes, hours from quarter-hours, days from hours)."""
    if not runs:
        return
    for shorter, longer in zip(RESOLUTIONS, RESOLUTIONS[1:], strict=False):
        blocks = _merged(
            (first * MINUTE // longer * longer, last * MINUTE // longer * longer) for first, last in runs
        )
        held = starts_within((longer, first, last) for first, last in blocks)
        parts = starts_within((shorter, first, last + longer - shorter) for first, last in blocks)
        block = F("start") / longer * longer
        for model, keys, names in (
            (CountsRollup, ("station_id",), COUNT_FIELDS),
            (VersionRollup, ("station_id", "model_version_id"), VERSION_FIELDS),
        ):
            model.objects.filter(held).delete()
            sums = (
                model.objects.filter(parts)
                .annotate(block=block)
                .values(*keys, "block")
                .annotate(**{f"total_{name}": Sum(name) for name in names})
                .order_by()
            )
            model.objects.bulk_create(
                model(
                    resolution=longer,
                    start=row["block"],
                    **{key: row[key] for key in keys},
                    **{name: row[f"total_{name}"] for name in names},
                )
                for row in sums
            )


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges of block starts, overlapping or adjacent ones merged (blocks of one length)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged
