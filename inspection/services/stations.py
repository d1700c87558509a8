"""Creating stations and device keys (revoking keys); changing a station's settings with an audit
trail; retiring a station."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone

from inspection.enums import AutomationLevel
from inspection.models import DeviceKey, Station, StationChange, StationSettings
from inspection.policy import StationPolicy
from inspection.selectors import EscapeRisk, station_escape_risk
from inspection.services.access import device_key_change_record
from models_registry.models import ModelVersion

# The station's own settings a supervisor changes; each change is recorded as a StationChange.
# The settings of other parts (labeling, training, drift) are in their `StationSettings` rows.
STATION_FIELDS = (
    "name",
    "line",
    "defect_classes",
    "automation_level",
    "target_escape_rate",
    "uncertainty_band",
    "audit_share",
    "champion",
    "challenger",
    "rollout_mode",
    "canary_share",
    "max_image_pixels",
    "webhook_url",
    "webhook_secret",
)
SECRET_FIELDS = {"webhook_secret"}
# The settings the automation policy is made of: changing one is checked against the target.
POLICY_FIELDS = ("automation_level", "target_escape_rate", "uncertainty_band", "audit_share")
# The name the escape-risk refusal is raised under (the admin form's confirmation box).
RISK_CONFIRMATION = "accept_risk"


def settings_owners() -> dict[str, type[StationSettings]]:
    """Each setting kept in a settings row -> the row's model. A name used twice is an error."""
    owners: dict[str, type[StationSettings]] = {}
    for kind in StationSettings.kinds():
        for name in kind.setting_names():
            clash = owners.get(name) or (Station if name in STATION_FIELDS else None)
            if clash is not None:
                raise ImproperlyConfigured(
                    f"station setting {name!r} is declared by both {clash.__name__} and {kind.__name__}"
                )
            owners[name] = kind
    return owners


def audited_fields() -> tuple[str, ...]:
    """Every setting of a station, its own and its settings rows', in the form's order."""
    return (*STATION_FIELDS, *settings_owners())


def station_create(
    *,
    slug: str,
    name: str = "",
    level: str = AutomationLevel.ASSISTED,
    champion: ModelVersion | None = None,
    defect_classes: list[str] | None = None,
    created_by=None,
    **settings: Any,
) -> Station:
    """A new station; its defect classes default to its champion model's."""
    if level not in AutomationLevel.values:
        raise ValidationError(
            f"unknown automation level {level!r} (choose from {', '.join(AutomationLevel.values)})"
        )
    if Station.objects.filter(slug=slug).exists():
        raise ValidationError(f"station {slug!r} already exists")
    owners = settings_owners()
    own = {name: value for name, value in settings.items() if name not in owners}
    station = Station(
        slug=slug,
        name=name or slug.replace("-", " ").capitalize(),
        automation_level=level,
        champion=champion,
        defect_classes=defect_classes
        if defect_classes is not None
        else list(champion.classes if champion else []),
        **own,
    )
    station.full_clean()
    rows = _rows_with(station, {name: v for name, v in settings.items() if name in owners})
    with transaction.atomic():
        station.save()
        for row in rows:
            row.save()
        StationChange.objects.create(
            station=station, changed_by=created_by, field="created", old_value=None, new_value=slug
        )
    return station


def station_update(
    *, station: Station, changes: Mapping[str, Any], user, note: str = "", accepted_risk: str = ""
) -> list[StationChange]:
    """Apply setting changes and record each one (who, when, old -> new). Validates first:
    an invalid change saves nothing.

    A change of the automation policy that lets the champion decide with an error on its
    validation units above the target (`station_policy_risk`) is refused unless `accepted_risk`
    gives the supervisor's reason, which goes into the audit note of every row."""
    owners = settings_owners()
    unknown = sorted(set(changes) - set(STATION_FIELDS) - set(owners))
    if unknown:
        raise ValidationError(f"not a station setting: {', '.join(unknown)}")
    with transaction.atomic():
        locked = Station.objects.select_for_update().get(pk=station.pk)
        before = station_snapshot(station=locked)
        for field, value in changes.items():
            if field not in owners:
                setattr(locked, field, value)
        locked.full_clean()
        rows = _rows_with(locked, {name: v for name, v in changes.items() if name in owners})
        if any(before[field] != getattr(locked, field) for field in POLICY_FIELDS):
            risk = station_policy_risk(station=locked)
            if risk is not None:
                note = _risk_note(note, risk=risk, accepted_risk=accepted_risk)
        locked.save()
        for row in rows:
            row.save()
        return station_changes_record(station=locked, before=before, user=user, note=note)


def station_webhook_secret_rotate(*, station: Station, user) -> str:
    """Give the station a new random webhook secret (audited as "(set)", like any change of it)
    and return it: the caller shows it once, to the one who rotated it; it is never shown again."""
    secret = secrets.token_urlsafe(32)
    station_update(
        station=station, changes={"webhook_secret": secret}, user=user, note="webhook secret rotated"
    )
    return secret


def station_retire(*, station: Station, user, note: str = "") -> StationChange:
    """Retire a station instead of deleting it: it takes no more units (the line gets 410) and
    leaves the inspectors' queues; its units, decisions and changes stay. Recorded as a change."""
    with transaction.atomic():
        locked = Station.objects.select_for_update().get(pk=station.pk)
        if locked.retired:
            raise ValidationError(f"station {locked.slug} is already retired")
        locked.retired_at = timezone.now()
        locked.save(update_fields=["retired_at", "updated_at"])
        station.retired_at = locked.retired_at
        return StationChange.objects.create(
            station=locked,
            changed_by=user,
            field="retired",
            old_value=None,
            new_value=locked.retired_at.isoformat(),
            note=note[:300],
        )


def station_policy_risk(*, station: Station) -> EscapeRisk | None:
    """The escape risk of the station's policy as set on `station` (saved or not): see
    `inspection.selectors.station_escape_risk`."""
    return station_escape_risk(
        station=station,
        policy=StationPolicy(
            level=station.automation_level,
            target_escape_rate=station.target_escape_rate,
            uncertainty_band=station.uncertainty_band,
            audit_share=station.audit_share,
        ),
    )


def _risk_note(note: str, *, risk: EscapeRisk, accepted_risk: str) -> str:
    """The audit note of a risky change the supervisor accepted; refuses one not accepted."""
    reason = accepted_risk.strip()
    if not reason:
        raise ValidationError({RISK_CONFIRMATION: f"{risk.message}: confirm and give a reason to save it"})
    accepted = (
        f"accepted {risk.observed_error:.2%} error on validation above the target "
        f"{risk.target_escape_rate:.2%}: {reason}"
    )
    return (f"{note}; {accepted}" if note else accepted)[:300]


def station_settings_write(*, station: Station, values: Mapping[str, Any]) -> None:
    """Validate and save settings kept in the station's settings rows (the admin form's sections);
    an invalid value saves nothing. Call inside the transaction that saves the station."""
    owners = settings_owners()
    unknown = sorted(set(values) - set(owners))
    if unknown:
        raise ValidationError(f"not a setting of a settings row: {', '.join(unknown)}")
    for row in _rows_with(station, values):
        row.save()


def _rows_with(station: Station, values: Mapping[str, Any]) -> list[StationSettings]:
    """The station's settings rows with `values` set, validated (all of them, before any save)."""
    owners = settings_owners()
    rows = {kind: kind.of(station) for kind in StationSettings.kinds()}
    for name, value in values.items():
        setattr(rows[owners[name]], name, value)
    for row in rows.values():
        row.full_clean(exclude=["station"])
    return list(rows.values())


def station_changes_record(
    *, station: Station, before: Mapping[str, Any], user, note: str = ""
) -> list[StationChange]:
    """Record the difference between `before` (from `station_snapshot`) and the saved station."""
    records = []
    for field in audited_fields():
        old, new = before.get(field), _value(station, field)
        if old == new:
            continue
        if field in SECRET_FIELDS:
            old, new = ("(set)" if old else "(empty)"), ("(set)" if new else "(empty)")
        records.append(
            StationChange(
                station=station, changed_by=user, field=field, old_value=old, new_value=new, note=note
            )
        )
    return StationChange.objects.bulk_create(records)


def station_snapshot(*, station: Station) -> dict[str, Any]:
    return {field: _value(station, field) for field in audited_fields()}


def _value(station: Station, field: str) -> Any:
    if field in ("champion", "challenger"):
        version = getattr(station, field)
        return f"{version.name}:{version.version}" if version is not None else None
    owner = settings_owners().get(field)
    return getattr(owner.of(station) if owner else station, field)


def device_key_create(
    *, station: Station, name: str, created_by=None, note: str = ""
) -> tuple[DeviceKey, str]:
    """A new device key for a station: the row (hashed) and the key itself, shown only once.
    Recorded in the access trail (`created_by` empty: the command line)."""
    if not name.strip():
        raise ValidationError("a device key needs a name (which line computer uses it)")
    with transaction.atomic():
        row, key = DeviceKey.objects.create_key(station=station, name=name.strip())
        device_key_change_record(key=row, field="created", user=created_by, note=note)
    return row, key


def device_key_revoke(*, key: DeviceKey, user, note: str = "") -> DeviceKey:
    """Lock a device key out for good (the line gets 401 "revoked"), recorded in the access trail."""
    with transaction.atomic():
        locked = DeviceKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked:
            raise ValidationError(f"device key {locked.prefix} is already revoked")
        locked.revoked = True
        locked.save(update_fields=["revoked"])
        device_key_change_record(key=locked, field="revoked", user=user, note=note)
    key.revoked = True
    return locked
