"""What is in play at the stations: model versions and their roles, and the active alarms."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Count

from inspection.enums import RolloutMode
from inspection.models import Prediction, Station
from inspection.supervision.dashboard.figures import automatic_decisions_of, units_in
from inspection.supervision.dashboard.periods import Window
from inspection.supervision.models import ACTIVE_ALARM_STATUSES, Alarm, AlarmStatus
from inspection.supervision.services import alarm_representation
from models_registry.models import ModelVersion


def models_in_play(*, window: Window, stations: Sequence[Station]) -> dict[int, list[dict]]:
    """Per station id: its champion and challenger (shadow, or canary with its share), then any
    other version that predicted the window's units (e.g. a champion replaced since), each with
    the units it predicted and the units it decided alone, and that count's share of the units
    received. Two grouped queries whatever the number of stations."""
    station_ids = [station.pk for station in stations]
    predicted: dict[tuple[int, int], int] = defaultdict(int)
    for row in (
        Prediction.objects.filter(unit__in=units_in(window, station_ids))
        .values("unit__station_id", "model_version_id")
        .annotate(count=Count("id"))
    ):
        predicted[(row["unit__station_id"], row["model_version_id"])] += row["count"]
    decided: dict[tuple[int, int], int] = {}
    for row in (
        automatic_decisions_of(window, station_ids)
        .values("unit__station_id", "decided_by_model_id")
        .annotate(count=Count("unit_id", distinct=True))
    ):
        decided[(row["unit__station_id"], row["decided_by_model_id"])] = row["count"]
    received = dict(
        units_in(window, station_ids)
        .values("station_id")
        .annotate(count=Count("id"))
        .values_list("station_id", "count")
    )
    version_ids = {version_id for _, version_id in (*predicted, *decided)}
    version_ids |= {s.champion_id for s in stations} | {s.challenger_id for s in stations}
    versions = ModelVersion.objects.in_bulk([v for v in version_ids if v is not None])

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
        seen = [v for (s, v) in (*predicted, *decided) if s == station.pk and v not in roles]
        for version_id in dict.fromkeys(seen):
            roles[version_id] = {"role": "earlier", "rollout": None, "canary_share": None}
        rows = []
        for version_id, role in roles.items():
            version = versions[version_id]
            units_decided = decided.get((station.pk, version_id), 0)
            rows.append(
                {
                    "id": version_id,
                    "model_version": f"{version.name}:{version.version}",
                    **role,
                    "predicted": predicted.get((station.pk, version_id), 0),
                    "decided": units_decided,
                    "decided_share": units_decided / received[station.pk]
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
