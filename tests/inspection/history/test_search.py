"""Searching units: each filter, the copy of the latest decision it searches by, and the cursor
pages over the result."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.enums import AutomationLevel
from inspection.history.search import CursorInvalid, UnitFilter, units_page, units_search
from inspection.models import DecisionEvent, Unit
from inspection.services.decisions import HumanRegion, decision_record
from inspection.supervision.models import Alarm, AlarmKind
from tests.inspection.factories import person, posted_unit

pytestmark = pytest.mark.django_db


def search(**query) -> list[Unit]:
    form = UnitFilter({key: str(value) for key, value in query.items()})
    assert form.is_valid(), form.errors
    return list(units_search(filters=form.cleaned_data))


def serials(units) -> list[str]:
    return [unit.serial for unit in units]


@pytest.fixture
def line(make_station, device_client, media_root):
    """Two stations: A at full automation (the model decides), B human-only (units wait)."""
    a = make_station(slug="line-a", level=AutomationLevel.FULL)
    b = make_station(slug="line-b", level=AutomationLevel.HUMAN, champion=a.champion)
    return a, b, device_client(a), device_client(b)


def test_the_unit_carries_its_latest_decision_through_every_kind_of_event(line):
    a, b, client_a, client_b = line
    inspector = person()
    decided = Unit.objects.get(pk=posted_unit(client_a, "A-1")["id"])
    waiting = Unit.objects.get(pk=posted_unit(client_b, "B-1", seed=1)["id"])
    # the model's decision is copied when the unit is stored
    model_event = DecisionEvent.objects.get(unit=decided)
    assert (decided.decision_verdict, decided.decision_source, decided.decision_reason) == (
        model_event.verdict,
        "model",
        "automatic",
    )
    assert (waiting.decision_verdict, waiting.decision_source, waiting.decided_at) == ("", "", None)
    # a person's decision, then an override, each replace it
    first = decision_record(unit=waiting, user=inspector, verdict="pass")
    waiting.refresh_from_db()
    assert (waiting.decision_verdict, waiting.decision_source, waiting.decision_reason) == (
        "pass",
        "human",
        "human",
    )
    assert waiting.decided_at == first.created_at
    regions = [
        HumanRegion(
            x=10, y=20, width=30, height=40, label=a.defect_classes[0] if a.defect_classes else "stain"
        )
    ]
    override = decision_record(unit=waiting, user=inspector, verdict="fail", regions=regions)
    waiting.refresh_from_db()
    assert (waiting.decision_verdict, waiting.decision_reason, waiting.decided_at) == (
        "fail",
        "override",
        override.created_at,
    )
    # and a person overruling the model marks the unit as a disagreement
    flipped = "pass" if model_event.verdict == "fail" else "fail"
    decision_record(
        unit=decided,
        user=inspector,
        verdict=flipped,
        regions=regions if flipped == "fail" else [],
    )
    decided.refresh_from_db()
    assert (
        decided.disagreement and decided.decision_reason == "override" and decided.decision_source == "human"
    )


def test_each_filter_finds_exactly_its_units(line, make_model_version):
    a, b, client_a, client_b = line
    inspector = person()
    for index in range(3):
        posted_unit(client_a, f"A-{index}", seed=index)
    for index in range(3):
        posted_unit(client_b, f"B-{index}", seed=10 + index)
    b_units = {unit.serial: unit for unit in Unit.objects.filter(station=b)}
    decision_record(unit=b_units["B-0"], user=inspector, verdict="pass")
    decision_record(unit=b_units["B-1"], user=inspector, verdict="pass")
    decision_record(unit=b_units["B-1"], user=inspector, verdict="fail", defect_classes=[])  # override
    newer = make_model_version(version=2)
    a.champion = newer
    a.save()
    posted_unit(client_a, "A-new", seed=20)

    everything = search()
    assert serials(everything) == ["A-new", "B-2", "B-1", "B-0", "A-2", "A-1", "A-0"]  # newest first
    assert set(serials(search(station="line-b"))) == {"B-0", "B-1", "B-2"}
    assert serials(search(serial="B-1")) == ["B-1"]
    assert set(serials(search(serial="A-"))) == {"A-0", "A-1", "A-2", "A-new"}
    assert serials(search(verdict="pending")) == ["B-2"]
    model_fails = {u.serial for u in Unit.objects.filter(station=a, decision_verdict="fail")}
    assert set(serials(search(verdict="fail"))) == model_fails | {"B-1"}
    assert set(serials(search(decided_by="human"))) == {"B-0", "B-1"}
    assert set(serials(search(decided_by="model"))) == {"A-0", "A-1", "A-2", "A-new"}
    assert serials(search(reason="override")) == ["B-1"]
    assert serials(search(reason="human")) == ["B-0"]
    assert serials(search(model=newer.pk)) == ["A-new"]
    assert set(serials(search(station="line-a", model=newer.pk))) == {"A-new"}
    assert search(disagreement="yes") == []  # human-only units have no model prediction to disagree with
    assert len(search(disagreement="no")) == 7
    # combined: B's decided units by a person that passed
    assert serials(search(station="line-b", decided_by="human", verdict="pass")) == ["B-0"]


def test_the_date_range_and_an_alarm_window(line):
    a, b, client_a, _ = line
    for index in range(4):
        posted_unit(client_a, f"A-{index}", seed=index)
    units = list(Unit.objects.filter(station=a).order_by("received_at"))
    start = timezone.now() - timedelta(hours=3)
    for hours, unit in zip((3, 2, 1, 0), units, strict=True):
        Unit.objects.filter(pk=unit.pk).update(
            received_at=timezone.now() - timedelta(hours=hours, minutes=-1)
        )
    found = search(
        received_from=(start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"),
        received_to=(timezone.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"),
    )
    assert serials(found) == ["A-2", "A-1"]
    # an alarm raised 90 minutes ago and cleared 30 minutes ago covers A-2 only
    alarm = Alarm.objects.create(
        station=a, kind=AlarmKind.SCORE, summary="scores shifted", last_seen_at=timezone.now()
    )
    Alarm.objects.filter(pk=alarm.pk).update(
        raised_at=timezone.now() - timedelta(minutes=90),
        cleared_at=timezone.now() - timedelta(minutes=30),
        status="cleared",
    )
    assert serials(search(alarm=alarm.pk)) == ["A-2"]
    # an alarm of another station than the one asked for is an error that names both
    form = UnitFilter({"alarm": str(alarm.pk), "station": "line-b"})
    assert not form.is_valid()
    assert "line-a" in form.errors["alarm"][0] and "line-b" in form.errors["alarm"][0]


@pytest.mark.parametrize(
    "query, field, words",
    [
        ({"verdict": "maybe"}, "verdict", "valid choice"),
        ({"station": "nowhere"}, "station", "valid choice"),
        ({"received_from": "yesterday"}, "received_from", "valid date"),
        ({"received_from": "2026-12-04T10:00", "received_to": "2026-12-03T10:00"}, "received_to", "before"),
        ({"model": "9999"}, "model", "valid choice"),
        ({"disagreement": "perhaps"}, "disagreement", "valid choice"),
    ],
)
def test_a_bad_filter_is_an_error_naming_the_field(query, field, words):
    form = UnitFilter(query)
    assert not form.is_valid()
    assert words in " ".join(form.errors[field])


def test_cursor_pages_walk_every_unit_once_both_ways_while_units_keep_arriving(line):
    a, _, client_a, _ = line
    for index in range(11):
        posted_unit(client_a, f"A-{index:02}", seed=index)
    everything = serials(search())
    units = units_search(filters={})
    # older, page by page
    seen, cursor, pages = [], None, []
    while True:
        page = units_page(units, cursor=cursor, size=4)
        pages.append(page)
        seen += serials(page.units)
        if page.older is None:
            break
        # a unit arriving meanwhile does not shift the pages already being read
        if len(pages) == 1:
            posted_unit(client_a, "A-late", seed=99)
        cursor = page.older
    assert seen == everything and len(pages) == 3
    assert pages[0].newer is None and pages[1].newer is not None
    # and back, newer, from the last page: the same pages in the same order
    back = units_page(units, cursor=pages[2].newer, size=4)
    assert serials(back.units) == serials(pages[1].units)
    first_again = units_page(units, cursor=back.newer, size=4)
    assert serials(first_again.units) == serials(pages[0].units)
    # the newest page from there now has the late unit to show
    assert first_again.newer is not None
    assert serials(units_page(units, cursor=first_again.newer, size=4).units) == ["A-late"]


@pytest.mark.parametrize(
    "cursor", ["garbage", "eyJ4IjoxfQ", "WyJzaWRld2F5cyIsIjIwMjYtMTItMDRUMDA6MDA6MDArMDA6MDAiLDFd"]
)
def test_a_cursor_not_made_here_is_refused(cursor):
    with pytest.raises(CursorInvalid):
        units_page(Unit.objects.order_by("-received_at", "-id"), cursor=cursor)


def test_a_serial_search_pages_both_ways_like_any_other(line):
    a, _, client_a, _ = line
    for index in range(7):
        posted_unit(client_a, f"LOT7-{index}", seed=index)
    posted_unit(client_a, "LOT8-0", seed=9)
    units = units_search(filters={"serial": "LOT7-"})
    first = units_page(units, cursor=None, size=3)
    second = units_page(units, cursor=first.older, size=3)
    third = units_page(units, cursor=second.older, size=3)
    assert [serials(page.units) for page in (first, second, third)] == [
        ["LOT7-6", "LOT7-5", "LOT7-4"],
        ["LOT7-3", "LOT7-2", "LOT7-1"],
        ["LOT7-0"],
    ]
    assert third.older is None
    assert serials(units_page(units, cursor=third.newer, size=3).units) == ["LOT7-3", "LOT7-2", "LOT7-1"]
