"""The dashboard's periods (last hour, day, week) and their time buckets.

A period is a whole number of buckets ending with the bucket that holds `now`: the last hour is
60 one-minute buckets, the last day 96 quarter-hours, the last week 168 hours. The headline
figures cover exactly the buckets the charts draw (from the start of the first bucket to now), so
a chart's bars add up to its tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import NotSupportedError
from django.db.models import BigIntegerField, Func


@dataclass(frozen=True)
class Period:
    name: str
    bucket_seconds: int
    bucket_count: int
    # The latency histograms this period reads: per minute, quarter-hour or hour (see `latency`).
    latency_resolution_seconds: int


PERIODS: dict[str, Period] = {
    "hour": Period("hour", bucket_seconds=60, bucket_count=60, latency_resolution_seconds=60),
    "day": Period("day", bucket_seconds=900, bucket_count=96, latency_resolution_seconds=900),
    "week": Period("week", bucket_seconds=3600, bucket_count=168, latency_resolution_seconds=3600),
}


class UnknownPeriod(ValueError):
    """The message names the accepted periods."""


def period_get(name: str) -> Period:
    try:
        return PERIODS[name]
    except KeyError:
        raise UnknownPeriod(f"period must be one of {', '.join(PERIODS)}, not {name!r}") from None


@dataclass(frozen=True)
class Window:
    """The buckets a period covers at a given moment."""

    period: Period
    now: datetime
    first_bucket: int  # floor(epoch seconds / bucket_seconds) of the first bucket

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.first_bucket * self.period.bucket_seconds, tz=UTC)

    @property
    def hours(self) -> float:
        """The length covered so far (the last bucket is still running); at least a minute."""
        return max((self.now - self.start).total_seconds(), 60.0) / 3600

    @property
    def bucket_starts(self) -> list[int]:
        """Epoch seconds at which each bucket starts, oldest first."""
        width = self.period.bucket_seconds
        return [(self.first_bucket + index) * width for index in range(self.period.bucket_count)]

    def index_of(self, bucket: int) -> int | None:
        """The position of a bucket number in the window, None when outside it."""
        index = bucket - self.first_bucket
        return index if 0 <= index < self.period.bucket_count else None


def window_at(*, period: Period, now: datetime) -> Window:
    last = int(now.timestamp()) // period.bucket_seconds
    return Window(period=period, now=now, first_bucket=last - period.bucket_count + 1)


class EpochBucket(Func):
    """floor(epoch seconds of a datetime column / width): the number of its time bucket, computed
    in the database so that a GROUP BY on it counts per bucket (PostgreSQL and SQLite)."""

    output_field = BigIntegerField()

    def __init__(self, expression, *, seconds: int) -> None:
        super().__init__(expression)
        self.seconds = int(seconds)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.seconds})::bigint", params

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores aware datetimes in SQLite as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]", which
        # strftime('%s') reads; without the fraction, which it would round to the millisecond
        # (59.9996 s is the next minute's).
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(CAST(strftime('%%s', substr({sql}, 1, 19)) AS INTEGER) / {self.seconds})", params

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(
            f"time buckets are written for PostgreSQL and SQLite, not {connection.vendor}"
        )
