"""Claims: the one way a person takes the next row of a queue to work on it alone.

Units (the inspector's station page), label tasks and reviews (the labeling page) are all claimed
here. A queue's model inherits `Claimable` (the claim's two columns, `claimed_by` and
`claim_expires_at`, and which setting gives its length); its services call these functions;
its claim and release endpoints derive from the two views in `inspection.claims.views`.

- `claim_next(rows, user=...)`: the first of `rows` nobody else holds, claimed by the user until
  now + the model's claim length. A claim is a row lock taken with `SELECT ... FOR UPDATE SKIP
  LOCKED`, so two people asking at the same moment get different rows and neither waits for the
  other; the claim is then written on the row. A row is free when nobody claimed it, when its
  claim ran out (expiry before now), or when the user holds it already (a reloaded page gets its
  row back). On SQLite, which has no row locks, a claim is one write transaction: claims are
  serialized.
- `claim(rows, pk=..., user=...)`: the same for one given row (a person going back to a row
  they skipped): claimed if it is still in `rows` and free, else None.
- `release(row, user=..., status=...)`: give the row back (a skip). Only its claimant can,
  whether or not the claim ran out; False when the user does not hold it, or when the row no
  longer matches the lookups given (it left the queue).
- `held_by_another(row, user=...)` / `check(row, user=..., refuse=...)`: whether someone else's
  claim is live (expires after now), for the write that finishes the work (a decision, a label,
  a review), which then `clear`s the claim; `held_at(now)` counts the live claims of a queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

CLAIM_FIELDS = ("claimed_by", "claim_expires_at")


class ClaimRefused(Exception):
    """A given row cannot be claimed (someone else holds it, or it left the queue); the message
    says which, for the person who asked."""


class Claimable(models.Model):
    """A row one person at a time works on; a claim past its expiry returns it to the queue."""

    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    # The setting that says how many seconds a claim lasts (read at each claim).
    claim_seconds_setting: ClassVar[str]

    class Meta:
        abstract = True


Row = TypeVar("Row", bound=Claimable)


def _first(rows: QuerySet) -> Claimable | None:
    return rows.first()


def free_for(user, now: datetime) -> Q:
    """The rows `user` may claim at `now`: unclaimed, claim run out, or already theirs."""
    return Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=user)


def held_at(now: datetime) -> Q:
    """The rows whose claim is live at `now` (claimed, expiry not before now), for figures."""
    return Q(claimed_by__isnull=False, claim_expires_at__gte=now)


def claim_expiry(model: type[Claimable], now: datetime) -> datetime:
    return now + timedelta(seconds=getattr(settings, model.claim_seconds_setting))


def claim_next(
    rows: QuerySet[Row],
    *,
    user,
    exclude: Iterable[int] = (),
    now: datetime | None = None,
    pick: Callable[[QuerySet[Row]], Row | None] = _first,
) -> Row | None:
    """Claim the first of `rows` (a queue in its order) nobody else holds, skipping the ids in
    `exclude`; `pick` chooses among the free rows when the order is more than one `order_by`.
    None when no row is free."""
    now = now or timezone.now()
    with transaction.atomic():
        free = (
            rows.select_for_update(skip_locked=True, of=("self",))
            .filter(free_for(user, now))
            .exclude(pk__in=list(exclude))
        )
        row = pick(free)
        if row is None:
            return None
        _take(row, user=user, now=now)
    return row


def claim(rows: QuerySet[Row], *, pk: int, user, now: datetime | None = None) -> Row | None:
    """Claim the row `pk` of `rows` for `user`, if nobody else holds it (nor is claiming it at
    this moment: its row lock is skipped, not waited for). None when it is held, or no longer
    one of `rows` (it left the queue)."""
    now = now or timezone.now()
    with transaction.atomic():
        free = rows.select_for_update(skip_locked=True, of=("self",)).filter(free_for(user, now))
        row = free.filter(pk=pk).first()
        if row is None:
            return None
        _take(row, user=user, now=now)
    return row


def _take(row: Claimable, *, user, now: datetime) -> None:
    model = type(row)
    row.claimed_by = user
    row.claim_expires_at = claim_expiry(model, now)
    # A save also refreshes the model's auto_now fields (a task's updated_at).
    touched = [field.name for field in model._meta.concrete_fields if getattr(field, "auto_now", False)]
    row.save(update_fields=[*CLAIM_FIELDS, *touched])


def release(row: Claimable, *, user, **still) -> bool:
    """Give a claimed row back to its queue (skip), if it still matches the lookups `still`
    (e.g. `status="pending"`). Only its claimant can; True if released."""
    released = type(row).objects.filter(pk=row.pk, claimed_by=user, **still)
    return bool(released.update(claimed_by=None, claim_expires_at=None))


def held_by_another(row: Claimable, *, user, now: datetime | None = None) -> bool:
    """Whether someone other than `user` holds a live claim on the row (read it locked)."""
    now = now or timezone.now()
    return (
        row.claimed_by_id not in (None, user.pk)
        and row.claim_expires_at is not None
        and row.claim_expires_at > now
    )


def check(
    row: Claimable, *, user, refuse: Callable[[object], Exception], now: datetime | None = None
) -> None:
    """Raise `refuse(holder)` when someone other than `user` holds a live claim on the row."""
    if held_by_another(row, user=user, now=now):
        raise refuse(row.claimed_by)


def clear(row: Claimable) -> tuple[str, ...]:
    """Drop the row's claim (its work is done); the fields to save."""
    row.claimed_by = None
    row.claim_expires_at = None
    return CLAIM_FIELDS
