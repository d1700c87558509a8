"""A supervisor's rollout: shadow -> canary -> champion, rollback step by step through the earlier
champions, MLflow aliases following; the station page's rollout buttons."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from inspection.models import Prediction, Station
from inspection.selectors import model_version_station_figures
from inspection.services.decisions import decision_record
from inspection.services.rollout import (
    challenger_promote,
    challenger_set,
    challenger_to_canary,
    champion_history,
    champion_rollback,
)
from inspection.services.units import unit_submit
from models_registry import mlflow_registry
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db(transaction=True)  # aliases move after commit


def _staff(name: str, role: str) -> User:
    user = person(name, role=role)
    user.is_staff = True
    user.save()
    return user


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


def test_a_second_rollback_steps_further_back_through_the_champions(make_station, registered):
    supervisor = User.objects.create_user("sam")
    first, second, third = registered(), registered(), registered()
    station = make_station(level="partial", champion=first)
    for newer in (second, third):
        challenger_set(station=station, model_version=newer, user=supervisor)
        challenger_promote(station=station, user=supervisor)
    assert champion_history(station=station) == [
        f"loupe-screens:{first.version}",
        f"loupe-screens:{second.version}",
    ]

    # the first rollback returns to the second champion, the next to the first, never back to the third
    champion_rollback(station=station, user=supervisor)
    assert station.champion == second
    champion_rollback(station=station, user=supervisor)
    assert station.champion == first
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": first.version}
    with pytest.raises(ValidationError, match="no earlier champion to roll back to"):
        champion_rollback(station=station, user=supervisor)
    assert station.champion == first

    # a promotion after rolling back is rolled back to where it started
    challenger_set(station=station, model_version=third, user=supervisor)
    challenger_promote(station=station, user=supervisor)
    champion_rollback(station=station, user=supervisor)
    assert station.champion == first and station.challenger is None


def test_the_canary_figures_are_what_it_did_at_the_station(make_station, make_model_version, media_root):
    # given a canary deciding every unit of a fully automated station
    champion, canary = make_model_version("tiny", 1), make_model_version("tiny", 2)
    station = make_station(level="full", champion=champion)
    Station.objects.filter(pk=station.pk).update(challenger=canary, rollout_mode="canary", canary_share=1.0)
    station.refresh_from_db()
    units = [
        unit_submit(station=station, serial=f"SN-{n}", image_data=jpeg_bytes(n), filename=f"{n}.jpg").unit
        for n in range(3)
    ]
    assert all(unit.deciding_model == canary for unit in units)
    # when an inspector overrides one of its decisions
    said = units[0].decisions.get().verdict
    decision_record(
        unit=units[0], user=person("ines", role="inspector"), verdict="pass" if said == "fail" else "fail"
    )

    figures = model_version_station_figures(station=station, model_version=canary)
    assert {key: figures[key] for key in ("predicted", "decided_alone", "compared_with_people")} == {
        "predicted": 3,
        "decided_alone": 3,
        "compared_with_people": 1,
    }
    assert figures["agreement"] == 0.0 and figures["checked_by_people"] == 1
    assert figures["escapes"] == (1 if said == "pass" else 0)
    latencies = sorted(Prediction.objects.filter(model_version=canary).values_list("latency_ms", flat=True))
    assert figures["latency_p50_ms"] == pytest.approx(latencies[1])
    # the champion predicted nothing here
    assert model_version_station_figures(station=station, model_version=champion)["predicted"] == 0


def test_the_rollout_buttons_on_the_station_page(make_station, registered, client):
    first, second, third = registered(), registered(), registered()
    station = make_station(level="partial", champion=first)
    client.force_login(_staff("sam", "supervisor"))
    page_url = f"/admin/inspection/station/{station.pk}/change/"
    url = f"/admin/inspection/station/{station.pk}/rollout/"
    page = client.get(page_url).content.decode()
    assert 'id="rollout"' in page and 'data-step="challenger"' in page and 'data-step="promote"' not in page
    # the champion is not a field of the form: the buttons change it, aliases and all
    assert 'name="champion"' not in page

    # a version in shadow, then a canary at a quarter
    answer = client.post(url, {"step": "challenger", "model_version": second.pk}, follow=True)
    assert f"loupe-screens:{second.version} is the challenger, in shadow" in answer.content.decode()
    assert mlflow_registry.aliases(name="loupe-screens")["screens-1-challenger"] == second.version
    client.post(url, {"step": "canary", "canary_percent": "25"})
    station.refresh_from_db()
    assert (station.challenger, station.rollout_mode, station.canary_share) == (second, "canary", 0.25)

    # bad input is named and changes nothing
    for data, message in (
        (
            {"step": "canary", "canary_percent": "a lot"},
            "the canary share is a percentage above 0 and up to 100, not &#x27;a lot&#x27;",
        ),
        (
            {"step": "canary", "canary_percent": "0"},
            "the canary share is a percentage above 0 and up to 100, not &#x27;0&#x27;",
        ),
        ({"step": "challenger", "model_version": "99999"}, "no model version &#x27;99999&#x27;"),
        ({"step": "challenger", "model_version": first.pk}, "is already the champion of screens-1"),
        (
            {"step": "launch"},
            "unknown rollout step &#x27;launch&#x27; (steps: challenger, canary, promote, rollback)",
        ),
    ):
        answer = client.post(url, data, follow=True)
        assert message in answer.content.decode(), data
    station.refresh_from_db()
    assert (station.champion, station.challenger, station.canary_share) == (first, second, 0.25)

    # promoting first shows the canary's figures beside the champion's, and promotes nothing yet
    confirm = client.post(url, {"step": "promote"})
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "data-rollout-figures" in body and f"Challenger loupe-screens:{second.version}" in body
    assert "Agreement with people" in body and "Escapes found by audits and overrides" in body
    assert "Latency (median / 95th percentile)" in body and 'name="confirmed" value="yes"' in body
    station.refresh_from_db()
    assert station.champion == first
    client.post(url, {"step": "promote", "confirmed": "yes"})
    station.refresh_from_db()
    assert station.champion == second and station.challenger is None
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": second.version}

    # a third version promoted, then two rollbacks step back to the first
    client.post(url, {"step": "challenger", "model_version": third.pk})
    client.post(url, {"step": "promote", "confirmed": "yes"})
    page = client.get(page_url).content.decode()
    assert f"Roll back to loupe-screens:{second.version}" in page
    client.post(url, {"step": "rollback"})
    page = client.get(page_url).content.decode()
    assert f"Roll back to loupe-screens:{first.version}" in page
    client.post(url, {"step": "rollback"})
    station.refresh_from_db()
    assert station.champion == first
    assert mlflow_registry.aliases(name="loupe-screens") == {"screens-1-champion": first.version}
    notes = list(
        station.changes.filter(field="champion").order_by("id").values_list("note", "changed_by__username")
    )
    assert notes[-2:] == [
        (f"rolled back to loupe-screens:{second.version}", "sam"),
        (f"rolled back to loupe-screens:{first.version}", "sam"),
    ]


def test_only_supervisors_press_the_rollout_buttons(make_station, client):
    station = make_station(level="partial")
    client.force_login(_staff("ines", "inspector"))
    answer = client.post(f"/admin/inspection/station/{station.pk}/rollout/", {"step": "rollback"})
    assert answer.status_code == 403
    page = client.get(f"/admin/inspection/station/{station.pk}/change/").content.decode()
    assert 'id="rollout"' not in page
