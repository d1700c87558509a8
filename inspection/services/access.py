"""The access trail: who made or revoked a device key, made an account, (de)activated it or
changed its roles, recorded as append-only `AccessChange` rows like a station's changes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from inspection.models import AccessChange, DeviceKey

# An account's fields that give or take access, and its roles (the groups it is in).
ACCOUNT_FIELDS = ("is_active", "is_staff", "is_superuser")


def account_snapshot(*, account: AbstractBaseUser) -> dict[str, Any]:
    """What gives the account access now, read from the database (the roles as stored)."""
    snapshot = {field: getattr(account, field) for field in ACCOUNT_FIELDS}
    snapshot["roles"] = sorted(account.groups.values_list("name", flat=True)) if account.pk else []
    return snapshot


def account_changes_record(
    *, account: AbstractBaseUser, before: dict[str, Any] | None, user, note: str = ""
) -> list[AccessChange]:
    """Record how the saved account differs from `before` (`account_snapshot` taken before the
    change; None for an account just made, recorded as "created" with what it was given)."""
    after = account_snapshot(account=account)
    records = []
    if before is None:
        records.append(
            AccessChange(account=account, changed_by=user, field="created", new_value=account.get_username())
        )
        before = {field: False for field in ACCOUNT_FIELDS} | {"roles": []}
    for field, new in after.items():
        if before.get(field) != new:
            records.append(
                AccessChange(
                    account=account, changed_by=user, field=field, old_value=before.get(field), new_value=new
                )
            )
    for record in records:
        record.note = note[:300]
    return AccessChange.objects.bulk_create(records)


def device_key_change_record(*, key: DeviceKey, field: str, user, note: str = "") -> AccessChange:
    """A device key made ("created", its name) or revoked ("revoked")."""
    old, new = (None, key.name) if field == "created" else (False, True)
    return AccessChange.objects.create(
        device_key=key, changed_by=user, field=field, old_value=old, new_value=new, note=note[:300]
    )
