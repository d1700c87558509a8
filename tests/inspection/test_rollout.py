"""A supervisor's rollout: shadow -> canary -> champion, one-step rollback, MLflow aliases following."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from inspection.services.rollout import (
    challenger_promote,
    challenger_set,
    challenger_to_canary,
    champion_rollback,
)
from models_registry import mlflow_registry
from models_registry.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)  # aliases move after commit


@pytest.fixture
def registered(tiny_bundle):
    """Register the tiny bundle in MLflow as the next version of `name`, mirrored as a row."""

    def register(name: str = "loupe-screens") -> ModelVersion:
        with mlflow_registry.training_run(run_name=f"{name}-test") as run:
            run.log_artifacts(tiny_bundle, mlflow_registry.MODEL_ARTIFACT_PATH)
        version = mlflow_registry.register_model(run_id=run.run_id, name=name)
        return ModelVersion.objects.create(
            name=version.name,
            version=version.version,
            mlflow_run_id=version.run_id,
            source_uri=version.source,
            architecture="defectnet-efficientnet_lite0-64",
            classes=["crack", "scratch"],
        )

    return register


def test_shadow_canary_champion_and_back(make_station, registered):
    supervisor = User.objects.create_user("sam")
    first, second = registered(), registered()
    station = make_station(level="partial", champion=first)

    # a challenger in shadow: predicted off the request path, aliased as the station's challenger
    challenger_set(station=station, model_version=second, user=supervisor)
    assert station.challenger == second and station.rollout_mode == "shadow"
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-challenger": second.version}

    # canary: a sticky quarter of the units
    challenger_to_canary(station=station, share=0.25, user=supervisor)
    assert station.rollout_mode == "canary" and station.canary_share == 0.25

    # promoted: the challenger is the champion, the alias follows, no challenger is left
    challenger_promote(station=station, user=supervisor)
    assert station.champion == second and station.challenger is None and station.rollout_mode == "shadow"
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": second.version}

    # rolled back one step: the earlier champion again
    champion_rollback(station=station, user=supervisor)
    assert station.champion == first
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": first.version}

    # every step is an audited change with its name
    notes = list(station.changes.exclude(field="created").order_by("id").values_list("field", "note"))
    assert ("challenger", "challenger in shadow") in notes
    assert ("rollout_mode", "canary at 25%") in notes
    assert ("champion", "challenger promoted to champion") in notes
    assert ("champion", f"rolled back to loupe-screens:{first.version}") in notes
    assert all(change.changed_by == supervisor for change in station.changes.exclude(field="created"))


def test_rollout_steps_refuse_what_makes_no_sense(make_station, make_model_version):
    station = make_station(level="partial")
    with pytest.raises(ValidationError, match="no challenger to promote"):
        challenger_promote(station=station, user=None)
    with pytest.raises(ValidationError, match="no challenger to put in canary"):
        challenger_to_canary(station=station, share=0.1, user=None)
    with pytest.raises(ValidationError, match="no earlier champion"):
        champion_rollback(station=station, user=None)
    with pytest.raises(ValidationError, match="already the champion"):
        challenger_set(station=station, model_version=station.champion, user=None)


def test_the_admin_promotes_and_rolls_back(make_station, registered, client):
    from django.contrib.auth.models import Group

    from inspection.roles import SUPERVISOR

    first, second = registered(), registered()
    station = make_station(level="partial", champion=first)
    station.challenger = second
    station.save()
    supervisor = User.objects.create_user("sam", is_staff=True)
    supervisor.groups.add(Group.objects.get(name=SUPERVISOR))
    client.force_login(supervisor)
    url = "/admin/inspection/station/"
    client.post(url, {"action": "challenger_champion", "_selected_action": [station.pk]})
    station.refresh_from_db()
    assert station.champion == second
    client.post(url, {"action": "champion_back", "_selected_action": [station.pk]})
    station.refresh_from_db()
    assert station.champion == first
