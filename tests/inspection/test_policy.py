"""The automation policy, as a table: every level, every edge."""

import pytest

from inspection.enums import AutomationLevel
from inspection.policy import (
    Action,
    ModelOutput,
    Role,
    StationPolicy,
    audit_draw,
    canary_draw,
    certified_threshold,
    decide,
    model_needed,
    route,
)

FAIL_SURE = ModelOutput("fail", 0.99)
PASS_SURE = ModelOutput("pass", 0.97)
UNSURE = ModelOutput("fail", 0.70)

FRAME = "frame check: uniform frame"

# (level, output, certified threshold, band, audit share, audit draw[, frame problem])
#   -> (action, verdict, reason, blind); the frame problem is None where a case leaves it out
CASES = [
    # human only: never the model, always blind
    ("human", FAIL_SURE, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "human", True),
    ("human", None, None, 0.0, 0.0, 0.5, Action.QUEUE, None, "human", True),
    # shadow: the model ran, the human does not see it
    ("shadow", FAIL_SURE, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "shadow", True),
    ("shadow", PASS_SURE, None, 0.0, 0.0, 0.5, Action.QUEUE, None, "shadow", True),
    # assisted: the human decides, seeing the model
    ("assisted", FAIL_SURE, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "assisted", False),
    ("assisted", UNSURE, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "assisted", False),
    # partial: decide at or above the certified threshold (+ band), else defer (shown assisted)
    ("partial", FAIL_SURE, 0.9, 0.0, 0.0, 0.5, Action.DECIDE, "fail", "", False),
    ("partial", PASS_SURE, 0.9, 0.0, 0.0, 0.5, Action.DECIDE, "pass", "", False),
    ("partial", UNSURE, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "deferred", False),
    # edge: confidence equal to the threshold decides; the band raises the bar
    ("partial", ModelOutput("pass", 0.9), 0.9, 0.0, 0.0, 0.5, Action.DECIDE, "pass", "", False),
    ("partial", ModelOutput("pass", 0.9), 0.9, 0.05, 0.0, 0.5, Action.QUEUE, None, "deferred", False),
    ("partial", PASS_SURE, 0.9, 0.05, 0.0, 0.5, Action.DECIDE, "pass", "", False),
    ("partial", FAIL_SURE, None, 0.0, 0.0, 0.5, Action.QUEUE, None, "deferred", False),  # not certified
    ("partial", FAIL_SURE, 0.98, 0.5, 0.0, 0.5, Action.QUEUE, None, "deferred", False),  # capped at 1.0
    ("partial", ModelOutput("fail", 1.0), 0.98, 0.5, 0.0, 0.5, Action.DECIDE, "fail", "", False),
    # partial, audits: a unit the model would decide alone goes blind to a person at the audit share
    ("partial", PASS_SURE, 0.9, 0.0, 0.1, 0.09, Action.QUEUE, None, "audit", True),
    ("partial", FAIL_SURE, 0.9, 0.05, 0.1, 0.05, Action.QUEUE, None, "audit", True),  # with a band
    ("partial", PASS_SURE, 0.9, 0.0, 0.1, 0.1, Action.DECIDE, "pass", "", False),  # edge: draw == share
    ("partial", PASS_SURE, 0.9, 0.0, 1.0, 0.999, Action.QUEUE, None, "audit", True),  # everything audited
    ("partial", UNSURE, 0.9, 0.0, 0.1, 0.05, Action.QUEUE, None, "deferred", False),  # unsure: deferred
    ("partial", ModelOutput("pass", 0.9), 0.9, 0.05, 1.0, 0.0, Action.QUEUE, None, "deferred", False),
    ("partial", FAIL_SURE, None, 0.0, 1.0, 0.0, Action.QUEUE, None, "deferred", False),  # nothing certified
    # full: the model decides, except the audit share, which goes blind to a human
    ("full", UNSURE, None, 0.0, 0.1, 0.5, Action.DECIDE, "fail", "", False),
    ("full", PASS_SURE, 0.9, 0.0, 0.1, 0.09, Action.QUEUE, None, "audit", True),
    ("full", PASS_SURE, 0.9, 0.0, 0.1, 0.1, Action.DECIDE, "pass", "", False),  # edge: draw == share
    ("full", PASS_SURE, 0.9, 0.0, 0.0, 0.0, Action.DECIDE, "pass", "", False),  # no audits at share 0
    ("full", PASS_SURE, 0.9, 0.0, 1.0, 0.999, Action.QUEUE, None, "audit", True),  # everything audited
    # no prediction (no model, or it failed): a human decides, whatever the level
    ("shadow", None, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "no_model", True),
    ("assisted", None, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "no_model", True),
    ("partial", None, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "no_model", True),
    ("full", None, 0.9, 0.0, 0.0, 0.5, Action.QUEUE, None, "no_model", True),
    # a frame the model cannot judge: a human decides, never the model, even at full automation
    ("full", None, 0.9, 0.0, 0.0, 0.5, FRAME, Action.QUEUE, None, "frame_check", True),
    ("full", PASS_SURE, None, 0.0, 0.0, 0.5, FRAME, Action.QUEUE, None, "frame_check", True),
    ("partial", PASS_SURE, 0.9, 0.0, 0.0, 0.5, FRAME, Action.QUEUE, None, "frame_check", True),
    ("shadow", None, 0.9, 0.0, 0.0, 0.5, FRAME, Action.QUEUE, None, "frame_check", True),
    ("human", None, None, 0.0, 0.0, 0.5, FRAME, Action.QUEUE, None, "human", True),  # no model anyway
]
CASES = [case if len(case) == 11 else (*case[:6], None, *case[6:]) for case in CASES]


@pytest.mark.parametrize(
    "level, output, threshold, band, audit_share, draw, frame, action, verdict, reason, blind", CASES
)
def test_policy_table(
    level, output, threshold, band, audit_share, draw, frame, action, verdict, reason, blind
):
    station = StationPolicy(
        level=AutomationLevel(level), target_escape_rate=0.01, uncertainty_band=band, audit_share=audit_share
    )
    outcome = decide(station, output, threshold=threshold, audit_draw=draw, frame_problem=frame)
    assert (outcome.action, outcome.verdict, outcome.queue_reason, outcome.blind) == (
        action,
        verdict,
        reason,
        blind,
    )


def test_only_the_human_level_skips_the_model():
    assert [level for level in AutomationLevel if not model_needed(level)] == [AutomationLevel.HUMAN]


def test_an_unknown_level_is_an_error():
    with pytest.raises(ValueError):
        station = StationPolicy(level="sometimes", target_escape_rate=0.01)
        decide(station, PASS_SURE, threshold=0.9, audit_draw=0)


RISK_CONTROL = {
    "0.005": {"threshold": None, "certified": False},
    "0.01": {"threshold": 0.97, "certified": True},
    "0.02": {"threshold": 0.93, "certified": True},
    "0.05": {"threshold": 0.8, "certified": True},
    "0.1": {"threshold": None, "certified": False},
}


@pytest.mark.parametrize(
    "target, expected",
    [
        (0.001, None),  # stricter than any bound
        (0.005, None),  # that bound is not certified
        (0.01, 0.97),
        (0.015, 0.97),  # between bounds: the stricter one that meets the target
        (0.02, 0.93),
        (0.1, 0.8),  # 0.1 not certified: the loosest certified bound under the target
        (0.5, 0.8),
    ],
)
def test_certified_threshold_uses_the_loosest_certified_bound_within_the_target(target, expected):
    assert certified_threshold(RISK_CONTROL, target) == expected


def test_canary_routing_is_sticky_and_close_to_its_share():
    draws = [canary_draw("screens-1", f"SN{i:05d}") for i in range(20_000)]
    # sticky: the same unit always draws the same number
    assert canary_draw("screens-1", "SN00042") == draws[42]
    # uniform enough: a 10 % share routes about 10 % of units
    routed = [route(has_challenger=True, rollout_mode="canary", canary_share=0.1, draw=d) for d in draws]
    share = routed.count(Role.CANARY) / len(routed)
    assert 0.09 < share < 0.11
    # another station routes the same serials independently
    assert canary_draw("screens-2", "SN00042") != draws[42]


def test_an_audit_at_partial_automation_keeps_the_threshold_it_would_have_been_decided_at():
    station = StationPolicy(AutomationLevel.PARTIAL, 0.01, uncertainty_band=0.05, audit_share=0.5)
    outcome = decide(station, PASS_SURE, threshold=0.9, audit_draw=0.2)
    assert (outcome.queue_reason, outcome.threshold) == ("audit", pytest.approx(0.95))


def test_audit_draws_are_sticky_near_their_share_and_independent_of_canary_routing():
    serials = [f"SN{i:05d}" for i in range(20_000)]
    draws = [audit_draw("screens-1", serial) for serial in serials]
    # sticky: the same unit always draws the same number
    assert audit_draw("screens-1", "SN00042") == draws[42]
    # a 2 % audit share audits about 2 % of units
    audited = [draw < 0.02 for draw in draws]
    assert 0.017 < sum(audited) / len(draws) < 0.023
    # and about 2 % of the canary units too: the two draws are independent
    canary = [canary_draw("screens-1", serial) < 0.1 for serial in serials]
    both = sum(a and c for a, c in zip(audited, canary, strict=True))
    assert 0.013 < both / sum(canary) < 0.027


@pytest.mark.parametrize(
    "has_challenger, mode, share, draw, role",
    [
        (True, "canary", 0.1, 0.05, Role.CANARY),
        (True, "canary", 0.1, 0.1, Role.CHAMPION),  # edge: draw == share
        (True, "shadow", 1.0, 0.0, Role.CHAMPION),  # a shadow challenger never decides
        (False, "canary", 1.0, 0.0, Role.CHAMPION),  # no challenger
        (True, "canary", 0.0, 0.0, Role.CHAMPION),
    ],
)
def test_route(has_challenger, mode, share, draw, role):
    assert route(has_challenger=has_challenger, rollout_mode=mode, canary_share=share, draw=draw) == role
