"""What is in play at the stations: model versions and their roles, and the active alarms."""

from __future__ import annotations

from collections.abc import Sequence

from inspection.enums import RolloutMode
from inspection.models import Station
from inspection.supervision.dashboard.figures import VersionCounts
from inspection.supervision.models import ACTIVE_ALARM_STATUSES, Alarm, AlarmStatus
from inspection.supervision.services import alarm_representation
from models_registry.models import ModelVersion


def models_in_play(
    *, stations: Sequence[Station], versions: dict[tuple[int, int], VersionCounts], received: dict[int, int]
) -> dict[int, list[dict]]:
    """Per station id: its champion and challenger (shadow, or canary with its share), then any
    other version that predicted or decided the window's units (e.g. a champion replaced since;
    oldest first), each with the units it predicted and the units it decided alone, and that
    count's share of the units received (`versions` and `received` are the window's, by station
    and version, and by station). One query, for the versions' names."""
    played = {key for key, counts in versions.items() if counts.predicted or counts.decided}
    version_ids = {version_id for _, version_id in played}
    version_ids |= {s.champion_id for s in stations} | {s.challenger_id for s in stations}
    names = ModelVersion.objects.in_bulk([v for v in version_ids if v is not None])

    in_play: dict[int, list[dict]] = {}
    for station in stations:
        roles: dict[int, dict] = {}
        if station.champion_id is not None:
            roles[station.champion_id] = {"role": "champion", "rollout": None, "canary_share": None}
        if station.challenger_id is not None:
            canary = station.rollout_mode == RolloutMode.CANARY
            roles[station.challenger_id] = {
                "role": "challenger",
                "rollout": station.rollout_mode,
                "canary_share": station.canary_share if canary else None,
            }
        for version_id in sorted(v for s, v in played if s == station.pk and v not in roles):
            roles[version_id] = {"role": "earlier", "rollout": None, "canary_share": None}
        rows = []
        for version_id, role in roles.items():
            version = names[version_id]
            counts = versions.get((station.pk, version_id), VersionCounts())
            rows.append(
                {
                    "id": version_id,
                    "model_version": f"{version.name}:{version.version}",
                    **role,
                    "predicted": counts.predicted,
                    "decided": counts.decided,
                    "decided_share": counts.decided / received[station.pk]
                    if received.get(station.pk)
                    else None,
                }
            )
        in_play[station.pk] = rows
    return in_play


def alarms_active(*, station_ids: Sequence[int] | None = None) -> list[dict]:
    """Open alarms first, then acknowledged ones; newest first within each."""
    alarms = Alarm.objects.filter(status__in=ACTIVE_ALARM_STATUSES).select_related(
        "station", "model_version", "acknowledged_by", "cleared_by"
    )
    if station_ids is not None:
        alarms = alarms.filter(station_id__in=station_ids)
    ordered = sorted(
        alarms, key=lambda alarm: (alarm.status != AlarmStatus.OPEN, -alarm.raised_at.timestamp())
    )
    return [alarm_representation(alarm) for alarm in ordered]
