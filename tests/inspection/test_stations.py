"""Stations and device keys from the command line; supervisors' settings changes, audited."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from inspection.models import Station, StationChange, StationSettings
from inspection.roles import INSPECTOR, SUPERVISOR
from inspection.services.stations import settings_owners, station_create, station_update
from inspection.supervision.models import DriftSettings
from labeling.models import LabelingSettings
from tests.inspection.factories import jpeg_bytes, upload
from workers.models import TrainingSettings

pytestmark = pytest.mark.django_db


def test_create_station_and_a_device_key_that_works(make_model_version):
    make_model_version()
    out = StringIO()
    call_command("create_station", "screens-2", "--level", "partial", "--model", "tiny:1", stdout=out)
    assert "station screens-2 created: level partial, champion tiny v1" in out.getvalue()
    station = Station.objects.get(slug="screens-2")
    assert station.defect_classes == ["crack", "scratch"]
    assert StationChange.objects.get(station=station).field == "created"

    out = StringIO()
    call_command("create_device_key", "screens-2", "--name", "line pc 1", stdout=out, stderr=StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.post(
        "/api/v1/units/", {"image": upload(jpeg_bytes()), "serial": "S1"}, format="multipart"
    )
    assert response.status_code == 201
    # the key is stored hashed, never in the clear
    assert key not in str(list(station.device_keys.values()))


def test_command_errors_name_the_problem(make_model_version):
    with pytest.raises(CommandError, match="no registered model 'nope'"):
        call_command("create_station", "s1", "--model", "nope", stdout=StringIO())
    make_model_version()
    call_command("create_station", "s1", stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_station", "s1", stdout=StringIO())
    with pytest.raises(CommandError, match="no station 'elsewhere' \\(stations: s1\\)"):
        call_command("create_device_key", "elsewhere", stdout=StringIO(), stderr=StringIO())


def test_station_update_records_who_changed_what(make_station, make_model_version):
    # a champion that certifies no threshold: partial automation sends every unit to a person
    station = make_station(level="assisted", champion=make_model_version(threshold=None))
    supervisor = User.objects.create_user("sam")
    changes = station_update(
        station=station, changes={"automation_level": "partial", "audit_share": 0.05}, user=supervisor
    )
    assert {(c.field, c.old_value, c.new_value) for c in changes} == {
        ("automation_level", "assisted", "partial"),
        ("audit_share", 0.0, 0.05),
    }
    assert all(c.changed_by == supervisor for c in changes)


def test_an_invalid_update_saves_nothing(make_station, make_model_version):
    station = make_station(level="assisted")
    with pytest.raises(ValidationError):
        station_update(station=station, changes={"automation_level": "full", "audit_share": 1.5}, user=None)
    with pytest.raises(ValidationError, match="another model version"):
        station_update(station=station, changes={"challenger": station.champion}, user=None)
    with pytest.raises(ValidationError, match="secret"):
        station_update(station=station, changes={"webhook_url": "https://line.example/hook"}, user=None)
    station.refresh_from_db()
    assert station.automation_level == "assisted" and station.challenger is None
    assert StationChange.objects.filter(station=station).exclude(field="created").count() == 0


def test_the_camera_frame_limit_is_a_station_setting_under_the_servers_ceiling(
    make_station, client, settings
):
    # given a station at the default (a 12 MP camera with a third to spare)
    station = make_station(level="assisted")
    assert station.max_image_pixels == 16_000_000
    # a supervisor sees it where station settings are edited
    client.force_login(_staff("sam", SUPERVISOR))
    page = client.get(f"/admin/inspection/station/{station.pk}/change/").content.decode()
    assert "Camera" in page and 'name="max_image_pixels"' in page
    # a change is audited like the others
    supervisor = User.objects.get(username="sam")
    changes = station_update(station=station, changes={"max_image_pixels": 1920 * 1080}, user=supervisor)
    assert [(c.field, c.old_value, c.new_value) for c in changes] == [
        ("max_image_pixels", 16_000_000, 2_073_600)
    ]
    # and it cannot pass the server's ceiling, LOUPE_MAX_IMAGE_PIXELS
    settings.LOUPE_MAX_IMAGE_PIXELS = 20_000_000
    with pytest.raises(ValidationError, match="at most 20,000,000 pixels"):
        station_update(station=station, changes={"max_image_pixels": 24_000_000}, user=supervisor)
    station.refresh_from_db()
    assert station.max_image_pixels == 2_073_600


def test_the_settings_of_other_parts_are_kept_in_their_own_rows(make_model_version):
    station = station_create(
        slug="rows-1",
        champion=make_model_version(),
        drift_window=50,
        label_random_share=0.2,
        retrain_after_labels=7,
    )

    assert DriftSettings.objects.get(station=station).drift_window == 50
    assert LabelingSettings.objects.get(station=station).label_random_share == 0.2
    training = TrainingSettings.objects.get(station=station)
    assert (training.retrain_after_labels, training.retrain_every_hours) == (7, 0)
    assert not any(
        hasattr(Station, name) for name in ("drift_window", "label_random_share", "retrain_after_labels")
    )


def test_a_setting_of_a_row_is_changed_and_audited_as_the_station_own_are(make_station, make_model_version):
    station = make_station(level="assisted", champion=make_model_version(threshold=None))
    supervisor = User.objects.create_user("sam")

    changes = station_update(
        station=station,
        changes={"automation_level": "partial", "drift_window": 300, "gate_auroc_margin": 0.05},
        user=supervisor,
        note="night shift",
    )

    assert {(c.field, c.old_value, c.new_value, c.note) for c in changes} == {
        ("automation_level", "assisted", "partial", "night shift"),
        ("drift_window", 200, 300, "night shift"),
        ("gate_auroc_margin", 0.0, 0.05, "night shift"),
    }
    assert DriftSettings.objects.get(station=station).drift_window == 300
    assert TrainingSettings.objects.get(station=station).gate_auroc_margin == 0.05


def test_an_invalid_setting_of_a_row_saves_nothing_of_the_station(make_station):
    station = make_station(level="assisted")

    with pytest.raises(ValidationError, match="drift_window"):
        station_update(station=station, changes={"automation_level": "full", "drift_window": 5}, user=None)
    with pytest.raises(ValidationError, match="not a station setting: drift_windw"):
        station_update(station=station, changes={"drift_windw": 300}, user=None)

    station.refresh_from_db()
    assert station.automation_level == "assisted"
    assert DriftSettings.objects.get(station=station).drift_window == 200
    assert StationChange.objects.filter(station=station).exclude(field="created").count() == 0


def test_a_station_without_its_rows_reads_the_defaults_and_a_change_stores_the_row():
    station = Station.objects.create(slug="bare", name="Bare")  # as a fixture or the shell would

    assert DriftSettings.of(station).drift_window == 200
    assert LabelingSettings.of(station).label_random_share == 0.05
    assert not LabelingSettings.objects.filter(station=station).exists()

    [change] = station_update(station=station, changes={"label_random_share": 0.3}, user=None)

    assert (change.field, change.old_value, change.new_value) == ("label_random_share", 0.05, 0.3)
    assert LabelingSettings.objects.get(station=station).label_random_share == 0.3


def test_a_setting_declared_by_two_parts_is_an_error(monkeypatch):
    class Twice(DriftSettings):
        class Meta:
            abstract = True

    monkeypatch.setattr(StationSettings, "kinds", staticmethod(lambda: [DriftSettings, Twice]))

    with pytest.raises(
        ImproperlyConfigured, match="'drift_window' is declared by both DriftSettings and Twice"
    ):
        settings_owners()


def test_the_line_path_reads_the_settings_rows_in_the_device_key_query(
    make_station, device_client, media_root
):
    station = make_station(level="full", label_random_share=0.0)
    client = device_client(station)

    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/units/",
            {"serial": "row-1", "image": upload(jpeg_bytes(1, width=1280, height=720))},
            format="multipart",
        )

    assert response.status_code == 201, response.content
    reads = [q["sql"] for q in queries.captured_queries if "labeling_labelingsettings" in q["sql"]]
    assert len(reads) == 1 and "inspection_devicekey" in reads[0]


def _staff(name: str, role: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def test_a_supervisor_changes_settings_in_the_admin_and_the_change_is_shown(make_station, client):
    station = make_station(level="assisted")
    client.force_login(_staff("sam", SUPERVISOR))
    url = f"/admin/inspection/station/{station.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    # the audit share is said to apply to partial automation as well as full
    text = page.content.decode()
    assert "in partial and in full automation: the live measure of its escape rate" in text
    assert "at partial automation, the live check of the escape rate its threshold was certified" in text
    form = {
        "name": station.name,
        "line": "",
        "defect_classes": "crack\nscratch",
        "automation_level": "full",
        "target_escape_rate": "0.02",
        "uncertainty_band": "0.0",
        "audit_share": "0.05",
        "champion": station.champion_id,
        "challenger": "",
        "rollout_mode": "shadow",
        "canary_share": "0.1",
        "max_image_pixels": "16000000",
        "label_random_share": "0.05",
        "retrain_after_labels": "100",
        "retrain_every_hours": "0",
        "gate_coverage_margin": "0.0",
        "gate_auroc_margin": "0.0",
        "drift_window": "200",
        "drift_significance": "0.01",
        "alarm_step_down": "on",
        "webhook_url": "",
        "webhook_secret": "",
        "device_keys-TOTAL_FORMS": "0",
        "device_keys-INITIAL_FORMS": "0",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }
    # the tiny champion errs on 6 of its 8 validation units: full automation asks for a reason
    refused = client.post(url, form)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert errors["accept_risk"] == [
        "at full automation the champion tiny:1 would decide 95.0% of units alone with an error of "
        "75.00% on its validation units, above the target escape rate 2.00%: tick to confirm you accept it"
    ]
    assert errors["risk_reason"] == ["give the reason for accepting an error above the target"]
    assert "tick to confirm you accept it" in refused.content.decode()
    station.refresh_from_db()
    assert station.automation_level == "assisted" and not station.changes.exclude(field="created").exists()

    reason = "rework stock, rechecked by hand"
    response = client.post(url, {**form, "accept_risk": "on", "risk_reason": reason})
    assert response.status_code == 302, response.context["adminform"].form.errors
    changes = {
        (c.field, str(c.old_value), str(c.new_value), c.changed_by.username, c.note)
        for c in station.changes.exclude(field="created")
    }
    note = f"admin; accepted 75.00% error on validation above the target 2.00%: {reason}"
    assert ("automation_level", "assisted", "full", "sam", note) in changes
    assert ("audit_share", "0.0", "0.05", "sam", note) in changes
    assert ("target_escape_rate", "0.01", "0.02", "sam", note) in changes
    # and the history is on the station's page
    page = client.get(url).content.decode()
    assert "Change history" in page and "automation_level" in page


def test_the_training_settings_are_changed_in_the_admin_and_audited(make_station, client):
    station = make_station(level="assisted")
    client.force_login(_staff("sam", SUPERVISOR))
    url = f"/admin/inspection/station/{station.pk}/change/"
    page = client.get(url).content.decode()
    assert "Labeling" in page and "Training" in page and 'name="retrain_after_labels"' in page
    training = TrainingSettings.of(station)
    form = {
        "name": station.name,
        "line": station.line,
        "defect_classes": "crack\nscratch",
        "automation_level": station.automation_level,
        "target_escape_rate": str(station.target_escape_rate),
        "uncertainty_band": str(station.uncertainty_band),
        "audit_share": str(station.audit_share),
        "champion": station.champion_id,
        "challenger": "",
        "rollout_mode": station.rollout_mode,
        "canary_share": str(station.canary_share),
        "max_image_pixels": str(station.max_image_pixels),
        "label_random_share": str(LabelingSettings.of(station).label_random_share),
        "retrain_after_labels": "250",
        "retrain_every_hours": str(training.retrain_every_hours),
        "gate_coverage_margin": str(training.gate_coverage_margin),
        "gate_auroc_margin": str(training.gate_auroc_margin),
        "drift_window": str(DriftSettings.of(station).drift_window),
        "drift_significance": str(DriftSettings.of(station).drift_significance),
        "alarm_step_down": "on",
        "webhook_url": "",
        "webhook_secret": "",
        "device_keys-TOTAL_FORMS": "0",
        "device_keys-INITIAL_FORMS": "0",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert TrainingSettings.objects.get(station=station).retrain_after_labels == 250
    change = station.changes.exclude(field="created").get()  # that one setting, nothing else
    assert (change.field, change.old_value, change.new_value) == ("retrain_after_labels", 100, 250)
    assert (change.changed_by.username, change.note) == ("sam", "admin")


def test_an_inspector_cannot_change_station_settings(make_station, client):
    station = make_station(level="assisted")
    client.force_login(_staff("ines", INSPECTOR))
    url = f"/admin/inspection/station/{station.pk}/change/"
    response = client.post(url, {"automation_level": "full"})
    assert response.status_code == 403
    station.refresh_from_db()
    assert station.automation_level == "assisted"


def test_the_roles_exist_with_their_permissions():
    supervisor = Group.objects.get(name=SUPERVISOR)
    inspector = Group.objects.get(name=INSPECTOR)
    assert supervisor.permissions.filter(codename="change_station").exists()
    assert inspector.permissions.filter(codename="decide_unit").exists()
    assert not inspector.permissions.filter(codename="change_station").exists()


def test_a_level_change_applies_to_the_next_unit(make_station, device_client):
    station = make_station(level="full")
    client = device_client(station)
    first = client.post("/api/v1/units/", {"image": upload(jpeg_bytes()), "serial": "S1"}, format="multipart")
    assert first.json()["status"] == "decided"
    station_update(station=station, changes={"automation_level": "human"}, user=None)
    second = client.post(
        "/api/v1/units/", {"image": upload(jpeg_bytes()), "serial": "S2"}, format="multipart"
    )
    assert second.json()["status"] == "pending" and second.json()["automation_level"] == "human"


def _champion_with_validation(make_model_version, settings, *, wrong: int, name: str = "scored"):
    """A champion certified at confidence 0.5 whose 200 validation units are all at 0.9, `wrong`
    of them judged wrongly: at partial or full automation it decides them all."""
    from pathlib import Path

    import numpy as np

    from models_registry.ml.serving.bundle import save_reference

    champion = make_model_version(name, 1, threshold=0.5)
    correct = np.ones(200, bool)
    correct[:wrong] = False
    save_reference(
        Path(settings.LOUPE_MODEL_CACHE) / name / "1",
        confidence=np.full(200, 0.9),
        correct=correct,
        known=np.ones(200, bool),
        defect_probability=np.where(correct, 0.1, 0.9),
    )
    return champion


def test_a_level_whose_error_on_validation_is_above_the_target_needs_a_reason(
    make_station, make_model_version, settings
):
    # given a champion wrong on 6 of its 200 validation units (3 %), and a 1 % target
    champion = _champion_with_validation(make_model_version, settings, wrong=6)
    station = make_station(level="assisted", champion=champion, target_escape_rate=0.01)
    supervisor = User.objects.create_user("sam")

    # when the supervisor asks for partial automation without a reason: refused, nothing saved
    with pytest.raises(ValidationError) as refused:
        station_update(station=station, changes={"automation_level": "partial"}, user=supervisor)
    assert refused.value.message_dict == {
        "accept_risk": [
            "at partial automation the champion scored:1 would decide 100.0% of units alone with an "
            "error of 3.00% on its validation units, above the target escape rate 1.00%: confirm and "
            "give a reason to save it"
        ]
    }
    with pytest.raises(ValidationError, match="confirm and give a reason"):
        station_update(
            station=station, changes={"automation_level": "full"}, user=supervisor, accepted_risk="  "
        )
    station.refresh_from_db()
    assert station.automation_level == "assisted"
    assert not StationChange.objects.filter(station=station).exclude(field="created").exists()

    # with a reason: saved, the reason and the accepted error in the audit row
    [change] = station_update(
        station=station,
        changes={"automation_level": "partial"},
        user=supervisor,
        note="api",
        accepted_risk="line 3 is stopped for the week; trial on the rework stock",
    )
    assert (change.field, change.new_value) == ("automation_level", "partial")
    assert change.note == (
        "api; accepted 3.00% error on validation above the target 1.00%: "
        "line 3 is stopped for the week; trial on the rework stock"
    )

    # a looser target the champion meets needs no reason; a stricter one again does
    [change] = station_update(station=station, changes={"target_escape_rate": 0.05}, user=supervisor)
    assert change.note == ""
    with pytest.raises(ValidationError, match="above the target escape rate 2.00%"):
        station_update(station=station, changes={"target_escape_rate": 0.02}, user=supervisor)
    # and a change that leaves the policy alone is not asked about
    station_update(station=station, changes={"line": "line 3"}, user=supervisor)


def test_a_champion_within_the_target_changes_level_freely(make_station, make_model_version, settings):
    champion = _champion_with_validation(make_model_version, settings, wrong=1, name="scored-well")  # 0.5 %
    station = make_station(level="assisted", champion=champion, target_escape_rate=0.01)
    [change] = station_update(station=station, changes={"automation_level": "full"}, user=None)
    assert (change.new_value, change.note) == ("full", "")
