"""The threshold tool: its figures are what the policy does on the validation units (checked unit
by unit against `certified_threshold` + `decide`, and against the calibration and evaluation
code), and its admin endpoint: who may use it, and a 400 naming each bad setting."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import Group, User

from inspection.models import StationChange
from inspection.policy import Action, ModelOutput, StationPolicy, certified_threshold, decide
from inspection.roles import INSPECTOR, LABELER, SUPERVISOR
from inspection.thresholds import CURVE_POINTS, threshold_preview, validation_scores
from models_registry.ml.calibration import risk_control_table, risk_coverage_curve
from models_registry.ml.evaluation import ImageOutcome, image_metrics
from models_registry.ml.pipeline import curves
from models_registry.ml.types import NO_DEFECT
from models_registry.services import model_reference_get

TARGETS = (0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.3)


def _validation(count: int = 3000, seed: int = 0, *, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Confidences and correctness of a fairly good model: errors grow as confidence falls."""
    rng = np.random.default_rng(seed)
    confidences = 1 - rng.beta(1, 30, count)
    if ties:
        confidences = np.round(confidences, 3)  # many units share a confidence
    correct = rng.random(count) > (1 - confidences) * 0.8
    return confidences, correct


@pytest.fixture(scope="module")
def validation() -> tuple[np.ndarray, np.ndarray, dict]:
    confidences, correct = _validation()
    table = risk_control_table(confidences, correct)
    assert any(entry["certified"] for entry in table.values())
    assert not all(entry["certified"] for entry in table.values())
    return confidences, correct, table


def _policy_decides(confidences, table, policy: StationPolicy, audit_draws) -> np.ndarray:
    threshold = certified_threshold(table, policy.target_escape_rate)
    return np.array(
        [
            decide(policy, ModelOutput("pass", float(c)), threshold=threshold, audit_draw=float(draw)).action
            == Action.DECIDE
            for c, draw in zip(confidences, audit_draws, strict=True)
        ]
    )


@pytest.mark.parametrize("band", [0.0, 0.002, 0.01, 0.3])
@pytest.mark.parametrize("target", TARGETS)
def test_partial_automation_is_what_the_policy_decides_on_each_validation_unit(validation, target, band):
    confidences, correct, table = validation
    policy = StationPolicy("partial", target, uncertainty_band=band, audit_share=0.2)
    # when the tool measures the setting
    preview = threshold_preview(confidences=confidences, correct=correct, risk_control=table, policy=policy)
    # then it decides alone exactly the units `decide` lets the model decide, with their errors,
    # but for the audit share of them, which goes blind to a person
    decided = _policy_decides(confidences, table, policy, np.full(len(confidences), 0.999))
    assert not _policy_decides(confidences, table, policy, np.zeros(len(confidences))).any()
    assert preview.automation_rate == pytest.approx(decided.mean() * (1 - policy.audit_share))
    assert preview.decided_units == decided.sum()
    assert preview.decided_errors == (~correct[decided]).sum()
    assert preview.observed_error == ((~correct[decided]).mean() if decided.any() else None)
    threshold = certified_threshold(table, target)
    assert preview.certified_threshold == threshold
    if threshold is None:
        assert preview.error_bound is None and preview.applied_threshold is None and preview.reason
        assert preview.operating_point is None
    else:
        assert float(table[f"{preview.error_bound:g}"]["threshold"]) == threshold
        assert preview.error_bound <= target
        outcome = decide(policy, ModelOutput("pass", 0.5), threshold=threshold, audit_draw=0.0)
        assert preview.applied_threshold == outcome.threshold == min(1.0, threshold + band)
    assert preview.validation_units == len(confidences)


@pytest.mark.parametrize("target", TARGETS)
def test_at_band_zero_the_figures_are_the_certified_ones_and_the_evaluations(validation, target):
    confidences, correct, table = validation
    preview = threshold_preview(
        confidences=confidences, correct=correct, risk_control=table, policy=StationPolicy("partial", target)
    )
    if preview.error_bound is None:
        assert all(not table[a]["certified"] for a in table if float(a) <= target)
        return
    # the Learn-then-Test table's own coverage and error count at the bound used
    entry = table[f"{preview.error_bound:g}"]
    assert (preview.automation_rate, preview.decided_units, preview.decided_errors) == (
        entry["coverage"],
        entry["automated"],
        entry["errors"],
    )
    # `evaluate`'s coverage at that error bound, on the same units
    outcomes = _outcomes(confidences, correct)
    metrics = image_metrics(outcomes, {f"{preview.error_bound:g}": preview.certified_threshold})
    assert metrics["coverage_at_error"][f"{preview.error_bound:g}"] == preview.automation_rate
    assert metrics["error_among_automated"][f"{preview.error_bound:g}"] == preview.observed_error
    # and the operating point sits on the risk-coverage curve, under the bound it was certified for
    full = threshold_preview(
        confidences=confidences,
        correct=correct,
        risk_control=table,
        policy=StationPolicy("partial", target),
        curve_points=None,
    )
    assert preview.operating_point in full.curve
    assert preview.observed_error <= preview.error_bound


def _outcomes(confidences, correct) -> list[ImageOutcome]:
    """Evaluation outcomes with these confidences: a right verdict is a pass on a good unit, a
    wrong one a fail on a good unit."""
    return [
        ImageOutcome(0.5, NO_DEFECT if ok else "scratch", float(c), False, ())
        for c, ok in zip(confidences, correct, strict=True)
    ]


@pytest.mark.parametrize("audit_share", [0.0, 0.05, 0.25, 1.0])
def test_full_automation_decides_all_but_the_audit_share_whatever_the_confidence(validation, audit_share):
    confidences, correct, table = validation
    policy = StationPolicy("full", 0.01, uncertainty_band=0.1, audit_share=audit_share)
    preview = threshold_preview(confidences=confidences, correct=correct, risk_control=table, policy=policy)
    # audit draws spread evenly over [0, 1): the share decide() decides is the expected rate
    draws = (np.arange(len(confidences)) + 0.5) / len(confidences)
    decided = _policy_decides(confidences, table, policy, np.random.default_rng(1).permutation(draws))
    assert preview.automation_rate == pytest.approx(decided.mean(), abs=1 / len(confidences))
    assert preview.automation_rate == 1 - audit_share
    assert preview.applied_threshold is None
    # audits are drawn at random, so the error among decided units is that of all units
    assert preview.observed_error == (~correct).mean()
    assert "whatever the confidence" in preview.warning
    assert f"above the target {0.01:.2%}" in preview.warning  # this model errs more than 1 %
    if audit_share < 1:
        assert preview.operating_point == (1 - audit_share, (~correct).mean())
    else:
        assert preview.operating_point is None and "audit share" in preview.reason


@pytest.mark.parametrize("level", ["human", "shadow", "assisted"])
def test_a_person_decides_everything_at_the_other_levels(validation, level):
    confidences, correct, table = validation
    policy = StationPolicy(level, 0.05, audit_share=0.1)
    preview = threshold_preview(confidences=confidences, correct=correct, risk_control=table, policy=policy)
    assert not _policy_decides(confidences, table, policy, np.full(len(confidences), 0.9)).any()
    assert (preview.automation_rate, preview.decided_units, preview.observed_error) == (0.0, 0, None)
    assert preview.operating_point is None and "a person decides every unit" in preview.reason
    # what partial automation would use is still shown
    assert preview.certified_threshold == certified_threshold(table, 0.05)


def test_too_little_data_certifies_nothing_and_says_so():
    # given 20 validation units, all right and confident: too few to certify any bound
    confidences, correct = np.full(20, 0.99), np.ones(20, bool)
    table = risk_control_table(confidences, correct)
    assert not any(entry["certified"] for entry in table.values())
    for target, needed in ((0.3, 22), (0.1, 22), (0.05, 45), (0.005, 460)):
        policy = StationPolicy("partial", target)
        preview = threshold_preview(
            confidences=confidences, correct=correct, risk_control=table, policy=policy
        )
        # then nothing is automated, as the policy would do, and the reason is the table's
        assert not _policy_decides(confidences, table, policy, np.zeros(20)).any()
        assert preview.automation_rate == 0.0 and preview.error_bound is None
        assert preview.reason == (
            f"too little data: 20 units, at least {needed} needed to certify {min(target, 0.1):g}; "
            "every unit goes to a person"
        )
    # a target stricter than every bound in the table
    preview = threshold_preview(
        confidences=confidences, correct=correct, risk_control=table, policy=StationPolicy("partial", 0.001)
    )
    assert preview.reason.startswith("no error bound as strict as 0.001 was computed; the strictest is 0.005")


def test_thirty_units_certify_ten_percent_but_not_five(validation):
    confidences, correct = np.full(30, 0.99), np.ones(30, bool)
    table = risk_control_table(confidences, correct)
    loose, strict = (
        threshold_preview(
            confidences=confidences,
            correct=correct,
            risk_control=table,
            policy=StationPolicy("partial", target),
        )
        for target in (0.1, 0.05)
    )
    assert (loose.error_bound, loose.automation_rate, loose.reason) == (0.1, 1.0, "")
    assert strict.automation_rate == 0.0
    assert strict.reason.startswith("too little data: 30 units, at least 45 needed to certify 0.05")


def test_a_version_with_no_defective_validation_units_certifies_nothing():
    # as training writes the table when misses cannot be measured (models_registry/ml/pipeline.py)
    reason = "no defective units in the validation data: misses cannot be measured; nothing certified"
    table = {
        f"{alpha:g}": {"threshold": None, "certified": False, "reason": reason} for alpha in (0.01, 0.05)
    }
    confidences, correct = np.full(500, 0.99), np.ones(500, bool)
    preview = threshold_preview(
        confidences=confidences, correct=correct, risk_control=table, policy=StationPolicy("partial", 0.05)
    )
    assert preview.automation_rate == 0.0 and preview.reason == f"{reason}; every unit goes to a person"


def test_a_band_above_every_confidence_automates_nothing():
    confidences, correct = _validation(ties=False)  # every confidence under 1
    table = risk_control_table(confidences, correct)
    policy = StationPolicy("partial", 0.02, uncertainty_band=0.5)
    assert certified_threshold(table, 0.02) > 0.5
    preview = threshold_preview(confidences=confidences, correct=correct, risk_control=table, policy=policy)
    assert preview.applied_threshold == 1.0
    assert preview.automation_rate == (confidences >= 1.0).mean() == 0.0
    assert preview.reason.startswith("no validation unit reaches the confidence 1")


def test_the_curve_is_evaluations_risk_coverage_one_point_per_threshold():
    # with distinct confidences, every unit is a threshold: the same points as `curves`
    confidences, correct = _validation(500, seed=3, ties=False)
    assert len(np.unique(confidences)) == len(confidences)
    expected = [tuple(point) for point in curves(_outcomes(confidences, correct))["risk_coverage"]]
    assert risk_coverage_curve(confidences, correct) == expected
    # with ties, tied units enter together, as under `confidence >= threshold`
    assert risk_coverage_curve([0.9, 0.7, 0.9, 0.8], [True, True, False, True]) == [
        (0.5, 0.5),
        (0.75, 1 / 3),
        (1.0, 0.25),
    ]
    assert risk_coverage_curve([], []) == []


def test_the_curve_sent_to_the_page_is_thinned_keeping_its_ends():
    confidences, correct = _validation(ties=False)
    table = risk_control_table(confidences, correct)
    full = risk_coverage_curve(confidences, correct)
    assert len(full) > CURVE_POINTS
    preview = threshold_preview(
        confidences=confidences, correct=correct, risk_control=table, policy=StationPolicy("partial", 0.05)
    )
    assert 0.9 * CURVE_POINTS <= len(preview.curve) <= CURVE_POINTS
    assert preview.curve[0] == full[0] and preview.curve[-1] == full[-1]
    assert set(preview.curve) <= set(full)
    assert [c for c, _ in preview.curve] == sorted(c for c, _ in preview.curve)


def test_validation_scores_are_the_labelled_units():
    arrays = {
        "confidence": np.array([0.9, 0.8, 0.7]),
        "correct": np.array([True, False, True]),
        "known": np.array([True, False, True]),
    }
    confidences, correct = validation_scores(arrays)
    assert confidences.tolist() == [0.9, 0.7] and correct.tolist() == [True, True]
    del arrays["known"]  # a bundle from before `known` was stored: every unit had a label
    assert validation_scores(arrays)[0].tolist() == [0.9, 0.8, 0.7]


# The admin endpoint


def _staff(name: str, role: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _url(station, **query) -> str:
    from urllib.parse import urlencode

    return f"/admin/inspection/station/{station.pk}/thresholds/?{urlencode(query)}"


SETTINGS = {
    "target_escape_rate": 0.02,
    "automation_level": "partial",
    "uncertainty_band": 0.0,
    "audit_share": 0.05,
}


@pytest.mark.django_db
def test_only_those_who_change_station_settings_use_the_tool(make_station, client):
    station = make_station(level="partial")
    # anonymous: the admin's login page
    response = client.get(_url(station, **SETTINGS))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # staff inspectors and labelers may view stations, not set their thresholds
    for name, role in (("ines", INSPECTOR), ("lea", LABELER)):
        client.force_login(_staff(name, role))
        response = client.get(_url(station, **SETTINGS))
        assert response.status_code == 403, role
        assert "threshold tool" in response.json()["error"]
    client.force_login(_staff("sam", SUPERVISOR))
    assert client.get(_url(station, **SETTINGS)).status_code == 200
    response = client.get(f"/admin/inspection/station/{station.pk + 1000}/thresholds/")
    assert response.status_code == 404 and response.json() == {"error": f"no station {station.pk + 1000}"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "parameter, value, message",
    [
        ("target_escape_rate", "0.7", "must be a number from 0.0001 to 0.5, not '0.7'"),
        ("target_escape_rate", "0", "must be a number from 0.0001 to 0.5, not '0'"),
        ("target_escape_rate", "1 %", "must be a number from 0.0001 to 0.5, not '1 %'"),
        ("target_escape_rate", "nan", "must be a number from 0.0001 to 0.5, not 'nan'"),
        ("uncertainty_band", "-0.1", "must be a number from 0 to 0.5, not '-0.1'"),
        ("audit_share", "1.5", "must be a number from 0 to 1, not '1.5'"),
        ("automation_level", "turbo", "must be one of human, shadow, assisted, partial, full, not 'turbo'"),
    ],
)
def test_a_bad_setting_is_a_400_naming_it(make_station, client, parameter, value, message):
    station = make_station(level="partial")
    client.force_login(_staff("sam", SUPERVISOR))
    response = client.get(_url(station, **{**SETTINGS, parameter: value}))
    assert response.status_code == 400
    assert response.json() == {"errors": {parameter: message}}


@pytest.mark.django_db
def test_the_figures_are_the_unsaved_settings_on_each_versions_validation_units(
    make_station, make_model_version, client
):
    # given a champion certified at 0.5 for every bound, and a challenger with its real table
    champion = make_model_version("tiny", 1, threshold=0.5)
    challenger = make_model_version("tiny", 2)
    _, arrays = model_reference_get(model_version=challenger)
    confidences, correct = validation_scores(arrays)
    challenger.risk_control = risk_control_table(confidences, correct)
    challenger.save()
    station = make_station(
        level="assisted", champion=champion, challenger=challenger, target_escape_rate=0.01
    )
    changes_before = StationChange.objects.count()
    client.force_login(_staff("sam", SUPERVISOR))
    # when the supervisor tries partial automation at a 2 % target with a band, unsaved
    query = {**SETTINGS, "uncertainty_band": 0.1}
    body = client.get(_url(station, **query)).json()
    # then the champion's figures are those of its validation units at confidence >= 0.6
    assert body["settings"] == {
        "level": "partial",
        "target_escape_rate": 0.02,
        "uncertainty_band": 0.1,
        "audit_share": 0.05,
    }
    first, second = body["models"]
    assert (first["role"], first["model_version"], second["role"], second["model_version"]) == (
        "champion",
        "tiny:1",
        "challenger",
        "tiny:2",
    )
    assert first["error_bound"] == 0.02 and first["certified_threshold"] == 0.5
    assert first["applied_threshold"] == pytest.approx(0.6)
    decided = confidences >= 0.6
    assert first["automation_rate"] == pytest.approx(decided.mean() * (1 - 0.05))  # less the audits
    assert first["validation_units"] == len(confidences) == 8
    assert len(first["curve"]) == len(np.unique(confidences))
    # the challenger's few validation units certify nothing, and the table says why
    assert second["rollout_mode"] == "shadow" and second["automation_rate"] == 0.0
    assert (
        second["reason"]
        == "too little data: 8 units, at least 114 needed to certify 0.02; every unit goes to a person"
    )
    # nothing was saved
    station.refresh_from_db()
    assert station.automation_level == "assisted" and station.target_escape_rate == 0.01
    assert StationChange.objects.count() == changes_before
    # a parameter left out is the saved setting
    body = client.get(_url(station)).json()
    assert body["settings"]["level"] == "assisted" and body["settings"]["target_escape_rate"] == 0.01


@pytest.mark.django_db
def test_the_panel_is_on_the_change_page_for_supervisors_only(make_station, client):
    station = make_station(level="partial")
    client.force_login(_staff("sam", SUPERVISOR))
    page = client.get(f"/admin/inspection/station/{station.pk}/change/").content.decode()
    assert 'id="threshold-tool"' in page and f"/admin/inspection/station/{station.pk}/thresholds/" in page
    # beside the Automation fields, in one row with them, before the Models section
    beside = page.index('class="station-automation"')
    assert beside < page.index('name="automation_level"') < page.index('name="audit_share"')
    assert page.index('name="risk_reason"') < page.index('id="threshold-tool"') < page.index(">Models<")
    assert "css/threshold_tool.css" in page
    assert "vendor/uplot/uPlot.iife.min.js" in page and "js/threshold_tool.js" in page
    client.force_login(_staff("ines", INSPECTOR))
    page = client.get(f"/admin/inspection/station/{station.pk}/change/")
    assert page.status_code == 200 and b'id="threshold-tool"' not in page.content
