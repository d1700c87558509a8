"""Partial automation's certified bound, checked live: a share of the units it would decide alone
goes blind to a person, each verdict measures an escape, and the estimate with its exact interval
is held against the target, raising an escape-rate alarm (with the step-down) once the whole
interval lies above it. Units stream through the line API as 1280x720 frames; people judge the
audits through `decision_record`, and the check runs as the task it queues."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from inspection.enums import AutomationLevel, QueueReason
from inspection.models import Prediction, StationChange, Unit
from inspection.services.decisions import decision_record
from inspection.services.stations import station_update
from inspection.supervision.dashboard.proportions import Proportion, fewest_to_show_below
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from inspection.supervision.selectors import (
    ESCAPE_ALARM_CLEARED,
    LiveEscapeState,
    escape_rates_live,
    verdicts_annotated,
)
from inspection.supervision.services import alarm_clear
from tests.inspection.factories import jpeg_bytes, person, signed_in, upload
from tests.inspection.supervision.dashboard_rows import automatic, judged_blind, model_version
from workers.tasks import escape_rate_check_task

pytestmark = pytest.mark.django_db

TARGET = 0.1  # 36 audits without an error show it met: a stream of a few dozen units tells
FRAMES = [jpeg_bytes(seed, width=1280, height=720) for seed in range(4)]


@pytest.fixture
def partial_station(make_station):
    """Partial automation whose certified threshold every prediction reaches, half of those audited."""
    return make_station(level=AutomationLevel.PARTIAL, target_escape_rate=TARGET, audit_share=0.5)


class Stream:
    """The line posting units, and an inspector judging each audit as it comes, wrong (against the
    model) with the stream's true error rate; the escape-rate checks the verdicts queued run."""

    def __init__(self, station, device_client, monkeypatch, *, error_rate: float, seed: int):
        self.station = station
        self.device = device_client(station)
        self.inspector = person("ines")
        self.rng = np.random.default_rng(seed)
        self.error_rate = error_rate
        self.serials = 0
        self.audits = self.wrong = 0
        self.history: list[tuple[int, int, int]] = []  # after each verdict: audits, wrong, alarms
        self.queued: list[tuple] = []
        monkeypatch.setattr(
            "inspection.services.decisions.task_enqueue", lambda *args, what: self.queued.append(args)
        )

    def post(self) -> dict:
        self.serials += 1
        frame = FRAMES[self.serials % len(FRAMES)]
        response = self.device.post(
            "/api/v1/units/", {"serial": f"SN-{self.serials:05d}", "image": upload(frame)}, format="multipart"
        )
        assert response.status_code == 201, response.content
        return response.json()

    def judge(self, unit_id: int, django_capture_on_commit_callbacks) -> None:
        unit = Unit.objects.select_related("station").get(pk=unit_id)
        model = Prediction.objects.get(unit=unit).verdict
        wrong = bool(self.rng.random() < self.error_rate)
        verdict = ("pass" if model == "fail" else "fail") if wrong else model
        with django_capture_on_commit_callbacks(execute=True):
            decision_record(unit=unit, user=self.inspector, verdict=verdict)
        self.audits += 1
        self.wrong += wrong
        for task, *arguments in self.queued:
            assert task == "workers.tasks.escape_rate_check"
            escape_rate_check_task(*arguments)
        self.queued.clear()
        self.history.append((self.audits, self.wrong, Alarm.objects.count()))

    def run(self, units: int, django_capture_on_commit_callbacks) -> list[dict]:
        bodies = []
        for _ in range(units):
            body = self.post()
            bodies.append(body)
            if body["status"] == "pending" and body.get("queue_reason") == QueueReason.AUDIT:
                self.judge(body["id"], django_capture_on_commit_callbacks)
        return bodies


def live(station):
    return escape_rates_live(stations=[station])[station.pk]


def test_a_stream_wrong_more_often_than_the_target_raises_one_alarm_and_steps_down(
    partial_station, device_client, monkeypatch, django_capture_on_commit_callbacks, media_root
):
    # given a partial automation station, and a model wrong on 35 % of the units it decides alone
    stream = Stream(partial_station, device_client, monkeypatch, error_rate=0.35, seed=1)
    # when the line posts units and a person judges each audit as it arrives
    bodies = stream.run(60, django_capture_on_commit_callbacks)
    # then about half the units were audits sent blind, the rest decided by the model alone
    audits = [b for b in bodies if b.get("queue_reason") == "audit"]
    decided = [b for b in bodies if b["status"] == "decided" and b.get("decided_by") == "model"]
    assert audits and decided and all(b.get("score") is None for b in audits)
    assert {Unit.objects.get(pk=b["id"]).blind for b in audits} == {True}
    routing = Unit.objects.get(pk=audits[0]["id"]).routing
    assert routing["queue_reason"] == "audit" and routing["audit_draw"] < 0.5
    assert routing["required_confidence"] == 0.0  # the threshold it would have been decided at
    # and one escape-rate alarm was raised, at the first verdict that put the whole interval above
    above = [Proportion(k, n).interval()[0] > TARGET for n, k, _ in stream.history]
    first_above = above.index(True)
    assert [alarms for _, _, alarms in stream.history] == [0] * first_above + [1] * (
        len(stream.history) - first_above
    )
    alarm = Alarm.objects.get()
    assert (alarm.kind, alarm.status) == (AlarmKind.ESCAPE, AlarmStatus.OPEN)
    assert alarm.detail["audits"] == stream.history[first_above][0]
    assert alarm.detail["wrong"]["low"] > TARGET and alarm.detail["state"] == LiveEscapeState.ABOVE
    assert alarm.summary.startswith("partial automation's escape rate is above target: ")
    # with the step-down: partial -> assisted, an audited change by no one naming the alarm
    partial_station.refresh_from_db()
    assert partial_station.automation_level == AutomationLevel.ASSISTED
    change = StationChange.objects.get(field="automation_level")
    assert (change.old_value, change.new_value, change.changed_by, change.alarm) == (
        "partial",
        "assisted",
        None,
        alarm,
    )
    assert alarm.actions == ["automation level partial -> assisted"]
    # and after it no unit is automated or audited any more; the estimate counts every verdict
    raised_by = Unit.objects.filter(queue_reason="audit").order_by("pk")[first_above]
    after = [b for b in bodies if b["id"] > raised_by.pk]
    assert after and all(b.get("queue_reason") == "assisted" for b in after)
    estimate = live(partial_station)
    assert (estimate.wrong.count, estimate.wrong.total) == (stream.wrong, stream.audits)
    assert estimate.state == LiveEscapeState.ABOVE and estimate.wrong.interval()[0] > TARGET


def test_a_verdict_after_the_alarm_counts_on_it_instead_of_raising_another(
    partial_station, device_client, monkeypatch, django_capture_on_commit_callbacks, media_root
):
    stream = Stream(partial_station, device_client, monkeypatch, error_rate=1.0, seed=0)
    # given audits judged wrong until the alarm went off (and stepped the level down)
    while not Alarm.objects.exists():
        stream.run(1, django_capture_on_commit_callbacks)
    partial_station.refresh_from_db()
    assert partial_station.automation_level == AutomationLevel.ASSISTED
    # when a supervisor sets partial automation again and more audits are judged wrong
    station_update(station=partial_station, changes={"automation_level": "partial"}, user=None)
    while Alarm.objects.get().times_seen == 1:
        stream.run(1, django_capture_on_commit_callbacks)
    # then they count on the active alarm, and the level is not stepped down twice
    alarm = Alarm.objects.get()
    assert alarm.times_seen == 2 and alarm.detail["latest"]["audits"] == stream.audits
    assert StationChange.objects.filter(field="automation_level", alarm__isnull=False).count() == 1


def test_a_stream_within_the_target_raises_nothing_and_says_what_the_audits_show(
    partial_station, device_client, monkeypatch, django_capture_on_commit_callbacks, media_root
):
    # given a model wrong on 1 % of the units it decides alone, at a 10 % target
    stream = Stream(partial_station, device_client, monkeypatch, error_rate=0.01, seed=5)
    # when the first few audits are judged: too few to tell
    stream.run(12, django_capture_on_commit_callbacks)
    estimate = live(partial_station)
    assert 0 < estimate.wrong.total == stream.audits < fewest_to_show_below(TARGET) == 36
    assert estimate.state == LiveEscapeState.TOO_FEW
    assert estimate.text().startswith(f"{stream.audits} audits: too few to tell (")
    # and when the line goes on
    stream.run(110, django_capture_on_commit_callbacks)
    # then no alarm, the level stays, and the interval holds or lies under the target
    assert not Alarm.objects.exists()
    partial_station.refresh_from_db()
    assert partial_station.automation_level == AutomationLevel.PARTIAL
    estimate = live(partial_station)
    assert (estimate.wrong.count, estimate.wrong.total) == (stream.wrong, stream.audits)
    assert stream.audits >= 36
    low, high = estimate.wrong.interval()
    assert low <= TARGET
    assert estimate.state == (LiveEscapeState.BELOW if high < TARGET else LiveEscapeState.UNDECIDED)
    assert estimate.state == LiveEscapeState.BELOW  # 0 or 1 wrong of 50-odd audits, as seeded
    assert estimate.text().startswith(f"within target: {stream.wrong} of {stream.audits} audits wrong")


def test_the_window_starts_when_the_threshold_changes_or_the_alarm_is_cleared(make_station):
    station = make_station(level=AutomationLevel.PARTIAL, target_escape_rate=TARGET)
    model, inspector = station.champion, person("ines")
    now = timezone.now()
    earlier = now - timedelta(hours=2)

    def audit(*, wrong: bool, at, level: str = "partial", version=None):
        station.automation_level = level
        judged_blind(
            station,
            version or model,
            inspector,
            at=at,
            reason="audit",
            model_verdict="pass",
            human_verdict="fail" if wrong else "pass",
            decided_at=at,
        )

    # given audits of partial automation, and ones that are not its own (full automation, a
    # canary's model, units the model decided alone, shadow units)
    for index in range(5):
        audit(wrong=index < 2, at=earlier)
    audit(wrong=True, at=earlier, level="full")
    audit(wrong=True, at=earlier, version=model_version("canary", 2))
    station.automation_level = "partial"
    automatic(station, model, at=earlier, verdict="fail")
    # then the estimate counts the five, over every audit of the champion
    estimate = live(station)
    assert (estimate.wrong.count, estimate.wrong.total, estimate.since) == (2, 5, None)
    assert estimate.model_version == "tiny:1" and estimate.target == TARGET
    # when the supervisor changes the target, the window starts again
    station_update(station=station, changes={"target_escape_rate": 0.2}, user=None)
    estimate = live(station)
    assert (estimate.wrong.total, estimate.since_reason) == (0, "the target escape rate changed")
    assert estimate.state == LiveEscapeState.NONE
    assert estimate.text() == "no audit of partial automation judged yet"
    audit(wrong=False, at=timezone.now())
    assert live(station).wrong.total == 1
    # and when an escape-rate alarm is cleared, the next measurement starts afresh
    alarm = Alarm.objects.create(station=station, kind=AlarmKind.ESCAPE, summary="s", last_seen_at=now)
    alarm_clear(alarm=alarm, user=person("sam", role="supervisor"))
    estimate = live(station)
    assert (estimate.wrong.total, estimate.since_reason) == (0, ESCAPE_ALARM_CLEARED)
    assert estimate.since == Alarm.objects.get().cleared_at


@pytest.mark.parametrize("target", [0.005, 0.01, 0.02, 0.1, 0.3])
def test_the_fewest_audits_to_tell_is_where_a_clean_record_first_shows_the_target_met(target):
    needed = fewest_to_show_below(target)
    assert Proportion(0, needed).interval()[1] < target <= Proportion(0, needed - 1).interval()[1]


@pytest.mark.postgres
def test_the_estimate_reads_the_audits_and_their_verdicts_through_indexes(make_station):
    station = make_station(level=AutomationLevel.PARTIAL)
    units = Unit.objects.filter(
        station=station, deciding_model=station.champion, queue_reason="audit", automation_level="partial"
    )
    sql, params = verdicts_annotated(units).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "unit_partial_audits" in plan and "decision_human_latest" in plan, plan


def test_the_dashboard_shows_the_estimate_next_to_the_target(make_station):
    station = make_station(level=AutomationLevel.PARTIAL, target_escape_rate=TARGET)
    inspector = person("ines")
    for index in range(8):
        judged_blind(
            station,
            station.champion,
            inspector,
            at=timezone.now(),
            reason="audit",
            model_verdict="pass",
            human_verdict="fail" if index < 5 else "pass",
            decided_at=timezone.now(),
        )
    client = signed_in(person("sam", role="supervisor"))
    # the station's figures
    body = client.get(f"/api/v1/dashboard/stations/{station.slug}/").json()
    live_escape = body["live_escape"]
    assert (live_escape["audits"], live_escape["wrong"]["count"], live_escape["target"]) == (8, 5, TARGET)
    low, high = Proportion(5, 8).interval()
    assert (live_escape["wrong"]["low"], live_escape["wrong"]["high"]) == (low, high)
    assert live_escape["state"] == "above" and live_escape["confidence"] == 0.95
    assert live_escape["text"] == (
        f"above target: 5 of 8 audits wrong, 62.5 % ({low * 100:.3g}–{high * 100:.3g} %, 95 % interval), "
        "target 10 %"
    )
    # and the overview's row of the station
    (row,) = client.get("/api/v1/dashboard/").json()["stations"]
    assert row["live_escape"] == live_escape
