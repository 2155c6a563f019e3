"""The rules of docs/reference/templates.md that are not about who decides, proven through
GraphQL on a real database: risk assessed by signoff, dependencies in review chains and plans
(every effect with every resolution), permissions on simulations, plan metadata kept and
returned, and seats: impossible quorums refused when saved, unfillable seats escalating."""

from __future__ import annotations

from typing import Any

import pytest

from signoff.db import sql
from tests.api.conftest import ADMIN, APPROVE, REJECT, RESOLVE, Who, step_of

TEMPLATES = "query { templates { key } }"
SIMULATE = """query($key: String, $definition: JSON, $payload: JSON!) {
  simulate(templateKey: $key, definition: $definition, payload: $payload) {
    outcome steps { key } } }"""
AGENT: Who = ("agent", (), ())
REQUESTER: Who = ("rita", (), ())
ANN: Who = ("ann", (), ())
BEN: Who = ("ben", (), ())


def actions_of(item: dict[str, Any]) -> list[str]:
    return [e["action"] for e in item["auditEvents"]["nodes"]]


# -- risk is assessed by the system (seed 003 ACTION_RISK_LEVELS) -------------------------------


async def test_risk_is_assessed_from_the_template_raised_never_lowered_and_both_are_kept(desk):
    item = await desk.submit(
        "agent-plan",
        AGENT,
        plan={
            "steps": [
                {"key": "quiet", "action": "list_tasks"},  # low, nothing declared
                {"key": "raised", "action": "create_task", "risk": "high"},  # low, raised
                {"key": "lowered", "action": "create_draft", "risk": "low"},  # medium stays
                {"key": "unknown", "action": "wire_money", "risk": "low"},  # not listed: high
                {"key": "free", "action": "find_free_time", "risk": "low"},  # low, not allowed
            ]
        },
    )
    item = await desk.read(item)  # as stored, not only as the submission returned it
    risks = {s["key"]: (s["risk"], s["declaredRisk"]) for s in item["steps"]}
    assert risks == {
        "quiet": ("LOW", None),
        "raised": ("HIGH", "HIGH"),
        "lowered": ("MEDIUM", "LOW"),
        "unknown": ("HIGH", "LOW"),
        "free": ("LOW", "LOW"),
    }
    # the demo policy lists list_events, search_contacts and fetch_emails below medium: a low
    # risk alone (list_tasks, find_free_time) approves nothing without a listed action
    assert all(s["stepState"] == "ACTIVE" and s["decisions"] == [] for s in item["steps"])
    assert "step.approve" not in actions_of(item)


async def test_auto_approval_needs_an_allowed_action_and_a_low_assessed_risk(desk):
    item = await desk.submit(
        "agent-plan",
        AGENT,
        plan={
            "steps": [
                {"key": "allowed", "action": "fetch_emails"},
                {"key": "declared-up", "action": "fetch_emails", "risk": "medium"},
                {"key": "not-listed", "action": "get_all_contacts", "risk": "low"},
            ]
        },
    )
    item = await desk.read(item)
    states = {s["key"]: s["stepState"] for s in item["steps"]}
    assert states == {"allowed": "APPROVED", "declared-up": "ACTIVE", "not-listed": "ACTIVE"}
    [decision] = step_of(item, "allowed")["decisions"]
    assert (decision["actorId"], decision["outcome"]) == ("system", "APPROVE_BY_POLICY")
    assert "low-risk-agent-steps" in decision["rule"]
    [approved] = [e for e in item["auditEvents"]["nodes"] if e["action"] == "step.approve"]
    data = approved["data"]
    assert (data["step"], data["by"], data["risk"], data["declared_risk"]) == (
        "allowed",
        "policy",
        "low",
        None,
    )
    assert data["rule"] == decision["rule"]


# -- dependencies, as documented, in review chains and in plans ---------------------------------

EFFECTS = ("blocks", "enhances", "optional")
RESOLUTIONS = ("wait", "skip", "fallback", "ask_user")
#: What the dependent step does when its upstream is rejected (docs/reference/templates.md);
#: in a review chain a blocking wait makes the rejection decisive, and the item ends.
AFTER_REJECTION = {
    ("wait", "blocks"): "WAITING",
    ("wait", "enhances"): "ACTIVE",
    ("wait", "optional"): "ACTIVE",
    ("skip", "blocks"): "SKIPPED",
    ("skip", "enhances"): "SKIPPED",
    ("skip", "optional"): "ACTIVE",
    ("fallback", "blocks"): "ACTIVE",
    ("fallback", "enhances"): "ACTIVE",
    ("fallback", "optional"): "ACTIVE",
    ("ask_user", "blocks"): "HELD",
    ("ask_user", "enhances"): "HELD",
    ("ask_user", "optional"): "HELD",
}
HOLD_OPTIONS = ["RETRY", "SKIP", "PROVIDE", "CANCEL"]


def _pair(kind: str, effect: str, resolution: str) -> dict[str, Any]:
    """`up` and its dependent `down`; a plan also has an independent step `other`."""
    dependency: dict[str, Any] = {"step": "up", "effect": effect, "resolution": resolution}
    if resolution == "fallback":
        dependency["fallback"] = {"score": 0}
    down = {"key": "down", "params": {"keep": 1}, "depends_on": [dependency]}
    if kind == "plan":
        steps = [{"key": "up"}, down, {"key": "other"}]
        return {
            "key": f"plan-{effect}-{resolution}",
            "name": "plan",
            "kind": "plan",
            "action_risks": {"read": "medium"},
            "steps": [{"key": "proto", "assignees": {"users": ["ann", "ben"]}}],
            "plan": {"steps": [{**step, "action": "read"} for step in steps]},
        }
    return {
        "key": f"chain-{effect}-{resolution}",
        "name": "chain",
        "kind": "approval",
        "steps": [
            {"key": "up", "assignees": {"users": ["ann"]}},
            {**down, "assignees": {"users": ["ben"]}},
        ],
    }


@pytest.mark.parametrize("kind", ["approval", "plan"])
@pytest.mark.parametrize("effect", EFFECTS)
@pytest.mark.parametrize("resolution", RESOLUTIONS)
async def test_a_dependency_does_what_its_effect_and_resolution_say(desk, kind, effect, resolution):
    document = _pair(kind, effect, resolution)
    plan = document.pop("plan", None)
    await desk.publish(document)
    who = AGENT if plan else REQUESTER
    item = await desk.submit(document["key"], who, **({"plan": plan} if plan else {}))
    up, down = step_of(item, "up"), step_of(item, "down")
    assert (up["stepState"], down["stepState"]) == ("ACTIVE", "WAITING")
    item = await desk.act(REJECT, {"stepId": step_of(item, "up")["id"], "reason": "no"}, ANN)
    item = await desk.read(item)
    down = step_of(item, "down")
    expected = AFTER_REJECTION[(resolution, effect)]
    if (kind, expected) == ("approval", "WAITING"):
        expected = "CANCELLED"
    assert down["stepState"] == expected
    if resolution == "fallback":  # the fallback value reached the params; the original is kept
        assert down["params"] == {"keep": 1, "score": 0}
        assert down["originalParams"] == {"keep": 1}
    else:
        assert down["params"] == {"keep": 1}
    if expected == "HELD":  # announced, timed, and resolved by the requester with a value
        assert down["hold"] == {"upstreams": ["up"], "options": HOLD_OPTIONS}
        assert actions_of(item).count("step.dependency_conflict") == 1
        timer = await sql.fetchrow(
            "SELECT t.status FROM timer t JOIN step s ON s.id = t.step_id "
            "JOIN workflow_item i ON i.id = s.item_id "
            "WHERE i.tenant_id = $1 AND s.key = 'down' AND t.kind = 'hold'",
            desk.gql.tenant,
        )
        assert timer is not None and timer["status"] == "armed"
        value = {"stepId": down["id"], "option": "PROVIDE", "reason": "by hand", "value": {"v": 2}}
        item = await desk.act(RESOLVE, value, who)
        down = step_of(item, "down")
        assert (down["stepState"], down["params"]) == ("ACTIVE", {"keep": 1, "v": 2})
    if down["stepState"] == "ACTIVE":  # the item goes on without the rejected step
        assert item["state"] == "PENDING"
        item = await desk.act(APPROVE, {"stepId": down["id"]}, BEN)
    if kind == "plan":
        # a plan goes ahead with what people approved; a step still waiting on the failed
        # upstream is skipped once nothing open could unblock it
        assert item["state"] == "PENDING"
        item = await desk.act(APPROVE, {"stepId": step_of(item, "other")["id"]}, BEN)
        assert item["state"] == "APPROVED"
        ran = expected not in ("WAITING", "SKIPPED")
        assert step_of(item, "down")["stepState"] == ("APPROVED" if ran else "SKIPPED")
    elif expected in ("ACTIVE", "HELD"):
        assert item["state"] == "APPROVED"
    else:  # the rejection is decisive: nothing goes on without it
        assert item["state"] == "REJECTED"


# -- permissions on every read: simulations of published templates ------------------------------


async def test_simulating_a_published_template_needs_the_template_admin_permission(desk, gql):
    payload = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
    variables = {"key": "change-approval", "payload": payload}
    response = await gql.run(SIMULATE, variables, token=gql.token("alice"))
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body.get("data") is None or body["data"].get("simulate") is None
    simulated = await desk.call(SIMULATE, variables, ADMIN)
    assert simulated["steps"]
    # a draft definition the caller passes inline shows nothing stored: anyone may try it
    draft = {
        "key": "d",
        "name": "d",
        "kind": "approval",
        "steps": [{"key": "s", "assignees": {"users": ["ann"]}}],
    }
    mine = await desk.call(SIMULATE, {"definition": draft, "payload": {}}, ("alice", (), ()))
    assert mine["outcome"] == "APPROVED"


# -- plan metadata (seed 003) is kept and returned ----------------------------------------------


async def test_plan_metadata_is_kept_and_returned_through_the_api(desk):
    item = await desk.submit(
        "agent-plan",
        AGENT,
        plan={
            "summary": "Look John up, then mail him",
            "steps": [
                {
                    "key": "lookup",
                    "action": "search_contacts",
                    "expectedOutcome": "John's address",
                    "estimatedTime": "10 seconds",
                    "requiredPermissions": ["contacts.read"],
                },
                {
                    "key": "mail",
                    "action": "send_email",
                    "expected_outcome": "a sent mail",
                    "depends_on": ["lookup"],
                },
            ],
        },
    )
    for seen in (item, await desk.read(item)):
        assert seen["summary"] == "Look John up, then mail him"
        lookup, mail = step_of(seen, "lookup"), step_of(seen, "mail")
        assert (lookup["expectedOutcome"], lookup["estimatedTime"]) == (
            "John's address",
            "10 seconds",
        )
        assert lookup["requiredPermissions"] == ["contacts.read"]
        assert (mail["expectedOutcome"], mail["estimatedTime"]) == ("a sent mail", None)
        assert mail["requiredPermissions"] == []


# -- seats: an impossible quorum is refused when saved; unfillable seats escalate ---------------


async def test_a_template_whose_quorum_cannot_be_met_is_refused_when_saved(desk):
    impossible = {
        "key": "impossible",
        "name": "impossible",
        "kind": "approval",
        "steps": [
            {
                "key": "review",
                "assignees": {"users": ["ann", "ben"], "groups": ["ops"], "seats": {"ops": 2}},
                "quorum": {"mode": "n_of_m", "n": 5},
            }
        ],
    }
    result = await desk.save(impossible)
    assert result["template"] is None
    [error] = result["errors"]
    assert error["code"] == "TEMPLATE_INVALID"
    assert "steps[0].quorum" in error["message"]
    listed = await desk.gql.data(TEMPLATES, as_user="root", roles=("admin",))
    assert "impossible" not in {t["key"] for t in listed["templates"]}
    # four seats can meet four approvals
    impossible["steps"][0]["quorum"]["n"] = 4
    assert (await desk.save(impossible))["errors"] == []


async def test_a_step_whose_seats_cannot_be_filled_escalates_at_activation(desk):
    await desk.publish(
        {
            "key": "short",
            "name": "short",
            "kind": "approval",
            "steps": [
                {
                    "key": "review",
                    "assignees": {"users": ["rita", "ann"]},
                    "quorum": "all",
                    "escalation": [
                        {
                            "after": "PT1H",
                            "action": "add_assignees",
                            "targets": {"roles": ["lead"]},
                            "priority": 3,
                        }
                    ],
                }
            ],
        }
    )
    item = await desk.read(await desk.submit("short", REQUESTER))
    review = step_of(item, "review")
    assert review["stepState"] == "ACTIVE" and item["priority"] == 3
    assert review["assignees"]["roles"] == ["lead"]
    escalated = [e for e in item["auditEvents"]["nodes"] if e["action"] == "step.escalate"]
    assert [e["data"]["by"] for e in escalated] == ["unfillable_seats"]
    item = await desk.act(APPROVE, {"stepId": review["id"]}, ANN)
    assert item["state"] == "PENDING"  # two seats: ann's, and one for a lead
    item = await desk.act(APPROVE, {"stepId": review["id"]}, ("lee", ("lead",), ()))
    assert item["state"] == "APPROVED"
