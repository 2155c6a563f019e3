import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.simulation import compare, simulate
from signoff.domain.states import StepState
from signoff.domain.templates import parse_template, plan_to_template

DEMO = Path(__file__).resolve().parents[2] / "backend" / "signoff" / "demo"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def demo(name):
    return parse_template(yaml.safe_load((DEMO / f"{name}.yaml").read_text()))


CHANGE_PAYLOAD = {"title": "Upgrade db", "system": "billing", "rollback_plan": "restore snapshot"}


def run(defn, payload=None, **kw):
    kw.setdefault("requester", "rita")
    return simulate(
        defn, payload if payload is not None else {}, now=NOW, calendar=WALL_CLOCK, **kw
    )


def test_instant_decisions_walk_the_whole_chain():
    partner = demo("partner-approval")
    result = run(partner, {"partner": "ACME", "value_eur": 1000})
    assert result.outcome == "approved"
    assert [s.key for s in result.steps] == ["manager", "legal", "executive"]
    assert all(s.state is StepState.APPROVED and s.activated_at == NOW for s in result.steps)
    legal = result.step("legal")
    assert legal is not None and legal.sla_due == NOW + timedelta(days=3)
    assert [t.kind.value for t in legal.timers][:3] == ["reminder", "reminder", "escalation"]
    assert [n.kind for n in result.notifications] == ["assignment"] * 3
    assert result.problems == ()


def test_delayed_decisions_shift_activation_and_fire_timers():
    result = run(
        demo("partner-approval"),
        {"partner": "ACME", "value_eur": 1000},
        decisions={"manager": "approve@PT21H", "legal": "approve@PT1H"},
    )
    manager, legal = result.step("manager"), result.step("legal")
    assert manager.decided_at == NOW + timedelta(hours=21)
    assert legal.activated_at == manager.decided_at
    kinds = [(n.kind, n.step) for n in result.notifications]
    assert ("reminder", "manager") in kinds
    assert ("escalation", "manager") in kinds
    assert ("deadline_risk", "manager") in kinds  # 0.8 x 24h = 19h12
    escalation = next(n for n in result.notifications if n.kind == "escalation")
    assert escalation.recipients.roles == ("department-head",) and escalation.level == 1
    assert not manager.breached


def test_timeout_applies_the_timeout_action():
    result = run(demo("exception-request"), {}, decisions={"security-review": "timeout"})
    step = result.steps[0]
    assert step.state is StepState.EXPIRED and step.breached
    assert step.decided_at == NOW + timedelta(days=2)
    assert result.outcome == "expired"
    # payload problems are reported, not raised
    assert {p.path for p in result.problems} >= {"payload.policy", "payload.justification"}


def test_escalating_timeout_stays_pending():
    result = run(demo("change-approval"), CHANGE_PAYLOAD, decisions={"review": "timeout"})
    assert result.steps[0].state is StepState.ACTIVE
    assert result.outcome == "pending"
    assert any(
        n.kind == "escalation" and n.recipients.groups == ("change-managers",)
        for n in result.notifications
    )


def test_rejection_stops_the_chain():
    result = run(
        demo("partner-approval"), {"partner": "A", "value_eur": 1}, decisions={"legal": "reject"}
    )
    assert result.step("legal").state is StepState.REJECTED
    # a review chain ends with its first refusal: what was still waiting is cancelled
    assert result.step("executive").state is StepState.CANCELLED
    assert result.outcome == "rejected"


def test_requester_as_sole_approver_is_a_problem():
    defn = parse_template(
        {
            "key": "t",
            "name": "t",
            "kind": "approval",
            "steps": [
                {"key": "a", "assignees": {"users": ["rita"]}},
                {"key": "b", "assignees": {"users": ["rita", "sam"]}, "quorum": "all"},
            ],
        }
    )
    result = run(defn)
    messages = " ".join(p.message for p in result.problems)
    assert "step 'a' has too few seats" in messages
    assert "step 'b' has too few seats" in messages
    # with no override role configured nobody can fill the missing seats: the steps wait
    assert [s.state for s in result.steps] == [StepState.ACTIVE, StepState.ACTIVE]
    # with one, the missing seats go to its holders as the steps open, and they decide
    result = run(defn, override_roles=frozenset({"security-admin"}))
    assert result.outcome == "approved"
    escalated = {n.step for n in result.notifications if n.recipients.roles == ("security-admin",)}
    assert escalated == {"a", "b"}


def test_auto_approval_rules_fire_for_low_risk_agent_steps_only():
    plan = plan_to_template(
        {
            "steps": [
                {"key": "lookup", "action": "search_contacts", "risk": "low"},
                {"key": "send", "action": "send_email", "risk": "high", "depends_on": ["lookup"]},
            ]
        },
        demo("agent-plan"),
    )
    result = run(plan)
    assert [a.step for a in result.auto_approvals] == ["lookup"]
    assert result.step("lookup").auto_approved_by
    assert result.step("send").auto_approved_by is None
    assert [n.step for n in result.notifications] == ["send"]


def test_branches_and_ask_user_problems():
    defn = parse_template(
        {
            "key": "t",
            "name": "t",
            "kind": "plan",
            "steps": [
                {
                    "key": "d",
                    "kind": "decision",
                    "options": ["ship", "hold"],
                    "assignees": {"users": ["u"]},
                },
                {
                    "key": "ship",
                    "assignees": {"users": ["u"]},
                    "depends_on": [{"step": "d", "when": "ship"}],
                },
                {
                    "key": "hold",
                    "assignees": {"users": ["u"]},
                    "depends_on": [{"step": "d", "when": "hold"}],
                },
                {
                    "key": "x",
                    "assignees": {"users": ["u"]},
                    "depends_on": [{"step": "ship", "resolution": "ask_user"}],
                },
            ],
        }
    )
    result = run(defn)
    assert result.step("d").decision == "ship"
    assert result.step("hold").state is StepState.SKIPPED
    result = run(defn, decisions={"d": "hold"})
    assert result.step("ship").state is StepState.SKIPPED
    # held for a person, who (in a dry run) never answers: the hold times out
    assert result.step("x").state is StepState.EXPIRED
    assert any("would wait for a person" in p.message for p in result.problems)
    result = run(defn, decisions={"d": "maybe", "ghost": "approve"})
    assert {p.path for p in result.problems} == {"decisions.d", "decisions.ghost"}


def test_simulation_writes_nothing():
    defn = demo("partner-approval")
    payload = {"partner": "ACME", "value_eur": 1000}
    decisions = {"legal": "approve@PT2H"}
    snapshot = (copy.deepcopy(defn), copy.deepcopy(payload), dict(decisions))
    first = run(defn, payload, decisions=decisions)
    second = run(defn, payload, decisions=decisions)
    assert first == second
    assert (defn, payload, decisions) == snapshot


def test_compare_finds_differences():
    before_defn = demo("change-approval")
    data = yaml.safe_load((DEMO / "change-approval.yaml").read_text())
    data["steps"][0]["sla"] = "PT2H"
    data["steps"][0]["reminders"] = ["PT1H"]
    data["steps"][0]["escalation"][0]["after"] = "PT90M"
    data["steps"][0]["assignees"] = {"groups": ["cab"]}
    data["steps"][0]["timeout_action"] = "reject"
    after_defn = parse_template(data)
    decisions = {"review": "approve@PT3H"}
    before = run(before_defn, CHANGE_PAYLOAD, decisions=decisions)
    after = run(after_defn, CHANGE_PAYLOAD, decisions=decisions)
    kinds = {d.kind for d in compare(before, after)}
    assert {"assignees", "deadline", "breach", "state", "outcome"} <= kinds
    assert compare(before, before) == []


def test_compare_added_and_removed_steps():
    one = parse_template(
        {
            "key": "t",
            "name": "t",
            "kind": "approval",
            "steps": [{"key": "a", "assignees": {"users": ["u"]}}],
        }
    )
    two = parse_template(
        {
            "key": "t",
            "name": "t",
            "kind": "approval",
            "steps": [{"key": "b", "assignees": {"users": ["u"]}}],
        }
    )
    diffs = compare(run(one), run(two))
    assert {(d.kind, d.step) for d in diffs} >= {("step_removed", "a"), ("step_added", "b")}
