"""Drift checks on real predictions: quiet on the units the model was validated on, an alarm on a
lighting change that steps the level down (audited, naming the alarm) and tells the pages."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from inspection.enums import AutomationLevel
from inspection.services.decisions import decision_record
from inspection.services.units import unit_submit
from inspection.supervision import services as alarm_services
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus, DriftCheck
from inspection.supervision.services import AlarmFinding, alarm_acknowledge, alarm_clear, alarms_raise
from models_registry.ml.drift import STATISTICS
from models_registry.services import model_reference_get
from tests.inspection.factories import person
from workers.drift_checks import drift_checks_due, drift_checks_sweep, station_drift_check
from workers.models import TrainingJob

pytestmark = pytest.mark.django_db

WINDOW = 20
LABELS = ("no_defect", "crack", "scratch")  # the tiny model's validation mix


def _post(station, count: int, *, seed: int, brightness: float = 1.0) -> list:
    """Units like the tiny model's validation data (160 x 90), under a lighting multiplier."""
    from io import BytesIO

    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit

    units = []
    config = SyntheticConfig(width=160, height=90, brightness=brightness)
    for index in range(count):
        unit = generate_unit(np.random.default_rng([seed, index]), config, label=LABELS[index % 3])
        buffer = BytesIO()
        unit.image.convert("RGB").save(buffer, "JPEG", quality=90)
        submission = unit_submit(
            station=station, serial=f"{seed}-{index}", image_data=buffer.getvalue(), filename="unit.jpg"
        )
        units.append(submission.unit)
    return units


@pytest.fixture
def published(monkeypatch) -> list[dict]:
    """The events the alarm services hand to the station's subscribers."""
    sent: list[dict] = []

    def capture(*, station_slug: str, events: list[dict]) -> None:
        sent.extend(events)

    monkeypatch.setattr(alarm_services, "station_event_publish", capture)
    return sent


def test_every_model_version_keeps_a_reference_from_its_validation_data(make_model_version):
    reference, arrays = model_reference_get(model_version=make_model_version())
    assert reference is not None and reference.size == 8  # the tiny model's validation units
    assert set(reference.statistics) == set(STATISTICS)
    assert reference.embeddings.shape == (8, 32)  # the summary serving stores per unit
    assert 0.0 < reference.statistics["brightness"].mean() < 1.0
    assert len(arrays["defect_probability"]) == 8 and arrays["verdict_correct"].dtype == bool


def test_a_window_like_the_validation_data_raises_nothing(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW)
    _post(station, WINDOW - 1, seed=101)
    assert drift_checks_due() == []  # a window is not full yet
    _post(station, 1, seed=102)
    assert drift_checks_due() == [station]
    (check,) = station_drift_check(station=station)
    assert not check.shifted and check.window_size == WINDOW
    assert {t["kind"] for t in check.tests} >= {"input_drift", "embedding_drift", "score_shift"}
    assert station_drift_check(station=station) == []  # nothing new: no second check of it
    assert not Alarm.objects.exists()
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.FULL


def test_a_lighting_change_raises_an_alarm_that_steps_the_level_down(
    make_station, media_root, published, django_capture_on_commit_callbacks
):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW)
    _post(station, WINDOW, seed=201)
    _post(station, WINDOW, seed=202, brightness=0.45)  # the hall's lights dimmed
    with django_capture_on_commit_callbacks(execute=True):
        first, second = station_drift_check(station=station)
    assert not first.shifted and second.shifted
    alarms = list(Alarm.objects.order_by("id"))
    alarm = Alarm.objects.get(kind=AlarmKind.INPUT)  # darker units may look new to the backbone too
    assert (alarm.status, alarm.drift_check) == (AlarmStatus.OPEN, second)
    assert "brightness" in alarm.summary and alarm.model_version == station.champion
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.PARTIAL  # one notch, however many alarms
    change = station.changes.get(field="automation_level")
    assert (change.old_value, change.new_value, change.changed_by) == ("full", "partial", None)
    assert change.alarm == alarms[0]
    assert all(f"alarm {a.pk} (" in change.note for a in alarms)
    assert all(a.actions == ["automation level full -> partial"] for a in alarms)
    raised = [e["alarm"]["id"] for e in published if e["type"] == "alarm.raised"]
    assert raised == [a.pk for a in alarms]
    level_event = {
        "type": "station.changed",
        "station": station.slug,
        "changes": {"automation_level": "partial"},
        "alarm": alarms[0].pk,
    }
    assert level_event in published

    # The same shift again counts on the open alarm and steps nothing further down.
    _post(station, WINDOW, seed=203, brightness=0.45)
    (third,) = station_drift_check(station=station)
    assert third.shifted
    alarm.refresh_from_db()
    assert alarm.times_seen == 2 and Alarm.objects.count() == len(alarms)
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.PARTIAL


def test_step_down_goes_partial_to_assisted_and_stops_there(make_station, media_root):
    station = make_station(level=AutomationLevel.PARTIAL)
    alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.SCORE, "less sure")])
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.ASSISTED
    alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.EMBEDDING, "new units")])
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.ASSISTED  # humans decide already
    assert station.changes.filter(field="automation_level").count() == 1


def test_a_station_can_keep_its_level_on_alarms(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, alarm_step_down=False)
    outcome = alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "darker")])
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.FULL and outcome.level_change is None
    assert outcome.raised[0].actions == []


def test_an_alarm_can_start_retraining(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW, alarm_retrain=True)
    inspector = person("ines")
    judged = _post(station, 6, seed=301)
    for unit in judged:  # overrides are labels too
        decision_record(unit=unit, user=inspector, verdict="pass")
    _post(station, WINDOW - 6, seed=302)
    _post(station, WINDOW, seed=303, brightness=0.45)
    station_drift_check(station=station)
    job = TrainingJob.objects.get(station=station)
    assert job.trigger == "drift"
    for alarm in Alarm.objects.all():
        assert alarm.actions == ["automation level full -> partial", f"training job {job.pk} queued"]


def test_retraining_without_labels_is_noted_on_the_alarm(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW, alarm_retrain=True)
    _post(station, WINDOW, seed=401, brightness=0.45)
    station_drift_check(station=station)
    alarm = Alarm.objects.get(kind=AlarmKind.INPUT)
    assert alarm.actions[-1] == "retraining not started: the station has no labelled units yet"
    assert not TrainingJob.objects.exists()


def test_blind_audits_that_disagree_raise_an_agreement_alarm(make_station, make_model_version, media_root):
    # A champion that was right on each of its validation units (the tiny one was not).
    champion = make_model_version(name="right-on-validation")
    reference_path = Path(champion.source_uri) / "reference.npz"
    with np.load(reference_path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["verdict_correct"][:] = True
    np.savez_compressed(reference_path, **arrays)
    station = make_station(
        level=AutomationLevel.FULL, champion=champion, drift_window=WINDOW, audit_share=1.0
    )
    inspector = person("ines")
    units = _post(station, WINDOW, seed=501)
    for unit in units:  # every unit is audited blind; the inspector contradicts the model each time
        model_verdict = unit.predictions.get().verdict
        verdict = "pass" if model_verdict == "fail" else "fail"
        decision_record(
            unit=unit, user=inspector, verdict=verdict, defect_classes=[] if verdict == "pass" else ["crack"]
        )
    (check,) = station_drift_check(station=station)
    agreement = next(t for t in check.tests if t["kind"] == "audit_agreement")
    assert agreement["statistic"] == 0.0 and agreement["detail"]["judged"] == WINDOW
    assert agreement["shifted"]
    assert Alarm.objects.filter(kind=AlarmKind.AGREEMENT).exists()


def test_supervisors_acknowledge_then_clear_and_a_new_shift_raises_a_new_alarm(make_station, media_root):
    station = make_station(level=AutomationLevel.ASSISTED)
    supervisor = person("sam", role="supervisor")
    (alarm,) = alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "darker")]).raised
    alarm_acknowledge(alarm=alarm, user=supervisor)
    alarm.refresh_from_db()
    assert (alarm.status, alarm.acknowledged_by) == (AlarmStatus.ACKNOWLEDGED, supervisor)
    with pytest.raises(ValidationError, match="not open"):
        alarm_acknowledge(alarm=alarm, user=supervisor)
    # still active: the same kind counts on it
    alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "darker")])
    alarm.refresh_from_db()
    assert alarm.times_seen == 2
    alarm_clear(alarm=alarm, user=supervisor, note="new lamps fitted, retrained")
    alarm.refresh_from_db()
    assert (alarm.status, alarm.cleared_by, alarm.note) == (
        AlarmStatus.CLEARED,
        supervisor,
        "new lamps fitted, retrained",
    )
    with pytest.raises(ValidationError, match="already cleared"):
        alarm_clear(alarm=alarm, user=supervisor)
    (again,) = alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "darker")]).raised
    assert again.pk != alarm.pk and Alarm.objects.filter(status=AlarmStatus.OPEN).count() == 1


def test_a_window_is_checked_once_even_by_two_runs(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW)
    _post(station, WINDOW, seed=601)
    assert len(station_drift_check(station=station)) == 1
    # a second run that raced the first finds the window taken (unique per window)
    assert station_drift_check(station=station) == []
    assert DriftCheck.objects.count() == 1


def test_the_beat_sweep_queues_checks_that_a_real_worker_runs(make_station, live_celery_worker):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW)
    _post(station, WINDOW, seed=701, brightness=0.45)
    assert drift_checks_sweep() == [station.pk]
    deadline = time.monotonic() + 60
    while not DriftCheck.objects.filter(station=station).exists():
        assert time.monotonic() < deadline, live_celery_worker.log_path.read_text()[-3000:]
        time.sleep(0.2)
    check = DriftCheck.objects.get(station=station)
    assert check.shifted and Alarm.objects.filter(station=station, kind=AlarmKind.INPUT).exists()
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.PARTIAL


def test_a_photograph_posted_again_counts_once_in_a_window(make_station, media_root):
    station = make_station(level=AutomationLevel.FULL, drift_window=WINDOW)
    units = _post(station, WINDOW // 2, seed=801)
    for unit in units:  # the same photographs again, as a line retrying without idempotency keys would
        with unit.image.open("rb") as image:
            unit_submit(
                station=station, serial=f"{unit.serial}-again", image_data=image.read(), filename="unit.jpg"
            )
    assert station_drift_check(station=station) == []  # 20 units, 10 photographs: no full window yet
    more = _post(station, WINDOW // 2, seed=802)
    (check,) = station_drift_check(station=station)
    assert check.window_size == WINDOW and (check.first_unit_id, check.last_unit_id) == (
        units[0].pk,
        more[-1].pk,
    )


def test_a_stream_of_repeats_is_checked_on_its_distinct_photographs(make_station, media_root, monkeypatch):
    from workers import drift_checks

    monkeypatch.setattr(drift_checks, "MAX_SCAN_WINDOWS", 2)  # scan at most 2 x 25 units for a window
    station = make_station(level=AutomationLevel.FULL, drift_window=25)
    units = _post(station, 20, seed=901)
    repeats = []
    for index in range(30):  # a simulator cycling through its pool of 20 images
        with units[index % 20].image.open("rb") as image:
            submission = unit_submit(
                station=station, serial=f"again-{index}", image_data=image.read(), filename="u.jpg"
            )
        repeats.append(submission.unit)
        if index == 28:
            assert station_drift_check(station=station) == []  # 49 scanned: still waiting for more
    (check,) = station_drift_check(station=station)  # 50 scanned, 20 distinct: checked on those
    assert check.window_size == 20 and check.last_unit_id == repeats[-1].pk
