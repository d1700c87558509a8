"""A new model's way in, by a supervisor: challenger in shadow → canary (a share) → champion,
and rollback through the champions before it, one step at a time.

Each step is a settings change of the station, so it is recorded like any other (who, when,
old → new, with the step named in the note), and the MLflow registry aliases follow:
`<station>-champion` and `<station>-challenger` on the registered model of each version.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from inspection.enums import RolloutMode
from inspection.models import Station, StationChange
from inspection.services.stations import station_update
from models_registry import mlflow_registry
from models_registry.models import ModelVersion
from models_registry.selectors import UnknownModel, model_version_get


def champion_alias(station: Station) -> str:
    return f"{station.slug}-champion"


def challenger_alias(station: Station) -> str:
    return f"{station.slug}-challenger"


def challenger_set(*, station: Station, model_version: ModelVersion, user, reason: str = "") -> Station:
    """Make `model_version` the station's challenger, in shadow: it predicts every unit off the
    request path and decides none. `user` is None for an automatic change, whose `reason` (e.g.
    the training job that passed the gate) goes into the audit note."""
    if station.champion_id == model_version.pk:
        raise ValidationError(f"{model_version} is already the champion of {station.slug}")
    previous = station.challenger
    with transaction.atomic():
        station_update(
            station=station,
            changes={"challenger": model_version, "rollout_mode": RolloutMode.SHADOW},
            user=user,
            note=f"challenger in shadow: {reason}" if reason else "challenger in shadow",
        )
        transaction.on_commit(lambda: _move_challenger_alias(station, previous, model_version))
    station.refresh_from_db()
    return station


def challenger_to_canary(*, station: Station, share: float, user) -> Station:
    """Let the challenger decide a sticky `share` of the station's units."""
    if station.challenger_id is None:
        raise ValidationError(f"station {station.slug} has no challenger to put in canary")
    if not 0 < share <= 1:
        raise ValidationError(f"a canary share is between 0 and 1, not {share}")
    station_update(
        station=station,
        changes={"rollout_mode": RolloutMode.CANARY, "canary_share": share},
        user=user,
        note=f"canary at {share:.0%}",
    )
    station.refresh_from_db()
    return station


def challenger_promote(*, station: Station, user) -> Station:
    """The challenger becomes champion; the station has no challenger after."""
    challenger, champion = station.challenger, station.champion
    if challenger is None:
        raise ValidationError(f"station {station.slug} has no challenger to promote")
    with transaction.atomic():
        station_update(
            station=station,
            changes={"champion": challenger, "challenger": None, "rollout_mode": RolloutMode.SHADOW},
            user=user,
            note="challenger promoted to champion",
        )
        transaction.on_commit(lambda: _aliases_follow(station, challenger, None, champion))
    station.refresh_from_db()
    return station


ROLLBACK_NOTE = "rolled back to"


def champion_history(*, station: Station) -> list[str]:
    """The station's earlier champions, oldest first, as `name:version`: the last is where a
    rollback goes. Replays the audited champion changes: a change pushes the champion it replaced,
    a rollback pops the one it returned to, so a second rollback steps further back instead of
    returning to the model just rolled back from."""
    history: list[str] = []
    changes = StationChange.objects.filter(station=station, field="champion").order_by("changed_at", "id")
    for change in changes:
        if change.note.startswith(ROLLBACK_NOTE):
            if history and history[-1] == change.new_value:
                history.pop()
        elif change.old_value is not None:
            history.append(change.old_value)
    return history


def champion_rollback(*, station: Station, user) -> Station:
    """Back to the champion before the current one, walking the history one step per rollback."""
    with transaction.atomic():
        locked = Station.objects.select_for_update().get(pk=station.pk)
        history = champion_history(station=locked)
        if not history:
            raise ValidationError(f"station {station.slug} has had no earlier champion to roll back to")
        try:
            previous = model_version_get(reference=history[-1])
        except UnknownModel as error:
            raise ValidationError(f"the earlier champion {history[-1]} is gone: {error}") from error
        if previous.pk == locked.champion_id:
            raise ValidationError(f"{previous} is already the champion of {station.slug}")
        current, challenger = locked.champion, locked.challenger
        station_update(
            station=locked,
            changes={"champion": previous, "challenger": None, "rollout_mode": RolloutMode.SHADOW},
            user=user,
            note=f"{ROLLBACK_NOTE} {previous.name}:{previous.version}",
        )
        transaction.on_commit(lambda: _aliases_follow(station, previous, None, current, challenger))
    station.refresh_from_db()
    return station


def _move_challenger_alias(station: Station, previous: ModelVersion | None, new: ModelVersion) -> None:
    if previous is not None and previous.name != new.name:
        mlflow_registry.alias_delete(name=previous.name, alias=challenger_alias(station))
    mlflow_registry.alias_set(name=new.name, alias=challenger_alias(station), version=new.version)


def _aliases_follow(
    station: Station,
    champion: ModelVersion | None,
    challenger: ModelVersion | None,
    *earlier: ModelVersion | None,
) -> None:
    """The registry as the station now is: `<station>-champion` on its champion, `<station>-
    challenger` on its challenger (none without one), and neither left on the registered models of
    the `earlier` versions the step replaced."""
    involved = {v.name: v for v in (*earlier, champion, challenger) if v is not None}
    for name in involved:
        if champion is None or name != champion.name:
            mlflow_registry.alias_delete(name=name, alias=champion_alias(station))
        if challenger is None or name != challenger.name:
            mlflow_registry.alias_delete(name=name, alias=challenger_alias(station))
    if champion is not None:
        mlflow_registry.alias_set(name=champion.name, alias=champion_alias(station), version=champion.version)
    if challenger is not None:
        mlflow_registry.alias_set(
            name=challenger.name, alias=challenger_alias(station), version=challenger.version
        )
