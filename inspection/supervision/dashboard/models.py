"""The dashboard's rollups: each station's counts per closed minute, quarter-hour, hour and day,
the minutes whose rows changed since they were counted, and how far they are counted (how they
are kept: `rollups`; how a window reads them: `tallies`; docs/operations.md)."""

from __future__ import annotations

from django.db import models

from inspection.models import Station
from models_registry.models import ModelVersion


class Resolution(models.IntegerChoices):
    """A rollup's length in seconds; each divides the next, so a block of one lies in a single
    block of any longer one."""

    MINUTE = 60, "minute"
    QUARTER = 900, "quarter-hour"
    HOUR = 3600, "hour"
    DAY = 86400, "day"


class CountsRollup(models.Model):
    """`figures.Counts` of one station over one block of time (`start`, epoch seconds, to
    `start + resolution`): units by when they arrived, decision events by when they were made.
    A station with nothing in a block has no row for it."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="+")
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    start = models.BigIntegerField()
    received = models.PositiveIntegerField(default=0)
    automatic = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    entered_queue = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    agreed = models.PositiveIntegerField(default=0)
    audits = models.PositiveIntegerField(default=0)
    audits_wrong = models.PositiveIntegerField(default=0)
    audits_missed = models.PositiveIntegerField(default=0)
    decided_by_model = models.PositiveIntegerField(default=0)
    decided_by_human = models.PositiveIntegerField(default=0)
    left_queue = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resolution", "start", "station"], name="counts_rollup_unique")
        ]


class VersionRollup(models.Model):
    """`figures.VersionCounts` of one model version at one station over one block of time (of the
    units' arrival): what it predicted and decided, and its partial automation audits judged."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="+")
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    start = models.BigIntegerField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    predicted = models.PositiveIntegerField(default=0)
    decided = models.PositiveIntegerField(default=0)
    audits_judged = models.PositiveIntegerField(default=0)
    audits_agreed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "start", "station", "model_version"], name="version_rollup_unique"
            )
        ]


class RollupTouch(models.Model):
    """A minute (epoch seconds / 60) whose counted rows changed: written by database triggers on
    units, predictions and decision events, in the transaction that changes them (migration
    0018). A plain append with no unique key, so concurrent writers never wait on each other; a
    refresh takes them and counts those minutes again."""

    id = models.BigAutoField(primary_key=True)
    minute = models.BigIntegerField()


class RollupState(models.Model):
    """The one row (id 1): every minute up to `counted_through` (epoch seconds / 60) is counted
    into the rollups, but for those touched since. A refresh locks it, so refreshes run one at a
    time."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    counted_through = models.BigIntegerField(null=True)
    refreshed_at = models.DateTimeField(null=True)
