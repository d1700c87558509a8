"""The dashboard's rollups give exactly the figures of its queries on every row: the same rows,
read both ways, for every period, the overview and each station (models in play and the live
escape rate included), before and after later changes to old units, and across a write that
commits while a refresh counts. The rows: four stations at four automation levels, a champion
replaced and a canary challenger, automatic decisions, audits, deferrals, shadow units, pending
units, people's later verdicts and overrides, and units on the edges of minutes, buckets and
windows, and in the running minute."""

from __future__ import annotations

import importlib
import io
import os
import random
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from inspection.enums import AutomationLevel, DecisionReason, PredictionRole, RolloutMode
from inspection.models import DecisionEvent, Station, Unit
from inspection.services.decisions import decision_record
from inspection.services.stations import station_create
from inspection.supervision.dashboard import rollups
from inspection.supervision.dashboard.figures import Span
from inspection.supervision.dashboard.models import CountsRollup, Resolution, RollupState, RollupTouch
from inspection.supervision.dashboard.periods import PERIODS, window_at
from inspection.supervision.dashboard.report import dashboard_overview, dashboard_station
from inspection.supervision.dashboard.rollups import rollups_refresh
from inspection.supervision.dashboard.tallies import ROWS_ONLY, cover, rollup_view
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from tests.inspection.factories import person, posted_unit
from tests.inspection.supervision.dashboard_rows import automatic, decide, model_version, predict, unit
from workers.schedule import BEAT_SCHEDULE
from workers.tasks import dashboard_rollups_refresh_task

NOW = datetime(2026, 3, 2, 12, 30, 30, 250_000, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
TRIGGERS = importlib.import_module("inspection.migrations.0018_dashboard_rollups").TRIGGERS

pytestmark = pytest.mark.django_db


def at_minute(hour: int, minute: int) -> int:
    """Epoch seconds of NOW's day at that time."""
    return int(NOW.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp())


def both_ways_alike() -> dict:
    """Every report read from the rollups and from the rows: equal. The week's overview."""
    stations = list(Station.objects.order_by("slug"))
    for period in PERIODS.values():
        overview = dashboard_overview(period=period, now=NOW)
        assert overview == dashboard_overview(period=period, now=NOW, from_rows=True), period.name
        for station in stations:
            one = dashboard_station(station=station, period=period, now=NOW)
            assert one == dashboard_station(station=station, period=period, now=NOW, from_rows=True), (
                period.name,
                station.slug,
            )
    return overview


def edges() -> list[datetime]:
    """The starts of the three windows and of buckets, hours and minutes inside them, each with
    the instant before it; the running minute; now itself and just after it."""
    starts = [window_at(period=period, now=NOW).start for period in PERIODS.values()]
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    minute = NOW.replace(second=0, microsecond=0)
    starts += [
        hour - timedelta(hours=30),
        hour - timedelta(hours=5, minutes=45),
        minute - timedelta(minutes=7),
    ]
    return [*starts, *(at - MICROSECOND for at in starts), minute, NOW, NOW + MICROSECOND]


@pytest.fixture
def plant(redis_client):
    """Four stations and a week and a day of their units (seeded draws), the edges included."""
    draw = random.Random(16)
    a1, a2, a3 = model_version("a", 1), model_version("a", 2), model_version("a", 3)
    b1, c1 = model_version("b", 1), model_version("c", 1)
    full = station_create(slug="line-a", level=AutomationLevel.FULL, champion=a1)
    partial = station_create(
        slug="line-b", level=AutomationLevel.PARTIAL, champion=b1, target_escape_rate=0.2
    )
    shadow = station_create(slug="line-c", level=AutomationLevel.SHADOW, champion=c1)
    human = station_create(slug="line-d", level=AutomationLevel.HUMAN)
    # a2 replaced a1 three days ago; a3 decides a canary share since two days ago
    Station.objects.filter(pk=full.pk).update(
        champion=a2, challenger=a3, rollout_mode=RolloutMode.CANARY, canary_share=0.25
    )
    # partial automation's live escape rate counts from a cleared alarm, in the middle of a minute
    Alarm.objects.create(
        station=partial,
        kind=AlarmKind.ESCAPE,
        status=AlarmStatus.CLEARED,
        summary="escapes",
        last_seen_at=NOW,
        cleared_at=NOW - timedelta(days=2, seconds=17, microseconds=250),
    )
    people = [person("ines"), person("omar")]

    def later(at: datetime) -> datetime:
        return at + timedelta(seconds=draw.choice([1, 59, 600, 4000, 90_000]) + draw.random())

    def verdict() -> str:
        return "fail" if draw.random() < 0.2 else "pass"

    def blind(station: Station, model, at: datetime, reason: str) -> Unit:
        """A blind unit its model predicted; judged (once or twice), or still waiting."""
        made = unit(station, at=at, queue_reason=reason, model=model, pending=draw.random() < 0.2)
        predict(made, model, verdict())
        if made.status == "decided":
            decision = DecisionReason.AUDIT if reason == "audit" else DecisionReason.HUMAN
            first = later(at)
            decide(made, verdict=verdict(), at=first, reason=decision, user=draw.choice(people))
            if draw.random() < 0.2:
                decide(
                    made, verdict=verdict(), at=later(first), reason=DecisionReason.OVERRIDE, user=people[0]
                )
        return made

    def deferred(station: Station, model, at: datetime) -> Unit:
        made = unit(station, at=at, queue_reason="deferred", model=model, pending=draw.random() < 0.3)
        predict(made, model, verdict())
        if made.status == "decided":
            decide(made, verdict=verdict(), at=later(at), reason=DecisionReason.DEFERRED, user=people[1])
        return made

    def full_unit(at: datetime) -> None:
        model = a1 if at < NOW - timedelta(days=3) else a2
        if at > NOW - timedelta(days=2) and draw.random() < 0.25:
            model = a3
        if draw.random() < 0.8:
            decided = automatic(full, model, at=at, verdict=verdict())
            if model == a2 and draw.random() < 0.5:
                predict(decided, a3, verdict(), role=PredictionRole.CHALLENGER_SHADOW)
            if draw.random() < 0.1:
                decide(
                    decided, verdict=verdict(), at=later(at), reason=DecisionReason.OVERRIDE, user=people[1]
                )
        else:
            blind(full, model, at, "audit")

    def partial_unit(at: datetime) -> None:
        kind = draw.random()
        if kind < 0.5:
            automatic(partial, b1, at=at, verdict=verdict())
        elif kind < 0.8:
            blind(partial, b1, at, "audit")
        else:
            deferred(partial, b1, at)

    def human_unit(at: datetime) -> None:
        made = unit(human, at=at, queue_reason="human", pending=draw.random() < 0.2)
        if made.status == "decided":
            decide(made, verdict=verdict(), at=later(at), reason=DecisionReason.HUMAN, user=people[0])

    makers = [full_unit, partial_unit, lambda at: blind(shadow, c1, at, "shadow"), human_unit]
    for at in edges():
        for make in makers:
            make(at)
    for _ in range(160):
        at = NOW - timedelta(seconds=draw.uniform(0, 8 * 86400))
        draw.choice(makers)(at)
    full.refresh_from_db()
    return {"full": full, "partial": partial, "shadow": shadow, "human": human, "people": people}


@pytest.mark.parametrize("refreshed_before", [timedelta(0), timedelta(minutes=7), timedelta(hours=30)])
def test_the_rollups_give_the_figures_of_the_rows(plant, refreshed_before):
    # given the rollups refreshed now, a few minutes ago or yesterday
    refreshed = rollups_refresh(now=NOW - refreshed_before)
    assert refreshed.counted_through == int((NOW - refreshed_before).timestamp()) // 60 - 1
    assert refreshed.minutes_counted > 5 * 1440 and CountsRollup.objects.filter(resolution=Resolution.DAY)
    # then every period's report is the same read both ways, and it is not empty
    overview = both_ways_alike()
    assert overview["overall"]["units_received"] > 100
    rows = {row["slug"]: row for row in overview["stations"]}
    assert rows["line-b"]["live_escape"]["audits"] > 5 and rows["line-a"]["live_escape"]["since"] is None
    assert [m["role"] for m in rows["line-a"]["models"]] == ["champion", "challenger", "earlier"]
    assert overview["overall"]["agreement"]["total"] > 20 and overview["overall"]["queue"]["pending"] > 5


def test_a_read_takes_the_longest_blocks_and_the_rows_after_the_last_refresh(plant):
    rollups_refresh(now=NOW - timedelta(minutes=3))
    view = rollup_view()
    week = window_at(period=PERIODS["week"], now=NOW)
    span = cover(view, start=week.start, end=NOW, end_included=True, resolutions=[60, 900, 3600])
    # whole hours, then a quarter-hour and minutes up to the last minute counted (12:26)
    assert span.blocks == [
        (3600, int(week.start.timestamp()), at_minute(11, 0)),
        (900, at_minute(12, 0), at_minute(12, 0)),
        (60, at_minute(12, 15), at_minute(12, 26)),
    ]
    assert span.stale == [] and [each.start for each in span.spans] == [
        datetime.fromtimestamp(at_minute(12, 27), UTC)
    ]
    # and with nothing counted, the rows from the window's start
    assert cover(ROWS_ONLY, start=week.start, end=NOW, end_included=True, resolutions=[60]).spans == [
        Span(week.start, NOW, end_included=True)
    ]


def test_the_rollups_are_what_a_read_adds_up(plant):
    rollups_refresh(now=NOW)
    full = plant["full"]
    before = dashboard_station(station=full, period=PERIODS["week"], now=NOW)["figures"]["units_received"]
    hours = CountsRollup.objects.filter(station=full, resolution=Resolution.HOUR)
    hours.update(received=10_000)
    after = dashboard_station(station=full, period=PERIODS["week"], now=NOW)["figures"]["units_received"]
    assert after > before + 10_000
    assert (
        dashboard_station(station=full, period=PERIODS["week"], now=NOW, from_rows=True)["figures"][
            "units_received"
        ]
        == before
    )
    # a rebuild counts everything again from the rows
    call_command("dashboard_rollups", "--rebuild", stdout=io.StringIO())
    both_ways_alike()


def test_later_changes_to_old_units_are_read_at_once_and_counted_at_the_next_refresh(plant):
    rollups_refresh(now=NOW)
    before = both_ways_alike()
    full, partial, human, (ines, omar) = plant["full"], plant["partial"], plant["human"], plant["people"]
    week_ago = NOW - timedelta(days=6, hours=5)
    # a person's verdicts on old units: a waiting audit judged, a judged one judged again,
    # an automatic decision overridden, a deferred unit decided, all a few minutes ago
    waiting = Unit.objects.filter(station=partial, queue_reason="audit", status="pending").order_by(
        "received_at"
    )
    decide(waiting[0], verdict="fail", at=NOW - timedelta(minutes=4), reason=DecisionReason.AUDIT, user=ines)
    judged = Unit.objects.filter(station=partial, queue_reason="audit", status="decided").order_by(
        "received_at"
    )
    decide(
        judged[0], verdict="fail", at=NOW - timedelta(minutes=9), reason=DecisionReason.OVERRIDE, user=omar
    )
    old = Unit.objects.filter(station=full, queue_reason="", received_at__lt=week_ago).order_by(
        "received_at"
    )[0]
    decide(old, verdict="fail", at=NOW - timedelta(seconds=20), reason=DecisionReason.OVERRIDE, user=omar)
    pending = Unit.objects.filter(station=human, status="pending").order_by("received_at").first()
    decide(pending, verdict="pass", at=NOW - timedelta(minutes=2), reason=DecisionReason.HUMAN, user=ines)
    # a challenger's prediction of a unit five days old, a unit synced late, a waiting unit removed
    five_days = Unit.objects.filter(station=full, received_at__lt=NOW - timedelta(days=5)).order_by(
        "-received_at"
    )
    predict(five_days.exclude(predictions__model_version=full.challenger).first(), full.challenger, "fail")
    automatic(full, full.champion, at=NOW - timedelta(days=2, minutes=13), verdict="fail")
    removed = Unit.objects.filter(station=partial, queue_reason="deferred", status="pending").first()
    removed.predictions.all().delete()
    removed.delete()

    # then the reads see every change before any refresh, through the touched minutes' rows
    assert rollup_view().touched
    after = both_ways_alike()
    assert after != before
    # and a refresh counts those minutes again and takes their touches
    refreshed = rollups_refresh(now=NOW)
    assert refreshed.touches >= 8 and not rollup_view().touched
    assert both_ways_alike() == after


def test_touches_are_one_row_per_row_written_and_none_for_claims_or_decisions_copied(
    make_station, device_client, media_root, redis_client
):
    station = make_station(level=AutomationLevel.FULL, audit_share=0.0)
    client = device_client(station)
    RollupTouch.objects.all().delete()

    def minutes(unit: Unit) -> set[int]:
        """The unit's minute and its decision events'."""
        times = [unit.received_at, *unit.decisions.values_list("created_at", flat=True)]
        return {int(at.timestamp()) // 60 for at in times}

    # a unit the model decides: one for the unit, its prediction and its decision event (whose
    # minute is the unit's, unless a minute turned meanwhile)
    decided = Unit.objects.get(pk=posted_unit(client, serial="SN-1")["id"])
    assert decided.status == "decided" and decided.predictions.count() == 1
    touched = list(RollupTouch.objects.values_list("minute", flat=True))
    assert len(touched) == 2 + len(minutes(decided)) and set(touched) == minutes(decided)
    # a person's override: its event alone (the copy of the decision onto the unit touches nothing)
    RollupTouch.objects.all().delete()
    decision_record(unit=decided, user=person("ines"), verdict="fail")
    assert sorted(RollupTouch.objects.values_list("minute", flat=True)) == sorted(minutes(decided))
    # a claim, or any change of what is not counted, touches nothing; a change of what is, does
    RollupTouch.objects.all().delete()
    Unit.objects.filter(pk=decided.pk).update(claim_expires_at=NOW, serial="SN-1b", status="pending")
    assert RollupTouch.objects.count() == 0
    Unit.objects.filter(pk=decided.pk).update(queue_reason="audit")
    assert list(RollupTouch.objects.values_list("minute", flat=True)) == [
        int(decided.received_at.timestamp()) // 60
    ]


def test_the_touch_triggers_are_installed():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE %s", ["%rollup_touch%"])
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%rollup_touch%'"
            )
        installed = {name for (name,) in cursor.fetchall()}
    assert installed == set(TRIGGERS[connection.vendor])


def test_the_management_command_refreshes_and_rebuilds(plant, capsys):
    before = int(datetime.now(UTC).timestamp()) // 60 - 1
    call_command("dashboard_rollups")
    after = int(datetime.now(UTC).timestamp()) // 60 - 1
    assert before <= RollupState.objects.get().counted_through <= after
    assert "counted through" in capsys.readouterr().out
    CountsRollup.objects.update(received=0)
    call_command("dashboard_rollups", "--rebuild")
    assert "rebuilt" in capsys.readouterr().out
    assert dashboard_overview(period=PERIODS["week"], now=NOW) == dashboard_overview(
        period=PERIODS["week"], now=NOW, from_rows=True
    )


def test_beat_refreshes_the_rollups_every_few_seconds(plant):
    entry = BEAT_SCHEDULE["dashboard-rollups-refresh"]
    assert entry["task"] == "workers.tasks.dashboard_rollups_refresh" and entry["schedule"] <= 10
    first = dashboard_rollups_refresh_task()
    assert first["minutes_counted"] > 5 * 1440 and not first["skipped"]
    again = dashboard_rollups_refresh_task()
    assert again["counted_through"] - first["counted_through"] in (0, 1) and again["minutes_counted"] <= 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_committed_while_a_refresh_counts_is_counted_at_the_next(redis_client, monkeypatch):
    # given units of an hour ago, counted
    model = model_version("m", 1)
    station = station_create(slug="line-race", level=AutomationLevel.FULL, champion=model)
    units = [automatic(station, model, at=NOW - timedelta(minutes=60 - index)) for index in range(5)]
    rollups_refresh(now=NOW - timedelta(minutes=1))
    # when a refresh has counted its minutes, and waits before it commits
    counted, release = threading.Event(), threading.Event()
    sum_longer = rollups._longer_blocks_sum

    def pause_then_sum(runs):
        counted.set()
        assert release.wait(30)
        sum_longer(runs)

    monkeypatch.setattr(rollups, "_longer_blocks_sum", pause_then_sum)

    def refresh():
        try:
            rollups_refresh(now=NOW)
        finally:
            connections.close_all()

    refreshing = threading.Thread(target=refresh)
    refreshing.start()
    assert counted.wait(30)
    # and a person overrides a unit of an hour ago meanwhile: committed at once, nobody waits
    decide(
        units[2],
        verdict="fail",
        at=NOW - timedelta(seconds=40),
        reason=DecisionReason.OVERRIDE,
        user=person(),
    )
    release.set()
    refreshing.join(30)
    monkeypatch.undo()
    # then the override's touch outlived the refresh: the reads count its minutes from the rows
    assert {int(units[2].received_at.timestamp()) // 60} <= rollup_view().touched
    report = both_ways_alike()
    assert report["overall"]["decisions"]["by_human"] == 1
    # and the next refresh counts them again
    assert rollups_refresh(now=NOW).touches == 2 and not rollup_view().touched
    assert DecisionEvent.objects.count() == 6
    assert both_ways_alike() == report


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refresh_while_another_runs_returns_at_once_and_a_rebuild_waits(redis_client):
    rollups_refresh(now=NOW)
    holding, release = threading.Event(), threading.Event()

    def hold_the_state_row():
        from django.db import transaction

        try:
            with transaction.atomic():
                RollupState.objects.select_for_update().get(pk=1)
                holding.set()
                assert release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_state_row)
    holder.start()
    assert holding.wait(30)
    rebuilt = []

    def rebuild():
        try:
            rebuilt.append(rollups_refresh(rebuild=True, now=NOW + timedelta(minutes=5)))
        finally:
            connections.close_all()

    rebuilding = threading.Thread(target=rebuild)
    try:
        assert rollups_refresh(now=NOW + timedelta(minutes=5)).skipped
        assert RollupState.objects.get().counted_through == int(NOW.timestamp()) // 60 - 1
        rebuilding.start()
        rebuilding.join(1.0)
        assert rebuilding.is_alive() and not rebuilt  # waiting for the lock
    finally:
        release.set()
        holder.join(30)
    rebuilding.join(30)
    assert not rebuilt[0].skipped and rebuilt[0].counted_through == int(NOW.timestamp()) // 60 + 4


@pytest.mark.skipif(connection.vendor == "sqlite", reason="this run is SQLite's: the tests above ran on it")
def test_the_rollups_give_the_figures_of_the_rows_on_sqlite_too(tmp_path):
    """SQLite, the embedded database, keeps the rollups with its own triggers and reads them with
    its own SQL: the comparisons above pass there too (a pytest of their own, on a new SQLite
    database and embedded Redis, as `tests/run.py` runs without PostgreSQL)."""
    environment = {
        **os.environ,
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "LOUPE_DATA_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": "",
    }
    environment.pop("LOUPE_TEST_DATABASE_NAME", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "(figures and not sqlite) or changes or installed",
        ],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "5 passed" in completed.stdout


def test_a_refresh_counts_in_passes_that_cover_every_minute_once():
    runs = [(0, 0), (5, 1000), *((2000 + 2 * index, 2000 + 2 * index) for index in range(450))]
    batches = list(rollups._passes(runs))
    assert all(len(batch) <= rollups.RUNS_PER_PASS for batch in batches)
    assert all(
        sum(last - first + 1 for first, last in batch) <= rollups.MINUTES_PER_PASS for batch in batches
    )
    counted = [minute for batch in batches for first, last in batch for minute in range(first, last + 1)]
    assert counted == [minute for first, last in runs for minute in range(first, last + 1)]
