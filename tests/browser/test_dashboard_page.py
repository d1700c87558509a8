"""The supervision dashboard in Chromium: tiles and charts from the server's figures, live updates
when the line posts a unit, an alarm shown the moment it is raised, and acknowledged from the page."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from inspection.enums import AutomationLevel, DecisionReason
from inspection.models import Prediction
from inspection.supervision.dashboard.latency import latency_flush, latency_record
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus, DriftCheck
from inspection.supervision.services import AlarmFinding, alarms_raise
from tests.browser.conftest import sign_in
from tests.browser.test_station_page import Line, showing, status_says
from tests.inspection.factories import person
from tests.inspection.supervision.dashboard_rows import automatic, decide, judged_blind, unit

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
AUTOMATION_DETAIL = "document.querySelector('[data-figure=automation] .detail')"


def history(station, person_judging) -> None:
    """An hour of a station's past, constructed: units the model decided, audits (one missed
    defect), deferred units, posts' latencies and drift checks (the last one shifted)."""
    now = timezone.now()
    model = station.champion
    for minute in range(1, 58):
        at = now - timedelta(minutes=minute, seconds=20)
        for index in range(3 + minute % 4):
            automatic(
                station, model, at=at - timedelta(seconds=index), verdict="fail" if index == 2 else "pass"
            )
            latency_record(
                station_slug=station.slug, milliseconds=18 + (minute * 7 + index * 13) % 25, at=at.timestamp()
            )
        if minute % 6 == 0:
            wrong = minute == 30
            judged_blind(
                station,
                model,
                person_judging,
                at=at,
                reason="audit",
                model_verdict="pass",
                human_verdict="fail" if wrong else "pass",
                decided_at=at + timedelta(minutes=2),
            )
        if minute % 9 == 0:
            deferred = unit(station, at=at, queue_reason="deferred", model=model, pending=minute < 20)
            if minute >= 20:
                decide(
                    deferred,
                    verdict="pass",
                    at=at + timedelta(minutes=4),
                    reason=DecisionReason.DEFERRED,
                    user=person_judging,
                )
    latency_flush()
    for index, minutes in enumerate((50, 35, 20, 6)):
        check = DriftCheck.objects.create(
            station=station,
            model_version=model,
            first_unit_id=index * 200 + 1,
            last_unit_id=(index + 1) * 200,
            window_size=200,
            significance=0.01,
            shifted=minutes == 6,
            tests=[
                {
                    "kind": "input_drift",
                    "name": "brightness",
                    "statistic": 0.2,
                    "p_value": 0.1,
                    "adjusted_p_value": 0.0004 if minutes == 6 else 0.3 + index / 10,
                    "shifted": minutes == 6,
                    "detail": {},
                }
            ],
        )
        DriftCheck.objects.filter(pk=check.pk).update(checked_at=now - timedelta(minutes=minutes))


def test_the_station_dashboard_updates_live_and_acknowledges_an_alarm(asgi_server, browser, make_station):
    # given a supervisor, and a full-automation station with an hour of history
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    person("sam", role="supervisor")
    history(station, person("ines"))
    context = browser.new_context(viewport={"width": 1440, "height": 1250})
    page = sign_in(context, asgi_server, "sam")
    # when the supervisor opens the station's dashboard
    page.goto(f"{asgi_server.url}/dashboard/{station.slug}/?period=hour")
    page.wait_for_selector("#live.ok")
    page.wait_for_function(f"() => {AUTOMATION_DETAIL} && {AUTOMATION_DETAIL}.textContent.includes('units')")
    # then the tiles show the figures, with the escape estimate's interval, and the charts are drawn
    before = page.text_content("[data-figure=automation] .detail")
    decided, received = (int(word) for word in before.split()[0:3:2])
    assert decided < received
    assert "audits" in page.text_content("[data-figure=escape] .detail")
    assert "ms" in page.text_content("[data-figure=latency] .value")
    assert page.locator("#models tbody tr").first.text_content().startswith("tiny:1")
    for chart in ("throughput", "rates", "queue", "latency", "drift"):
        assert page.locator(f"#chart-{chart} canvas").count() == 1
    fetches = page.evaluate("window.loupeDashboard.fetches")
    # when the line posts a unit, the figures follow without a reload
    Line(asgi_server, station).post("SN-LIVE-1", seed=3)
    page.wait_for_function(
        f"() => {AUTOMATION_DETAIL}.textContent.startsWith('{decided + 1} of {received + 1} units')",
        timeout=10_000,
    )
    assert page.evaluate("window.loupeDashboard.fetches") > fetches
    # and when a drift check raises an alarm, it appears at once
    alarms_raise(station=station, findings=[AlarmFinding(AlarmKind.INPUT, "brightness shifted: p = 0.0004")])
    page.wait_for_selector(".alarm.open", timeout=10_000)
    assert "brightness shifted" in page.text_content(".alarm.open .summary")
    page.wait_for_function(
        "() => document.getElementById('station-level').textContent === 'Partial automation'"
    )
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    # and the supervisor acknowledges it from the page
    page.click(".alarm.open button.acknowledge")
    page.wait_for_selector(".alarm.acknowledged", timeout=10_000)
    assert Alarm.objects.get().status == AlarmStatus.ACKNOWLEDGED
    assert Alarm.objects.get().acknowledged_by.username == "sam"
    context.close()


def test_the_overview_lists_every_station_and_links_to_each(asgi_server, browser, make_station):
    first = make_station(slug="screens-1", level=AutomationLevel.FULL)
    make_station(slug="screens-2", level=AutomationLevel.SHADOW, champion=first.champion)
    person("sam", role="supervisor")
    automatic(first, first.champion, at=timezone.now() - timedelta(minutes=3))
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "sam")
    page.goto(f"{asgi_server.url}/dashboard/")
    page.wait_for_selector("#stations tbody tr[data-station=screens-2]")
    assert page.text_content("[data-figure=automation] .detail").startswith("1 of 1 units")
    page.click(".periods button[data-period=week]")
    page.wait_for_function("() => document.querySelector('.period-name').textContent === 'week'")
    page.click("#stations tbody tr[data-station=screens-1] a")
    page.wait_for_url(f"{asgi_server.url}/dashboard/screens-1/?period=week")
    page.wait_for_selector("#tiles .tile")
    context.close()


def test_a_supervisor_sees_partial_automations_live_escape_rate_cross_its_target(
    asgi_server, browser, make_station, live_celery_worker
):
    # given a partial automation station at a 10 % target auditing half the units it would decide
    # alone, a supervisor on its dashboard, and an inspector on its station page
    station = make_station(level=AutomationLevel.PARTIAL, target_escape_rate=0.1, audit_share=0.5)
    person("sam", role="supervisor")
    person("ines")
    line = Line(asgi_server, station)
    units = [line.post(f"SN-{index:05d}", seed=index, width=1280, height=720) for index in range(1, 11)]
    audits = [unit for unit in units if unit["status"] == "pending"]
    assert len(audits) >= 4 and len(audits) < len(units)  # the rest the model decided alone
    context = browser.new_context(viewport={"width": 1440, "height": 1250})
    dashboard = sign_in(context, asgi_server, "sam")
    dashboard.goto(f"{asgi_server.url}/dashboard/{station.slug}/?period=hour")
    dashboard.wait_for_selector("#live.ok")
    live_escape = "[data-figure=live-escape]"
    dashboard.wait_for_selector(live_escape)
    assert dashboard.text_content(f"{live_escape} .value") == "no audits yet"
    assert "vs 10.0 % target" in dashboard.text_content(f"{live_escape} .label")
    inspector_context = browser.new_context(viewport={"width": 1440, "height": 900})
    station_page = sign_in(inspector_context, asgi_server, "ines")
    station_page.goto(f"{asgi_server.url}/stations/{station.slug}/")

    def judge(unit: dict, *, wrong: bool) -> None:
        showing(station_page, unit["serial"])
        model = Prediction.objects.get(unit_id=unit["id"]).verdict
        fail = (model == "pass") if wrong else (model == "fail")
        if fail:
            station_page.keyboard.press("1")  # blind: the class first, then the fail key
        station_page.keyboard.press("f" if fail else "p")
        status_says(station_page, f"{unit['serial']}: {'fail' if fail else 'pass'}")

    def tile_says(text: str) -> None:
        dashboard.wait_for_function(
            f"() => document.querySelector('{live_escape} .detail').textContent.includes({text!r})",
            timeout=10_000,
        )

    # when the inspector judges the audits one after another, the model right on the first only
    judge(audits[0], wrong=False)
    tile_says("1 audit: too few to tell (0 of 1 audit wrong")
    assert dashboard.text_content(f"{live_escape} .value") == "too few to tell"
    assert "audits of tiny:1's decisions at partial automation" in dashboard.text_content(
        f"{live_escape} .detail"
    )
    judge(audits[1], wrong=True)
    judge(audits[2], wrong=True)
    tile_says("3 audits: too few to tell (2 of 3 audits wrong")
    assert not dashboard.is_visible(".alarm.open")  # 2 of 3: the interval still holds 10 %
    judge(audits[3], wrong=True)
    # then the estimate lies above the target, and the alarm is raised with the step-down
    tile_says("above target: 3 of 4 audits wrong, 75 % (")
    assert dashboard.text_content(f"{live_escape} .value") == "75.0 %"
    dashboard.wait_for_selector(".alarm.open", timeout=20_000)
    assert "escape rate is above target: 3 of 4 audits wrong" in dashboard.text_content(
        ".alarm.open .summary"
    )
    dashboard.wait_for_function(
        "() => document.getElementById('station-level').textContent === 'AI-assisted'"
    )
    alarm = Alarm.objects.get()
    assert (alarm.kind, alarm.detail["audits"], alarm.detail["wrong"]["count"]) == (AlarmKind.ESCAPE, 4, 3)
    assert alarm.detail["wrong"]["low"] > 0.1
    # and the overview's row says so too
    dashboard.goto(f"{asgi_server.url}/dashboard/")
    dashboard.wait_for_selector(f"#stations tbody tr[data-station={station.slug}] td.bad{live_escape}")
    row = dashboard.text_content(f"#stations tbody tr[data-station={station.slug}] {live_escape}")
    assert row.startswith("above target: 3 of 4 audits wrong")
    inspector_context.close()
    context.close()
