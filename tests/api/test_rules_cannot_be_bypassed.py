"""Each way issue #9 found to bypass a rule, tried from the outside as a requester, an approver
and an agent would: through GraphQL, on a real database. Each must now be refused, or end as
the rules say."""

from __future__ import annotations

from signoff.db import sql
from signoff.services import notification_admin
from signoff.services import notifications as notification_services
from tests.api.conftest import (
    ADMIN,
    APPROVE,
    MODIFY,
    REASSIGN,
    REJECT,
    REPORT,
    Who,
    approval,
    step_of,
)
from tests.conftest import actor

REPLAY = """query($key: String!, $definition: JSON!) {
  replayTemplate(templateKey: $key, definition: $definition, last: 10) {
    itemId title differences { kind step before after } } }"""


async def test_the_requester_cannot_reassign_their_own_step_to_people_of_their_choosing(desk):
    await desk.publish(approval("own", {"key": "review", "assignees": {"users": ["rita", "bob"]}}))
    rita: Who = ("rita", (), ())
    item = await desk.submit("own", rita)
    review = step_of(item, "review")["id"]
    code = await desk.refused(
        item, REASSIGN, {"stepId": review, "users": ["x", "y"], "reason": "my friends"}, rita
    )
    assert code == "SEPARATION_OF_DUTIES"
    # even as an admin, and not even one friend
    rita_admin: Who = ("rita", ("admin",), ())
    for users in (["x", "y"], ["x"]):
        code = await desk.refused(
            item, REASSIGN, {"stepId": review, "users": users, "reason": "mine"}, rita_admin
        )
        assert code == "SEPARATION_OF_DUTIES"
    assert (await desk.read(item))["state"] == "PENDING"


async def test_an_assignee_of_a_two_of_three_step_cannot_replace_the_other_seats(desk):
    await desk.publish(
        approval(
            "sensitive",
            {
                "key": "review",
                "assignees": {"users": ["alice", "bob", "carol"]},
                "quorum": {"mode": "n_of_m", "n": 2},
                "sensitive": True,
            },
        )
    )
    item = await desk.submit("sensitive", ("rita", (), ()))
    review = step_of(item, "review")["id"]
    alice: Who = ("alice", (), ())
    code = await desk.refused(
        item,
        REASSIGN,
        {"stepId": review, "users": ["alice", "mallory"], "reason": "me and a friend"},
        alice,
    )
    assert code == "FORBIDDEN"
    # handing over her own seat is allowed (audited); the other two seats stay
    item = await desk.act(
        REASSIGN, {"stepId": review, "users": ["mallory"], "reason": "on leave"}, alice
    )
    assert step_of(item, "review")["assignees"]["users"] == ["bob", "carol", "mallory"]
    item = await desk.act(APPROVE, {"stepId": review}, ("mallory", (), ()))
    assert item["state"] == "PENDING"  # one of the two approvals it needs
    code = await desk.refused(item, APPROVE, {"stepId": review}, alice)
    assert code == "FORBIDDEN"
    item = await desk.act(APPROVE, {"stepId": review}, ("bob", (), ()))
    assert item["state"] == "APPROVED"


async def test_an_all_quorum_with_a_group_needs_every_seat(desk):
    await desk.publish(
        approval(
            "everyone",
            {
                "key": "review",
                "assignees": {"users": ["ann", "ben", "cat"], "groups": ["ops"]},
                "quorum": "all",
            },
        )
    )
    item = await desk.submit("everyone", ("rita", (), ()))
    review = step_of(item, "review")["id"]
    for user in ("ann", "ben", "cat"):
        item = await desk.act(APPROVE, {"stepId": review}, (user, (), ()))
        assert item["state"] == "PENDING", f"approved after {user}"
    # a member of the group fills its seat; a second member finds no seat left
    item = await desk.act(APPROVE, {"stepId": review}, ("oli", (), ("ops",)))
    assert item["state"] == "APPROVED"
    assert len(step_of(item, "review")["decisions"]) == 4


async def test_an_agent_cannot_lower_the_risk_of_its_own_step(desk):
    agent: Who = ("agent", (), ())
    item = await desk.submit(
        "agent-plan",
        agent,
        plan={"steps": [{"key": "mail", "action": "send_email", "risk": "low"}]},
    )
    mail = step_of(item, "mail")
    assert mail["stepState"] == "ACTIVE", "a person must decide it"
    assert mail["risk"] == "HIGH"  # the template's risk for send_email
    assert mail["decisions"] == []


async def test_a_reassignment_never_leaves_a_quorum_that_cannot_be_met(desk):
    await desk.publish(
        approval(
            "two",
            {
                "key": "review",
                "assignees": {"users": ["alice", "bob", "carol"]},
                "quorum": {"mode": "n_of_m", "n": 2},
            },
        )
    )
    item = await desk.submit("two", ("rita", (), ()))
    review = step_of(item, "review")["id"]
    code = await desk.refused(
        item, REASSIGN, {"stepId": review, "users": ["dave"], "reason": "dave decides"}, ADMIN
    )
    assert code == "INVALID_INPUT"
    item = await desk.act(
        REASSIGN, {"stepId": review, "users": ["dave", "erin"], "reason": "new team"}, ADMIN
    )
    item = await desk.act(APPROVE, {"stepId": review}, ("dave", (), ()))
    assert item["state"] == "PENDING"
    item = await desk.act(APPROVE, {"stepId": review}, ("erin", (), ()))
    assert item["state"] == "APPROVED"


async def test_impact_if_modified_predicts_what_then_happens(desk):
    await desk.publish(
        approval(
            "chain",
            {"key": "draft", "assignees": {"users": ["ann"]}},
            {
                "key": "send",
                "assignees": {"users": ["ben"]},
                "depends_on": [{"step": "draft", "resolution": "skip"}],
            },
            {"key": "log", "assignees": {"users": ["cat"]}},
        )
    )
    item = await desk.submit("chain", ("rita", (), ()))
    predicted = step_of(item, "draft")["impactIfModified"]
    assert predicted == [{"step": "send", "outcome": "SKIP", "via": "draft"}]
    draft = step_of(item, "draft")["id"]
    item = await desk.act(
        MODIFY,
        {"stepId": draft, "params": {"subject": "new"}, "reason": "clearer"},
        ("ann", (), ()),
    )
    item = await desk.act(APPROVE, {"stepId": draft}, ("ann", (), ()))
    assert step_of(item, "send")["stepState"] == "SKIPPED"


async def test_in_a_review_chain_a_fallback_or_optional_dependent_goes_on_after_a_rejection(desk):
    await desk.publish(
        approval(
            "soft",
            {"key": "enrich", "assignees": {"users": ["ann"]}},
            {
                "key": "decide",
                "assignees": {"users": ["ben"]},
                "depends_on": [
                    {
                        "step": "enrich",
                        "effect": "enhances",
                        "resolution": "fallback",
                        "fallback": {"score": 0},
                    }
                ],
            },
            {
                "key": "note",
                "assignees": {"users": ["cat"]},
                "depends_on": [{"step": "enrich", "effect": "optional"}],
            },
        )
    )
    item = await desk.submit("soft", ("rita", (), ()))
    enrich = step_of(item, "enrich")["id"]
    item = await desk.act(REJECT, {"stepId": enrich, "reason": "no data"}, ("ann", (), ()))
    assert item["state"] == "PENDING"
    assert step_of(item, "decide")["stepState"] == "ACTIVE"
    assert step_of(item, "decide")["params"] == {"score": 0}  # the fallback reached its params
    assert step_of(item, "note")["stepState"] == "ACTIVE"
    item = await desk.act(APPROVE, {"stepId": step_of(item, "decide")["id"]}, ("ben", (), ()))
    item = await desk.act(APPROVE, {"stepId": step_of(item, "note")["id"]}, ("cat", (), ()))
    assert item["state"] == "APPROVED"


async def test_retries_exhausted_escalate_through_the_steps_escalation_chain(
    desk, tenant, services
):
    await notification_admin.upsert_user_profile(
        actor(tenant, "root", "admin"),
        services,
        notification_admin.ProfileInput(
            "sid", addresses={"fake": "sid@example.com"}, groups=("sre",)
        ),
    )
    await desk.publish(
        {
            "key": "one-shot",
            "name": "one shot",
            "kind": "plan",
            "action_risks": {"export": "medium"},
            "steps": [
                {
                    "key": "plan-step",
                    "assignees": {"roles": ["agent-supervisor"]},
                    "max_attempts": 1,
                    "escalation": [
                        {
                            "after": "PT1H",
                            "action": "add_assignees",
                            "targets": {"groups": ["sre"]},
                            "priority": 4,
                        }
                    ],
                }
            ],
        }
    )
    agent: Who = ("agent", (), ())
    item = await desk.submit("one-shot", agent, plan={"steps": [{"key": "x", "action": "export"}]})
    x = step_of(item, "x")["id"]
    item = await desk.act(APPROVE, {"stepId": x}, ("sam", ("agent-supervisor",), ()))
    item = await desk.act(REPORT, {"stepId": x, "status": "RUNNING"}, agent)
    item = await desk.act(REPORT, {"stepId": x, "status": "FAILED", "error": "boom"}, agent)
    assert item["state"] == "FAILED"
    assert item["priority"] == 4  # as far as the chain raises it
    assert "sre" in step_of(item, "x")["assignees"]["groups"]
    actions = [e["action"] for e in (await desk.read(item))["auditEvents"]["nodes"]]
    assert actions[-2:] == ["step.retries_exhausted", "step.escalate"]
    # no retry is left and people must see to the failed step: its new assignees are told
    await notification_services.plan_notifications(services, tenant, channels=["fake"])
    told = await sql.fetch(
        "SELECT recipient_id, event_kind FROM notification_delivery WHERE tenant_id = $1", tenant
    )
    assert [(r["recipient_id"], r["event_kind"]) for r in told] == [("sid", "escalation")]


async def test_replaying_a_template_needs_the_template_admin_permission(desk, gql):
    await desk.submit("change-approval", ("alice", (), ()), payload=CHANGE)
    response = await gql.run(
        REPLAY,
        {"key": "change-approval", "definition": CHANGE_TEMPLATE},
        token=gql.token("nobody"),
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "change" not in str(body.get("data")), "a title or outcome leaked"


CHANGE = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
CHANGE_TEMPLATE = approval(
    "change-approval", {"key": "review", "assignees": {"roles": ["change-approver"]}}
)
