"""Dashboard figures from constructed events: every count is known, so every rate, interval,
queue length and bucket is checked against a number worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import binomtest

from inspection.enums import AutomationLevel, DecisionReason, RolloutMode
from inspection.services.stations import station_create
from inspection.supervision.dashboard.periods import PERIODS, UnknownPeriod, period_get, window_at
from inspection.supervision.dashboard.report import dashboard_overview, dashboard_station
from inspection.supervision.dashboard.tallies import ROWS_ONLY, window_tally
from inspection.supervision.models import DriftCheck
from tests.inspection.factories import person
from tests.inspection.supervision.dashboard_rows import (
    automatic,
    decide,
    judged_blind,
    model_version,
    predict,
    unit,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 30, 30, tzinfo=UTC)
HOUR = PERIODS["hour"]


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def exact_interval(k: int, n: int) -> tuple[float, float]:
    interval = binomtest(k, n).proportion_ci(0.95, method="exact")
    return interval.low, interval.high


@pytest.fixture
def line(redis_client):
    """Station A (full automation) and station B (shadow level), with known units in the last hour.

    A: 6 units decided by its model (one later overridden by a person), 2 audits (the model
    passed a unit the person failed; both failed the other), 1 deferred unit a person decided,
    1 deferred unit still waiting (20 min), and 1 unit waiting since 2 hours ago.
    B: 4 shadow units its model predicted and a person judged, 3 of them alike.
    """
    champion, shadow_model = model_version("screens", 1), model_version("screens", 2)
    a = station_create(slug="line-a", level=AutomationLevel.FULL, champion=champion)
    b = station_create(slug="line-b", level=AutomationLevel.SHADOW, champion=shadow_model)
    ines = person("ines")
    for minutes in (5, 10, 15, 20, 25, 30):
        automatic(a, champion, at=minutes_ago(minutes))
    overridden = automatic(a, champion, at=minutes_ago(35), verdict="pass")
    decide(overridden, verdict="fail", at=minutes_ago(2), reason=DecisionReason.OVERRIDE, user=ines)
    judged_blind(
        a,
        champion,
        ines,
        at=minutes_ago(40),
        reason="audit",
        model_verdict="pass",
        human_verdict="fail",
        decided_at=minutes_ago(38),
    )
    judged_blind(
        a,
        champion,
        ines,
        at=minutes_ago(45),
        reason="audit",
        model_verdict="fail",
        human_verdict="fail",
        decided_at=minutes_ago(44),
    )
    deferred = unit(a, at=minutes_ago(50), queue_reason="deferred", model=champion)
    predict(deferred, champion, "fail")
    decide(deferred, verdict="pass", at=minutes_ago(48), reason=DecisionReason.DEFERRED, user=ines)
    unit(a, at=minutes_ago(20), queue_reason="deferred", model=champion, pending=True)
    unit(a, at=minutes_ago(120), queue_reason="deferred", model=champion, pending=True)
    for index, (model_says, person_says) in enumerate(
        [("pass", "pass"), ("fail", "fail"), ("pass", "pass"), ("fail", "pass")]
    ):
        judged_blind(
            b,
            shadow_model,
            ines,
            at=minutes_ago(10 + index),
            reason="shadow",
            model_verdict=model_says,
            human_verdict=person_says,
            decided_at=minutes_ago(9),
        )
    return a, b, champion, shadow_model


def test_periods_are_whole_buckets_ending_now():
    window = window_at(period=HOUR, now=NOW)
    assert window.start == datetime(2026, 3, 2, 11, 31, tzinfo=UTC)
    assert len(window.bucket_starts) == 60 and window.bucket_starts[-1] == int(NOW.timestamp()) // 60 * 60
    day = window_at(period=period_get("day"), now=NOW)
    assert day.period.bucket_seconds == 900 and len(day.bucket_starts) == 96
    with pytest.raises(UnknownPeriod, match="period must be one of hour, day, week, not 'month'"):
        period_get("month")


def test_rates_agreement_escape_and_queue_per_station(line):
    a, b, _, _ = line
    window = window_at(period=HOUR, now=NOW)
    counts = window_tally(window=window, station_ids=None, view=ROWS_ONLY).counts.stations
    station_a, station_b = counts[a.pk], counts[b.pk]
    # 7 automatic + 2 audits + 2 deferred received in the hour (the 2-hour-old unit is outside)
    assert (station_a.received, station_a.automatic, station_a.deferred) == (11, 7, 2)
    assert (station_a.agreement.count, station_a.agreement.total) == (1, 2)
    assert (station_a.audit_wrong.count, station_a.audit_wrong.total) == (1, 2)
    assert (station_a.audit_missed.count, station_a.audit_missed.total) == (1, 2)
    # 7 model decisions; people: 2 audits, 1 deferred, 1 override
    assert (station_a.decided_by_model, station_a.decided_by_human) == (7, 4)
    assert station_a.pending == 2 and station_a.oldest_pending_at == minutes_ago(120)
    assert (station_b.received, station_b.automatic, station_b.deferred) == (4, 0, 0)
    assert (station_b.agreement.count, station_b.agreement.total) == (3, 4)
    assert station_b.audit_wrong.total == 0 and station_b.pending == 0


def test_station_report_gives_rates_with_exact_intervals(line):
    a, _, champion, _ = line
    report = dashboard_station(station=a, period=HOUR, now=NOW)
    figures = report["figures"]
    assert figures["units_received"] == 11
    assert figures["automation"]["rate"] == pytest.approx(7 / 11)
    assert figures["deferral"]["rate"] == pytest.approx(2 / 11)
    low, high = exact_interval(1, 2)
    assert figures["escape"]["audits"] == 2
    assert figures["escape"]["wrong"] == {
        "count": 1,
        "total": 2,
        "rate": 0.5,
        "low": pytest.approx(low),
        "high": pytest.approx(high),
    }
    assert figures["escape"]["missed"]["rate"] == 0.5
    assert figures["agreement"]["low"] == pytest.approx(low)
    hours = 59.5 / 60  # from 11:31:00 to 12:30:30
    assert figures["decisions"]["per_hour"]["model"] == pytest.approx(7 / hours)
    assert figures["decisions"]["per_hour"]["human"] == pytest.approx(4 / hours)
    assert figures["queue"] == {"pending": 2, "oldest_pending_seconds": 7200.0}
    assert figures["latency"] == {"count": 0, "p50_ms": None, "p99_ms": None}
    assert report["models"] == [
        {
            "id": champion.pk,
            "model_version": "screens:1",
            "role": "champion",
            "rollout": None,
            "canary_share": None,
            "predicted": 10,
            "decided": 7,
            "decided_share": pytest.approx(7 / 11),
        },
    ]


def test_no_audits_is_said_as_such_and_intervals_are_absent(line):
    _, b, _, _ = line
    escape = dashboard_station(station=b, period=HOUR, now=NOW)["figures"]["escape"]
    assert escape["audits"] == 0 and escape["wrong"]["rate"] is None and escape["wrong"]["low"] is None


def test_overview_sums_the_stations(line):
    a, b, _, _ = line
    report = dashboard_overview(period=HOUR, now=NOW)
    overall = report["overall"]
    assert overall["units_received"] == 15
    assert overall["automation"]["count"] == 7
    assert (overall["agreement"]["count"], overall["agreement"]["total"]) == (4, 6)
    low, high = exact_interval(4, 6)
    assert overall["agreement"]["low"] == pytest.approx(low) and overall["agreement"][
        "high"
    ] == pytest.approx(high)
    assert overall["escape"]["audits"] == 2
    assert overall["queue"]["pending"] == 2
    assert [row["slug"] for row in report["stations"]] == ["line-a", "line-b"]
    assert report["stations"][1]["figures"]["agreement"]["rate"] == 0.75


def test_series_buckets_add_up_to_the_figures(line):
    a, _, _, _ = line
    series = dashboard_station(station=a, period=HOUR, now=NOW)["series"]
    # the unit 5 minutes ago is in bucket 12:25, the 55th of 60 (index 54)
    assert series["received"][54] == 1 and series["automation_rate"][54] == 1.0
    assert series["automation_rate"][9] == 0.0  # 50 minutes ago: the deferred unit alone
    assert series["automation_rate"][0] is None  # nothing arrived
    assert sum(series["received"]) == 11
    assert sum(series["decided_by_model"]) == 7 and sum(series["decided_by_human"]) == 4
    assert series["decided_by_human"][57] == 1  # the override, 2 minutes ago
    assert series["judged"][19] == 1 and series["agreement"][19] == 0.0  # the missed audit, 40 min ago


def test_queue_length_over_time_follows_arrivals_and_first_decisions(redis_client):
    champion = model_version()
    station = station_create(slug="queue-line", level=AutomationLevel.PARTIAL, champion=champion)
    ines = person("ines")
    unit(station, at=minutes_ago(120), queue_reason="deferred", pending=True)  # before the window
    first = unit(station, at=minutes_ago(50), queue_reason="deferred")  # bucket 11:40, index 9
    decide(first, verdict="pass", at=minutes_ago(40), reason=DecisionReason.DEFERRED, user=ines)  # index 19
    decide(first, verdict="fail", at=minutes_ago(35), reason=DecisionReason.OVERRIDE, user=ines)  # no change
    unit(station, at=minutes_ago(30), queue_reason="deferred", pending=True)  # index 29
    automatic(station, champion, at=minutes_ago(25))  # never queued
    series = dashboard_station(station=station, period=HOUR, now=NOW)["series"]
    assert series["queue_length"] == [1] * 9 + [2] * 10 + [1] * 10 + [2] * 31


def test_models_in_play_name_the_challenger_and_earlier_versions(redis_client):
    old, champion, challenger = model_version("m", 1), model_version("m", 2), model_version("m", 3)
    station = station_create(slug="canary-line", level=AutomationLevel.FULL, champion=champion)
    station.challenger, station.rollout_mode, station.canary_share = challenger, RolloutMode.CANARY, 0.25
    station.save()
    automatic(station, old, at=minutes_ago(50))  # before the promotion
    for minutes in (10, 20, 30):
        automatic(station, champion, at=minutes_ago(minutes))
    automatic(station, challenger, at=minutes_ago(5))
    models = dashboard_station(station=station, period=HOUR, now=NOW)["models"]
    assert [
        (m["model_version"], m["role"], m["rollout"], m["canary_share"], m["decided"]) for m in models
    ] == [
        ("m:2", "champion", None, None, 3),
        ("m:3", "challenger", "canary", 0.25, 1),
        ("m:1", "earlier", None, None, 1),
    ]
    assert models[0]["decided_share"] == pytest.approx(3 / 5)


def test_drift_points_give_the_smallest_adjusted_p_and_the_shifted_tests(redis_client):
    champion = model_version()
    station = station_create(slug="drift-line", level=AutomationLevel.FULL, champion=champion)
    tests = [
        {
            "kind": "input_drift",
            "name": "brightness",
            "statistic": 0.4,
            "p_value": 0.0001,
            "adjusted_p_value": 0.0004,
            "shifted": True,
            "detail": {},
        },
        {
            "kind": "score_shift",
            "name": "confidence",
            "statistic": 0.1,
            "p_value": 0.3,
            "adjusted_p_value": 0.6,
            "shifted": False,
            "detail": {},
        },
    ]
    check = DriftCheck.objects.create(
        station=station,
        model_version=champion,
        first_unit_id=1,
        last_unit_id=200,
        window_size=200,
        significance=0.01,
        tests=tests,
        shifted=True,
    )
    DriftCheck.objects.filter(pk=check.pk).update(checked_at=minutes_ago(3))
    drift = dashboard_station(station=station, period=HOUR, now=NOW)["series"]["drift"]
    assert drift["t"] == [minutes_ago(3).timestamp()]
    assert drift["min_adjusted_p"] == [0.0004] and drift["shifted"] == [True]
    assert drift["shifted_tests"] == [["brightness"]] and drift["significance"] == [0.01]


def test_the_overview_costs_the_same_queries_for_one_station_or_many(line):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as two_stations:
        dashboard_overview(period=HOUR, now=NOW)
    champion = model_version("more", 1)
    for index in range(3):
        station = station_create(slug=f"more-{index}", level=AutomationLevel.FULL, champion=champion)
        automatic(station, champion, at=minutes_ago(7))
    with CaptureQueriesContext(connection) as five_stations:
        dashboard_overview(period=HOUR, now=NOW)
    assert len(five_stations.captured_queries) == len(two_stations.captured_queries)
