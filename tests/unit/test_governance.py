"""The approval rules on their own: lifecycle, line actions, policy thresholds, roles, password hashing."""

from __future__ import annotations

import pandas as pd
import pytest

from rebal_core.governance.identity import AUTOPILOT, Actor, PermissionDenied, hash_password, verify_password
from rebal_core.governance.policy import (
    PLAN_STATES,
    TRANSITIONS,
    IllegalTransition,
    Policy,
    Thresholds,
    check_line_action,
    next_state,
)


def test_the_lifecycle_runs_draft_to_received():
    state = "draft"
    for event in ("submit", "approve", "release", "receive"):
        state = next_state(state, event)
    assert state == "received"
    assert next_state("in_review", "send_back") == "draft"
    assert next_state("approved", "send_back") == "draft"


@pytest.mark.parametrize(
    ("state", "event", "says"),
    [
        ("draft", "release", "cannot release a plan that is a draft: submit it for review and have it approved first"),
        ("in_review", "release", "approve it first"),
        ("draft", "approve", "submit it for review first"),
        ("released", "submit", "cannot submit a plan that is released"),
        ("received", "send_back", "cannot send back a plan that is received"),
        ("approved", "receive", "release it first"),
    ],
)
def test_illegal_transitions_are_refused_with_what_to_do(state, event, says):
    with pytest.raises(IllegalTransition, match=says):
        next_state(state, event)


def test_every_state_pair_outside_the_table_is_refused():
    for event, (sources, target, _) in TRANSITIONS.items():
        for state in PLAN_STATES:
            if state in sources:
                assert next_state(state, event) == target
            else:
                with pytest.raises(IllegalTransition):
                    next_state(state, event)


def test_line_actions_only_while_the_plan_is_open():
    check_line_action("in_review", "approve")
    check_line_action("draft", "firm")
    with pytest.raises(IllegalTransition, match="cannot approve lines of a plan that is a draft"):
        check_line_action("draft", "approve")
    for state in ("approved", "released", "received"):
        for action in ("approve", "reject", "firm", "reset"):
            with pytest.raises(IllegalTransition):
                check_line_action(state, action)


def test_policy_thresholds_most_specific_wins():
    policy = Policy(
        version=3,
        default=Thresholds(line_value=1000, line_cost=100),
        lanes={"A>B": Thresholds(line_value=5000)},  # a routine shuttle lane: looser on value only
        categories={"Fragile": Thresholds(line_value=200, line_cost=None)},
    )
    lines = pd.DataFrame(
        {
            "from_site_id": ["A", "A", "C", "C", "C"],
            "to_site_id": ["B", "B", "D", "D", "D"],
            "category": ["Tools", "Fragile", "Tools", "Fragile", "Tools"],
            "value": [4000, 4000, 999, 300, 10],
            "cost": [50, 50, 50, 50, 150],
        }
    )
    out = policy.assess(lines)
    assert out["needs_approval"].tolist() == [False, False, False, True, True]
    assert "category Fragile, policy v3" in out["approval_rule"].iat[3]
    assert out["approval_rule"].iat[4] == "line cost $150 > $100 (default, policy v3)"


def test_policy_round_trips_and_refuses_bad_values():
    policy = Policy(version=2, default=Thresholds(10, None), lanes={"X>Y": Thresholds(None, 5)})
    assert Policy.from_json(policy.to_json(), 2) == policy
    assert Policy(default=Thresholds(-1, 5)).problems() == [
        "default: line_value must be a number >= 0 or empty, got -1"
    ]


def test_roles():
    viewer, planner, approver = Actor("v", "viewer"), Actor("p", "planner"), Actor("a", "approver")
    with pytest.raises(PermissionDenied, match="v is a viewer; saving scenarios needs the planner or admin role"):
        viewer.require("save_scenario")
    with pytest.raises(PermissionDenied, match="approving or rejecting lines needs the approver or admin role"):
        planner.require("decide_line")
    with pytest.raises(PermissionDenied):
        approver.require("edit_line")
    with pytest.raises(PermissionDenied):
        AUTOPILOT.require("approve_plan")  # the system approves only what the policy lets through
    approver.require("approve_plan")
    with pytest.raises(ValueError, match="unknown role"):
        Actor("x", "superuser")


def test_passwords_are_salted_argon2_hashes():
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("$argon2id$")
    assert verify_password(a, "correct horse battery")
    assert not verify_password(a, "wrong horse battery")
    assert not verify_password(None, "anything at all")
    with pytest.raises(ValueError, match="at least 10 characters"):
        hash_password("short")


def test_who_may_decide_lines_is_one_rule_the_page_asks():
    """The Plans page kept its own copy of this table; it now asks the core."""
    from rebal_core.governance.identity import Actor
    from rebal_core.services.approvals import may_decide

    planner, approver, viewer = Actor("p", "planner"), Actor("a", "approver"), Actor("v", "viewer")
    assert may_decide(approver, "in_review", "approve") and not may_decide(planner, "in_review", "approve")
    assert may_decide(approver, "in_review", "reject") and not may_decide(planner, "in_review", "reject")
    assert may_decide(planner, "draft", "reject")
    assert may_decide(planner, "draft", "reset") and may_decide(approver, "in_review", "reset")
    assert not any(may_decide(viewer, s, a) for s in ("draft", "in_review") for a in ("approve", "reject", "reset"))
