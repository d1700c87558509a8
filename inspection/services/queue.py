"""The human queue: inspectors claim pending units one at a time, oldest first.

The claim itself (row locks, expiry, who may give a unit back) is `inspection.claims`, shared
with the labeling queues; here is the inspector's queue: a station's pending units, oldest
first. An inspector who walks away gives the unit back when the claim (`LOUPE_CLAIM_SECONDS`)
runs out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from inspection import claims
from inspection.enums import UnitStatus
from inspection.models import DecisionEvent, Station, Unit


def unit_claim_next(
    *, station: Station, user, exclude: Iterable[int] = (), now: datetime | None = None
) -> Unit | None:
    """Claim the oldest pending unit of the station nobody else holds (the user's own claims,
    e.g. after a page reload, come back to them), skipping `exclude`. None when the queue is empty
    or the station is retired (its queue is closed)."""
    if station.retired:
        return None
    pending = Unit.objects.filter(station=station, status=UnitStatus.PENDING).order_by("received_at", "id")
    return claims.claim_next(pending, user=user, exclude=exclude, now=now)


class UnitUnavailable(claims.ClaimRefused):
    """A unit the inspector asked for cannot be claimed; the message says why."""


def unit_claim(*, unit: Unit, user, now: datetime | None = None) -> Unit:
    """Claim this pending unit for the user (an inspector going back to a unit they skipped).
    Raises `UnitUnavailable` when it was decided meanwhile, another inspector holds it, or its
    station is retired."""
    pending = Unit.objects.filter(
        station_id=unit.station_id, station__retired_at__isnull=True, status=UnitStatus.PENDING
    )
    claimed = claims.claim(pending, pk=unit.pk, user=user, now=now)
    if claimed is not None:
        return claimed
    unit = Unit.objects.select_related("claimed_by", "station").get(pk=unit.pk)
    if unit.station.retired:
        raise UnitUnavailable(f"station {unit.station.slug} is retired: its queue is closed")
    if unit.status != UnitStatus.PENDING:
        raise UnitUnavailable(f"{unit.serial} was decided meanwhile: nothing left to judge")
    if claims.held_by_another(unit, user=user, now=now):
        raise UnitUnavailable(f"{unit.serial} is being judged by {unit.claimed_by.get_username()}")
    # Its row was locked by another claim at this very moment (skipped, not waited for).
    raise UnitUnavailable(f"{unit.serial} was just taken by another inspector")


def unit_claim_release(*, unit: Unit, user) -> bool:
    """Give a claimed unit back to the queue (skip). Only its claimant can; True if released."""
    return claims.release(unit, user=user, status=UnitStatus.PENDING)


@dataclass(frozen=True)
class QueueStats:
    pending: int
    unclaimed: int
    oldest_pending_seconds: float | None


def queue_stats(*, station: Station, now: datetime | None = None) -> QueueStats:
    now = now or timezone.now()
    figures = Unit.objects.filter(station=station, status=UnitStatus.PENDING).aggregate(
        pending=Count("id"),
        claimed=Count("id", filter=claims.held_at(now)),
        oldest=Min("received_at"),
    )
    oldest = figures["oldest"]
    return QueueStats(
        pending=figures["pending"],
        unclaimed=figures["pending"] - figures["claimed"],
        oldest_pending_seconds=(now - oldest).total_seconds() if oldest else None,
    )


@dataclass(frozen=True)
class ShiftStats:
    decisions: int
    per_hour: float | None
    since: datetime | None


def inspector_shift_stats(*, user, station: Station | None = None, now: datetime | None = None) -> ShiftStats:
    """The person's decisions over the shift (the last `LOUPE_SHIFT_HOURS`), and their pace
    from their first decision in it."""
    now = now or timezone.now()
    decisions = DecisionEvent.objects.filter(
        decided_by_user=user, created_at__gte=now - timedelta(hours=settings.LOUPE_SHIFT_HOURS)
    )
    if station is not None:
        decisions = decisions.filter(unit__station=station)
    count = decisions.count()
    if count == 0:
        return ShiftStats(0, None, None)
    first = decisions.aggregate(first=Min("created_at"))["first"]
    hours = max((now - first).total_seconds() / 3600, 1 / 60)  # at least a minute
    return ShiftStats(count, count / hours, first)
