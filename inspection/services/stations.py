"""Creating stations and device keys; changing a station's settings with an audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from inspection.enums import AutomationLevel
from inspection.models import DeviceKey, Station, StationChange
from models_registry.models import ModelVersion

# The settings a supervisor changes; each change is recorded as a StationChange.
AUDITED_FIELDS = (
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
    "webhook_url",
    "webhook_secret",
    "label_random_share",
    "retrain_after_labels",
    "retrain_every_hours",
    "gate_coverage_margin",
    "gate_auroc_margin",
    "drift_window",
    "drift_significance",
    "alarm_step_down",
    "alarm_retrain",
)
SECRET_FIELDS = {"webhook_secret"}


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
    station = Station(
        slug=slug,
        name=name or slug.replace("-", " ").capitalize(),
        automation_level=level,
        champion=champion,
        defect_classes=defect_classes
        if defect_classes is not None
        else list(champion.classes if champion else []),
        **settings,
    )
    station.full_clean()
    with transaction.atomic():
        station.save()
        StationChange.objects.create(
            station=station, changed_by=created_by, field="created", old_value=None, new_value=slug
        )
    return station


def station_update(
    *, station: Station, changes: Mapping[str, Any], user, note: str = ""
) -> list[StationChange]:
    """Apply setting changes and record each one (who, when, old -> new). Validates first:
    an invalid change saves nothing."""
    unknown = sorted(set(changes) - set(AUDITED_FIELDS))
    if unknown:
        raise ValidationError(f"not a station setting: {', '.join(unknown)}")
    with transaction.atomic():
        locked = Station.objects.select_for_update().get(pk=station.pk)
        before = {field: _value(locked, field) for field in AUDITED_FIELDS}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.full_clean()
        locked.save()
        return station_changes_record(station=locked, before=before, user=user, note=note)


def station_changes_record(
    *, station: Station, before: Mapping[str, Any], user, note: str = ""
) -> list[StationChange]:
    """Record the difference between `before` (from `station_snapshot`) and the saved station."""
    records = []
    for field in AUDITED_FIELDS:
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
    return {field: _value(station, field) for field in AUDITED_FIELDS}


def _value(station: Station, field: str) -> Any:
    if field in ("champion", "challenger"):
        version = getattr(station, field)
        return f"{version.name}:{version.version}" if version is not None else None
    return getattr(station, field)


def device_key_create(*, station: Station, name: str) -> tuple[DeviceKey, str]:
    """A new device key for a station: the row (hashed) and the key itself, shown only once."""
    if not name.strip():
        raise ValidationError("a device key needs a name (which line computer uses it)")
    return DeviceKey.objects.create_key(station=station, name=name.strip())
