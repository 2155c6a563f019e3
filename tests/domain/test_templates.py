import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.limits import TemplateLimits
from signoff.domain.templates import (
    DependencyEffect,
    QuorumMode,
    Resolution,
    RiskLevel,
    StepKind,
    TemplateKind,
    TimeoutAction,
    parse_template,
    plan_to_template,
    template_to_dict,
    validate_payload,
)

DEMO = Path(__file__).resolve().parents[2] / "backend" / "signoff" / "demo"


def step(key, **kw):
    data = {"key": key, "assignees": {"users": ["ann"]}}
    data.update(kw)
    return data


def template(*steps, **kw):
    data = {"key": "t", "name": "T", "kind": "approval", "steps": list(steps)}
    data.update(kw)
    return data


def problems_of(data, limits=None):
    with pytest.raises(DomainError) as exc:
        if limits:
            parse_template(data, limits)
        else:
            parse_template(data)
    assert exc.value.code is ErrorCode.TEMPLATE_INVALID
    return {(p.path, p.message) for p in exc.value.problems}


def paths_of(data, limits=None):
    return {path for path, _ in problems_of(data, limits)}


def test_minimal_template_defaults():
    defn = parse_template(template(step("a")))
    s = defn.step("a")
    assert s.name == "a"
    assert s.kind is StepKind.APPROVAL
    assert s.quorum.mode is QuorumMode.ANY
    assert s.risk is RiskLevel.LOW
    assert s.timeout_action is TimeoutAction.EXPIRE
    assert s.deadline_risk_ratio is None
    assert s.max_attempts == 3 and s.any_rejection_rejects and not s.allow_auto_approve
    assert defn.max_revisions == 3 and not defn.compensate_on_failure


def test_sla_gives_default_ratio_and_escalation_gives_escalate_default():
    defn = parse_template(
        template(step("a", sla="PT8H", escalation=[{"after": "PT2H", "targets": {"users": ["b"]}}]))
    )
    s = defn.step("a")
    assert s.sla == timedelta(hours=8)
    assert s.deadline_risk_ratio == 0.8
    assert s.timeout_action is TimeoutAction.ESCALATE


def test_risk_rank_orders_levels():
    ranks = [r.rank for r in (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL)]
    assert ranks == [0, 1, 2, 3]
    assert RiskLevel.HIGH.is_elevated and not RiskLevel.MEDIUM.is_elevated


def test_reminders_are_sorted_even_beyond_sla():
    defn = parse_template(template(step("a", sla="PT4H", reminders=["PT5H", "PT1H", "PT2H"])))
    assert defn.step("a").reminders == (
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=5),
    )


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"name": "T", "kind": "approval", "steps": [step("a")]}, "key", "required"),
        ({"key": "t", "kind": "approval", "steps": [step("a")]}, "name", "required"),
        ({"key": "t", "name": "T", "steps": [step("a")]}, "kind", "required"),
        (template(step("a"), kind="nope"), "kind", "unknown value"),
        ({"key": "t", "name": "T", "kind": "approval"}, "steps", "required"),
        (template(), "steps", "at least one step"),
        (template(step("a"), steps="x"), "steps", "expected a list"),
        (template(step("a"), colour="red"), "colour", "unknown key"),
        (template(step("a", colour="red")), "steps[0].colour", "unknown key"),
        (template({"assignees": {"users": ["x"]}}), "steps[0].key", "required"),
        (template(step("a", kind="vote")), "steps[0].kind", "unknown value"),
        (template(step("a", assignees={})), "steps[0].assignees", "at least one assignee"),
        (template(step("a", assignees={"users": "ann"})), "steps[0].assignees.users", "list"),
        (template(step("a", sla="P1M")), "steps[0].sla", "no fixed length"),
        (template(step("a", sla="soon")), "steps[0].sla", "invalid duration"),
        (template(step("a", sla="PT0S")), "steps[0].sla", "longer than zero"),
        (template(step("a", reminders=["PT1H", "x"])), "steps[0].reminders[1]", "invalid"),
        (template(step("a", risk="extreme")), "steps[0].risk", "unknown value"),
        (template(step("a", sensitive="yes")), "steps[0].sensitive", "true or false"),
        (template(step("a", max_attempts=0)), "steps[0].max_attempts", "at least 1"),
        (template(step("a", params=[1])), "steps[0].params", "mapping"),
        (
            template(step("a", sla="PT1H", deadline_risk_ratio=1.5)),
            "steps[0].deadline_risk_ratio",
            "between 0 and 1",
        ),
        (
            template(step("a", deadline_risk_ratio=0.5)),
            "steps[0].deadline_risk_ratio",
            "needs an sla",
        ),
        (template(step("a", quorum={"mode": "n_of_m"})), "steps[0].quorum.n", "required"),
        (template(step("a", quorum={"mode": "n_of_m", "n": 0})), "steps[0].quorum.n", "at least 1"),
        (template(step("a", quorum={"mode": "any", "n": 2})), "steps[0].quorum.n", "only applies"),
        (
            template(step("a", quorum={"mode": "n_of_m", "n": 2})),
            "steps[0].quorum.n",
            "hold only 1 seat",
        ),
        (template(step("a", kind="decision", options=["yes"])), "steps[0].options", "at least 2"),
        (template(step("a", options=["yes", "no"])), "steps[0].options", "only decision steps"),
        (
            template(step("a", depends_on=[{"step": "zzz"}])),
            "steps[0].depends_on[0].step",
            "unknown step",
        ),
        (template(step("a", depends_on=["a"])), "steps[0].depends_on[0].step", "depends on itself"),
        (
            template(step("a"), step("b", depends_on=["a", "a"])),
            "steps[1].depends_on[1].step",
            "twice",
        ),
        (
            template(step("a", depends_on=[{"step": "b", "effect": "needs"}]), step("b")),
            "steps[0].depends_on[0].effect",
            "unknown value",
        ),
        (
            template(step("a", depends_on=[{"step": "b", "resolution": "pray"}]), step("b")),
            "steps[0].depends_on[0].resolution",
            "unknown value",
        ),
        (
            template(step("a", depends_on=[{"step": "b", "fallback": 1}]), step("b")),
            "steps[0].depends_on[0].fallback",
            "resolution: fallback",
        ),
        (template(step("a"), step("a")), "steps[1].key", "duplicate step key"),
        (
            template(
                step("a"), step("b"), step("m", kind="merge", assignees=None, depends_on=["a"])
            ),
            "steps[2].depends_on",
            "merge",
        ),
        (
            template(step("a", escalation=[{"after": "PT2H"}, {"after": "PT1H"}])),
            "steps[0].escalation[1].after",
            "strictly increasing",
        ),
        (
            template(step("a", escalation=[{"after": "PT2H"}, {"after": "PT2H"}])),
            "steps[0].escalation[1].after",
            "strictly increasing",
        ),
        (
            template(step("a", escalation=[{"action": "notify"}])),
            "steps[0].escalation[0].after",
            "required",
        ),
        (
            template(step("a", escalation=[{"after": "PT1H", "action": "reassign"}])),
            "steps[0].escalation[0].targets",
            "needs at least one target",
        ),
        (
            template(step("a", escalation=[{"after": "PT1H", "action": "shout"}])),
            "steps[0].escalation[0].action",
            "unknown value",
        ),
        (
            template(step("a", timeout_action="approve")),
            "steps[0].timeout_action",
            "allow_auto_approve",
        ),
        (
            template(step("a", timeout_action="approve", allow_auto_approve=True, sensitive=True)),
            "steps[0].timeout_action",
            "sensitive",
        ),
        (
            template(step("a", timeout_action="approve", allow_auto_approve=True, risk="high")),
            "steps[0].timeout_action",
            "high risk",
        ),
        (
            template(step("a", timeout_action="approve", allow_auto_approve=True, risk="critical")),
            "steps[0].timeout_action",
            "critical risk",
        ),
        (template(step("a"), fields={"x": {"type": "date"}}), "fields.x.type", "expected one of"),
        (
            template(step("a"), fields={"x": {"type": "number", "max_length": 3}}),
            "fields.x.max_length",
            "only applies",
        ),
        (
            template(step("a"), fields={"x": {"type": "string", "enum": []}}),
            "fields.x.enum",
            "non-empty",
        ),
        (template(step("a"), auto_approval={"name": "p"}), "auto_approval", "approves nothing"),
        (
            template(step("a"), auto_approval={"below_risk": "tiny"}),
            "auto_approval.below_risk",
            "unknown",
        ),
        (template(step("a"), max_revisions=-1), "max_revisions", "at least 0"),
    ],
)
def test_each_problem_has_its_path(data, path, fragment):
    found = problems_of(data)
    assert any(p == path and fragment in m for p, m in found), found


def test_all_problems_reported_at_once():
    data = template(
        step("a", sla="P1Y", risk="extreme"),
        step("a", depends_on=["ghost"]),
        step("c", quorum={"mode": "n_of_m", "n": 5}),
        kind="nope",
    )
    paths = paths_of(data)
    assert {
        "kind",
        "steps[0].sla",
        "steps[0].risk",
        "steps[1].key",
        "steps[1].depends_on[0].step",
        "steps[2].quorum.n",
    } <= paths


def test_error_message_summarises_problems():
    with pytest.raises(DomainError) as exc:
        parse_template(template(step("a", sla="x"), step("b", sla="y")))
    assert "2 problems" in exc.value.message
    assert "steps[0].sla" in exc.value.message


def test_cycle_is_named():
    data = template(
        step("a", depends_on=["c"]),
        step("b", depends_on=["a"]),
        step("c", depends_on=["b"]),
    )
    found = problems_of(data)
    assert ("steps", "cycle: a -> b -> c -> a") in found


def test_two_step_cycle():
    found = problems_of(template(step("x", depends_on=["y"]), step("y", depends_on=["x"])))
    assert ("steps", "cycle: x -> y -> x") in found


def test_all_quorum_with_only_groups_is_allowed():
    defn = parse_template(template(step("a", assignees={"groups": ["g"]}, quorum={"mode": "all"})))
    assert defn.step("a").quorum.mode is QuorumMode.ALL


def test_a_quorum_the_seats_cannot_meet_is_refused_when_saved():
    with pytest.raises(DomainError) as refused:
        parse_template(
            template(step("a", assignees={"roles": ["r"]}, quorum={"mode": "n_of_m", "n": 7}))
        )
    assert [p.path for p in refused.value.problems] == ["steps[0].quorum.n"]
    # a group or role holds as many seats as the template states
    defn = parse_template(
        template(
            step(
                "a",
                assignees={"roles": ["r"], "users": ["u"], "seats": {"r": 6}},
                quorum={"mode": "n_of_m", "n": 7},
            )
        )
    )
    assert defn.step("a").quorum.n == 7 and defn.step("a").assignees.seat_count == 7
    assert defn.step("a").needed == 7


def test_seat_counts_must_name_a_group_or_role_of_the_step():
    with pytest.raises(DomainError) as refused:
        parse_template(
            template(step("a", assignees={"users": ["u"], "roles": ["r"], "seats": {"x": 2}}))
        )
    assert [p.path for p in refused.value.problems] == ["steps[0].assignees.seats.x"]


def test_an_escalation_that_reassigns_must_leave_seats_enough():
    data = template(
        step(
            "a",
            assignees={"users": ["u", "v"]},
            quorum={"mode": "n_of_m", "n": 2},
            escalation=[{"after": "PT1H", "action": "reassign", "targets": {"roles": ["boss"]}}],
        )
    )
    with pytest.raises(DomainError) as refused:
        parse_template(data)
    assert [p.path for p in refused.value.problems] == ["steps[0].escalation[0].targets"]


def test_quorum_shorthand_string():
    assert parse_template(template(step("a", quorum="all"))).step("a").quorum.mode is QuorumMode.ALL


def test_unreachable_when_value_not_an_option():
    data = template(
        step("d", kind="decision", options=["ship", "hold"]),
        step("x", depends_on=[{"step": "d", "when": "maybe"}]),
        step("y", depends_on=["x"]),
    )
    found = problems_of(data)
    assert any(p == "steps[1].depends_on[0].when" and "unreachable" in m for p, m in found)
    # unreachability flows down a blocking chain
    assert any(p == "steps[2].depends_on[0].step" and "unreachable" in m for p, m in found)


def test_when_on_non_decision_step():
    found = problems_of(template(step("a"), step("b", depends_on=[{"step": "a", "when": "x"}])))
    assert any(p == "steps[1].depends_on[0].when" and "decision step" in m for p, m in found)


def test_contradictory_branches_unreachable():
    data = template(
        step("d", kind="decision", options=["ship", "hold"]),
        step("x", depends_on=[{"step": "d", "when": "ship"}, {"step": "d", "when": "hold"}]),
    )
    assert any("cannot be both" in m for _, m in problems_of(data))


def test_merge_of_branches_is_valid_and_merge_needs_no_assignees():
    data = template(
        step("d", kind="decision", options=["ship", "hold"]),
        step("s", depends_on=[{"step": "d", "when": "ship"}]),
        step("h", depends_on=[{"step": "d", "when": "hold"}]),
        {"key": "m", "kind": "merge", "depends_on": ["s", "h"]},
    )
    defn = parse_template(data)
    assert defn.topological_order() == ["d", "s", "h", "m"]
    assert [s.key for s in defn.dependents("d")] == ["s", "h"]


def test_merge_unreachable_only_when_all_branches_are():
    data = template(
        step("d", kind="decision", options=["ship", "hold"]),
        step("s", depends_on=[{"step": "d", "when": "nope"}]),
        step("h", depends_on=[{"step": "d", "when": "ship"}]),
        {"key": "m", "kind": "merge", "depends_on": ["s", "h"]},
    )
    found = problems_of(data)
    assert not any(p.startswith("steps[3]") for p, _ in found)
    data["steps"][2]["depends_on"][0]["when"] = "nope2"
    found = problems_of(data)
    assert any(p == "steps[3].depends_on" and "none of the merged" in m for p, m in found)


def test_limits():
    limits = TemplateLimits(max_steps=2, max_dependency_depth=1, max_escalation_levels=1)
    data = template(
        step("a", escalation=[{"after": "PT1H"}, {"after": "PT2H"}]),
        step("b", depends_on=["a"]),
        step("c", depends_on=["b"]),
    )
    found = problems_of(data, limits)
    assert any(p == "steps" and "limit of 2" in m for p, m in found)
    assert any(p == "steps[2].depends_on" and "exceeds the limit of 1" in m for p, m in found)
    assert any(p == "steps[0].escalation" and "limit of 1" in m for p, m in found)


def test_rich_template_round_trips():
    data = template(
        step(
            "d",
            kind="decision",
            options=["ship", "hold"],
            sla="PT8H",
            reminders=["PT4H"],
            escalation=[
                {
                    "after": "PT6H",
                    "action": "add_assignees",
                    "targets": {"groups": ["g"]},
                    "priority": 2,
                },
                {"after": "PT7H", "action": "raise_priority"},
            ],
        ),
        step(
            "s",
            depends_on=[{"step": "d", "when": "ship"}],
            action="send_email",
            params={"to": ["x"]},
        ),
        step(
            "t",
            depends_on=[
                {
                    "step": "s",
                    "effect": "enhances",
                    "resolution": "fallback",
                    "fallback": {"title": "x"},
                }
            ],
            quorum={"mode": "n_of_m", "n": 2},
            assignees={"users": ["a", "b", "c"]},
            sensitive=True,
            risk="critical",
            justification_required=True,
        ),
        step("u", timeout_action="approve", allow_auto_approve=True, risk="medium"),
        kind="plan",
        description="d",
        fields={"title": {"type": "string", "required": True, "max_length": 10, "enum": ["a"]}},
        max_revisions=1,
        compensate_on_failure=True,
        auto_approval={"name": "p", "below_risk": "medium", "actions": ["list"]},
    )
    defn = parse_template(data)
    doc = template_to_dict(defn)
    assert parse_template(json.loads(json.dumps(doc))) == defn
    assert doc["steps"][0]["sla"] == "PT8H"
    t = defn.step("t")
    assert t.depends_on[0].effect is DependencyEffect.ENHANCES
    assert t.depends_on[0].resolution is Resolution.FALLBACK
    assert t.depends_on[0].fallback == {"title": "x"}
    assert defn.kind is TemplateKind.PLAN


@pytest.mark.parametrize(
    "name", ["change-approval", "exception-request", "partner-approval", "agent-plan"]
)
def test_demo_templates_parse(name):
    data = yaml.safe_load((DEMO / f"{name}.yaml").read_text())
    defn = parse_template(data)
    assert defn.key == name
    assert parse_template(template_to_dict(defn)) == defn


def test_demo_details():
    load = lambda n: parse_template(yaml.safe_load((DEMO / f"{n}.yaml").read_text()))  # noqa: E731
    change = load("change-approval").step("review")
    assert change.assignees.roles == ("change-approver",)
    assert change.sla == timedelta(hours=8) and change.reminders == (timedelta(hours=4),)
    assert change.escalation[0].after == timedelta(hours=6)
    assert change.escalation[0].targets.groups == ("change-managers",)
    exc = load("exception-request").steps[0]
    assert exc.sensitive and exc.risk is RiskLevel.HIGH and exc.justification_required
    assert (
        exc.quorum.mode is QuorumMode.N_OF_M and exc.quorum.n == 2 and len(exc.assignees.users) == 3
    )
    partner = load("partner-approval")
    assert partner.topological_order() == ["manager", "legal", "executive"]
    assert all(s.sla and s.escalation for s in partner.steps) and partner.max_revisions == 3
    plan = load("agent-plan")
    assert plan.kind is TemplateKind.PLAN and plan.compensate_on_failure
    assert plan.auto_approval is not None and plan.auto_approval.below_risk is RiskLevel.MEDIUM


def base_plan_template():
    return parse_template(yaml.safe_load((DEMO / "agent-plan.yaml").read_text()))


def test_plan_to_template():
    plan = {
        "title": "Follow up with John",
        "steps": [
            {"key": "lookup", "action": "search_contacts", "risk": "low", "params": {"q": "John"}},
            {
                "key": "email",
                "action": "send_email",
                "risk": "high",
                "description": "Email John",
                "params": {"subject": "Hi"},
                "depends_on": [{"step": "lookup", "effect": "blocks", "resolution": "ask_user"}],
            },
            {
                "key": "task",
                "action": "create_task",
                "depends_on": [
                    {
                        "step": "email",
                        "effect": "enhances",
                        "resolution": "fallback",
                        "fallback": "Follow up",
                    }
                ],
            },
        ],
    }
    defn = plan_to_template(plan, base_plan_template())
    assert defn.kind is TemplateKind.PLAN
    assert defn.name == "Follow up with John"
    assert defn.topological_order() == ["lookup", "email", "task"]
    email = defn.step("email")
    assert email.kind is StepKind.APPROVAL
    assert email.action == "send_email" and email.params == {"subject": "Hi"}
    assert email.risk is RiskLevel.HIGH
    assert email.assignees.roles == ("agent-supervisor",)
    assert email.sla == timedelta(hours=4)
    assert email.name == "Email John"
    # unspecified: the template's risk for the action (create_task is low in the demo map)
    assert defn.step("task").risk is RiskLevel.LOW and defn.step("task").declared_risk is None
    assert defn.auto_approval == base_plan_template().auto_approval
    assert defn.compensate_on_failure


def test_plan_problems_point_into_the_plan():
    plan = {
        "steps": [
            {"key": "a", "action": "x", "depends_on": ["b"]},
            {"key": "b", "action": "y", "depends_on": [{"step": "a"}], "colour": 1},
            {"key": "c", "depends_on": [{"step": "ghost"}]},
        ]
    }
    with pytest.raises(DomainError) as exc:
        plan_to_template(plan, base_plan_template())
    found = {(p.path, p.message) for p in exc.value.problems}
    assert ("steps", "cycle: a -> b -> a") in found
    assert any(p == "steps[1].colour" for p, _ in found)
    assert any(p == "steps[2].action" for p, _ in found)
    assert any(p == "steps[2].depends_on[0].step" for p, _ in found)


def test_plan_cannot_inherit_auto_approve_timeout_on_high_risk():
    data = template(step("p", timeout_action="approve", allow_auto_approve=True), kind="plan")
    base = parse_template({**data, "action_risks": {"a": "low"}})
    defn = plan_to_template(
        {
            "steps": [
                {"key": "x", "action": "a", "risk": "high"},
                {"key": "y", "action": "a", "risk": "low"},
            ]
        },
        base,
    )
    assert defn.step("x").timeout_action is TimeoutAction.EXPIRE
    assert defn.step("y").timeout_action is TimeoutAction.APPROVE


FIELDS = {
    "title": {"type": "string", "required": True, "max_length": 5},
    "amount": {"type": "number", "required": False},
    "count": {"type": "integer"},
    "ok": {"type": "boolean"},
    "meta": {"type": "object"},
    "tags": {"type": "array", "max_length": 2},
    "level": {"type": "string", "enum": ["a", "b"]},
}


def test_payload_valid():
    validate_payload(
        FIELDS,
        {
            "title": "hi",
            "amount": 1.5,
            "count": 2,
            "ok": False,
            "meta": {},
            "tags": ["x"],
            "level": "a",
        },
        1000,
    )


def test_payload_reports_every_problem():
    with pytest.raises(DomainError) as exc:
        validate_payload(
            FIELDS,
            {
                "title": "too long",
                "amount": True,
                "count": 1.5,
                "ok": "yes",
                "meta": [],
                "tags": [1, 2, 3],
                "level": "c",
                "extra": 1,
            },
            1000,
        )
    assert exc.value.code is ErrorCode.INVALID_INPUT
    paths = {p.path for p in exc.value.problems}
    assert paths == {
        f"payload.{k}" for k in ("title", "amount", "count", "ok", "meta", "tags", "level", "extra")
    }


def test_payload_missing_required_and_too_large():
    with pytest.raises(DomainError) as exc:
        validate_payload(FIELDS, {"meta": {"blob": "x" * 200}}, 100)
    messages = {(p.path, p.message.split(" ")[0]) for p in exc.value.problems}
    assert ("payload.title", "required") in messages
    assert any(p == "payload" for p, _ in messages)


def test_template_is_immutable():
    defn = parse_template(template(step("a")))
    with pytest.raises(AttributeError):
        defn.key = "x"  # type: ignore[misc]
    copy.deepcopy(defn)
