"""The human queue: inspectors claim pending units one at a time, oldest first.

A claim is a row lock taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so two inspectors asking at
the same moment get different units and neither waits for the other. The claim is written on the
unit with an expiry: an inspector who walks away gives the unit back to the queue when it runs
out. (On SQLite, which has no row locks, a claim is one write transaction: claims are serialized.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from inspection.enums import UnitStatus
from inspection.models import DecisionEvent, Station, Unit


def unit_claim_next(
    *, station: Station, user, exclude: Iterable[int] = (), now: datetime | None = None
) -> Unit | None:
    """Claim the oldest pending unit of the station nobody else holds (the user's own claims,
    e.g. after a page reload, come back to them), skipping `exclude`. None when the queue is empty."""
    now = now or timezone.now()
    with transaction.atomic():
        unit = (
            Unit.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(station=station, status=UnitStatus.PENDING)
            .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=user))
            .exclude(pk__in=list(exclude))
            .order_by("received_at", "id")
            .first()
        )
        if unit is None:
            return None
        unit.claimed_by = user
        unit.claim_expires_at = now + timedelta(seconds=settings.LOUPE_CLAIM_SECONDS)
        unit.save(update_fields=["claimed_by", "claim_expires_at"])
    return unit


def unit_claim_release(*, unit: Unit, user) -> bool:
    """Give a claimed unit back to the queue (skip). Only its claimant can; True if released."""
    released = Unit.objects.filter(pk=unit.pk, claimed_by=user, status=UnitStatus.PENDING).update(
        claimed_by=None, claim_expires_at=None
    )
    return bool(released)


@dataclass(frozen=True)
class QueueStats:
    pending: int
    unclaimed: int
    oldest_pending_seconds: float | None


def queue_stats(*, station: Station, now: datetime | None = None) -> QueueStats:
    now = now or timezone.now()
    figures = Unit.objects.filter(station=station, status=UnitStatus.PENDING).aggregate(
        pending=Count("id"),
        claimed=Count("id", filter=Q(claimed_by__isnull=False, claim_expires_at__gte=now)),
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
