"""The threshold tool on a station's admin page, in Chromium: a supervisor edits the target escape
rate and, before saving, sees the champion's and challenger's figures follow and the risk-coverage
chart drawn; a bad value is named; nothing is saved. A level erring above the target on validation
is flagged beside the fields, and saved only once confirmed with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from inspection.models import Station
from inspection.policy import StationPolicy
from inspection.thresholds import threshold_preview, validation_scores
from models_registry.ml.calibration import risk_control_table
from models_registry.ml.serving.bundle import save_reference
from models_registry.services import model_reference_get
from tests.browser.conftest import sign_in
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "threshold-tool.png"
UPDATED = "Number(document.getElementById('threshold-tool').dataset.updates || 0) >= {}"


def _shows(text: str, share: float) -> bool:
    """Whether the page's "66.3 %" or "0.47 %" (static/js/threshold_tool.js `pct`: 1 decimal from
    10 %, else 2) is `share`, to the digits shown."""
    percent = share * 100
    digits = 1 if percent == 0 or percent >= 10 else 2
    number = text.split(" %")[0]
    return len(number.split(".")[1]) == digits and abs(float(number) - percent) <= 0.5 * 10**-digits + 1e-9


@pytest.fixture
def station(make_station, make_model_version) -> Station:
    """A champion whose validation reference is 800 generated scores of a fairly good model (the
    tiny test model has only 8 validation units: too few to certify anything, or to draw), with its
    risk-control table certified on them; the tiny model itself as the challenger, its real table."""
    champion = make_model_version("generated-scores", 1)
    rng = np.random.default_rng(7)
    confidences = 1 - rng.beta(1.0, 30, 800)
    correct = rng.random(800) > (1 - confidences) * 0.7
    save_reference(
        Path(settings.LOUPE_MODEL_CACHE) / "generated-scores" / "1",
        confidence=confidences,
        correct=correct,
        known=np.ones(800, bool),
        defect_probability=np.where(correct, 0.1, 0.9),
    )
    champion.risk_control = risk_control_table(confidences, correct)
    champion.save()
    challenger = make_model_version("tiny", 2)
    challenger.risk_control = risk_control_table(
        *validation_scores(model_reference_get(model_version=challenger)[1])
    )
    challenger.save()
    return make_station(
        level="partial", champion=champion, challenger=challenger, target_escape_rate=0.01, audit_share=0.02
    )


def _expected(station: Station, target: float) -> dict:
    _, arrays = model_reference_get(model_version=station.champion)
    confidences, correct = validation_scores(arrays)
    return threshold_preview(
        confidences=confidences,
        correct=correct,
        risk_control=station.champion.risk_control,
        policy=StationPolicy("partial", target, audit_share=0.02),
    ).as_dict()


def _figure(page, figure: str, role: str = "champion") -> str:
    return page.text_content(f'#threshold-tool td[data-figure="{figure}"][data-role="{role}"]').strip()


def test_a_supervisor_sees_the_automation_a_target_gives_before_saving(asgi_server, browser, station):
    supervisor = person("sam", role="supervisor")
    supervisor.is_staff = True
    supervisor.save()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = sign_in(context, asgi_server, "sam")
    # when the supervisor opens the station's admin page
    page.goto(f"{asgi_server.url}/admin/inspection/station/{station.pk}/change/")
    page.wait_for_function(f"() => {UPDATED.format(1)}", timeout=20_000)
    # then the saved 1 % target's figures are shown, side by side with the challenger's
    before = _expected(station, 0.01)
    assert before["error_bound"] == 0.01 and 0 < before["automation_rate"] < 1
    assert _figure(page, "model_version") == "generated-scores:1"
    assert _figure(page, "error_bound") == "1.00 %"
    assert _shows(_figure(page, "automation_rate"), before["automation_rate"])
    assert _figure(page, "validation_units") == "800"
    assert _figure(page, "model_version", "challenger") == "tiny:2"
    assert _figure(page, "error_bound", "challenger") == "none certified"
    assert "Too little data: 8 units, at least 230 needed to certify 0.01" in _figure(
        page, "note", "challenger"
    )
    # when the target escape rate is raised to 2 %, not saved
    page.fill("#id_target_escape_rate", "0.02")
    page.wait_for_function(f"() => {UPDATED.format(2)}", timeout=10_000)
    page.wait_for_function(
        "() => document.querySelector("
        '\'#threshold-tool td[data-figure="error_bound"][data-role="champion"]\')'
        ".textContent === '2.00 %'",
        timeout=10_000,
    )
    # then the figures follow: a looser bound, a lower threshold, more units decided alone
    after = _expected(station, 0.02)
    assert after["automation_rate"] > before["automation_rate"]
    assert _shows(_figure(page, "automation_rate"), after["automation_rate"])
    assert _figure(page, "certified_threshold") == f"{after['certified_threshold']:.4f}"
    assert _shows(_figure(page, "observed_error"), after["observed_error"])
    assert _figure(page, "observed_error").endswith(
        f"({after['decided_errors']} of {after['decided_units']})"
    )
    assert "114 needed to certify 0.02" in _figure(page, "note", "challenger")
    # and the risk-coverage chart is drawn on a canvas
    canvas = page.locator("#threshold-tool canvas")
    assert canvas.count() == 1
    painted = page.evaluate(
        """() => {
            const canvas = document.querySelector('#threshold-tool canvas');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
            return {width: canvas.width, height: canvas.height, painted};
        }"""
    )
    assert painted["width"] > 300 and painted["height"] > 150 and painted["painted"] > 1000
    assert page.locator("#threshold-tool .u-legend").text_content().count("%") >= 1
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.locator("#threshold-tool").screenshot(path=str(SCREENSHOT))
    # a value the station would refuse is named, and nothing was saved
    page.fill("#id_target_escape_rate", "0.9")
    page.wait_for_selector("#threshold-tool [data-error]:not([hidden])", timeout=10_000)
    assert "must be a number from 0.0001 to 0.5, not '0.9'" in page.text_content(
        "#threshold-tool [data-error]"
    )
    station.refresh_from_db()
    assert station.target_escape_rate == 0.01
    context.close()


def test_full_automation_above_the_target_asks_for_a_confirmed_reason_before_saving(
    asgi_server, browser, station
):
    supervisor = person("sam", role="supervisor")
    supervisor.is_staff = True
    supervisor.save()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = sign_in(context, asgi_server, "sam")
    page.goto(f"{asgi_server.url}/admin/inspection/station/{station.pk}/change/")
    page.wait_for_function(f"() => {UPDATED.format(1)}", timeout=20_000)
    # the tool sits beside the Automation fields, on the same row
    fields = page.locator(".station-automation > fieldset").bounding_box()
    tool = page.locator("#threshold-tool").bounding_box()
    assert tool["x"] >= fields["x"] + fields["width"] - 1 and tool["y"] < fields["y"] + fields["height"]
    # partial automation at the saved 1 % target stays within it: no warning
    assert page.is_hidden("#threshold-tool [data-escape-risk]")
    # full automation decides every unit whatever the confidence: its error on validation is
    # above the target, and the tool says what saving will ask for
    confidences, correct = validation_scores(model_reference_get(model_version=station.champion)[1])
    expected = threshold_preview(
        confidences=confidences,
        correct=correct,
        risk_control=station.champion.risk_control,
        policy=StationPolicy("full", 0.01, audit_share=0.02),
    )
    assert expected.observed_error > 0.01
    page.select_option("#id_automation_level", "full")
    page.wait_for_selector("#threshold-tool [data-escape-risk]:not([hidden])", timeout=10_000)
    warning = page.text_content("#threshold-tool [data-escape-risk]")
    assert f"an error of {expected.observed_error:.2%} on its validation units" in warning
    assert "above the target escape rate 1.00%" in warning
    # saving without confirming is refused, naming the problem; nothing is saved
    page.click('input[name="_continue"]')
    page.wait_for_selector(".errornote")
    assert "tick to confirm you accept it" in page.text_content(".field-accept_risk")
    assert "give the reason" in page.text_content(".field-risk_reason")
    station.refresh_from_db()
    assert station.automation_level == "partial"
    # confirmed, with a reason: saved, the reason in the audit row
    page.select_option("#id_automation_level", "full")
    page.check("#id_accept_risk")
    page.fill("#id_risk_reason", "trial shift with every unit re-checked at packing")
    page.click('input[name="_continue"]')
    page.wait_for_selector("ul.messagelist .success")
    station.refresh_from_db()
    assert station.automation_level == "full"
    change = station.changes.get(field="automation_level")
    assert change.changed_by.username == "sam"
    assert change.note == (
        f"admin; accepted {expected.observed_error:.2%} error on validation above the target 1.00%: "
        "trial shift with every unit re-checked at packing"
    )
    context.close()
