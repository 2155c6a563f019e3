"""The demo agent plan through GraphQL: per-step review (modify, reject with a blocking dependent,
approve all), policy auto-approval, execution reports, recovery and compensation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

ITEM_FIELDS = """
  id state version
  steps {
    id key stepState action risk declaredRisk params originalParams executionAttempts result error
    hold { upstreams options }
    paramsDiff { key before after }
    impactIfRejected { step effect resolution outcome via }
    impactIfModified { step effect resolution outcome via }
    decisions { actorId actingFor outcome reason rule }
  }
"""

ERRORS = "errors { code message field }"


def mutation(name: str, input_type: str) -> str:
    return (
        f"mutation($input: {input_type}!) {{ {name}(input: $input) "
        f"{{ item {{ {ITEM_FIELDS} }} {ERRORS} }} }}"
    )


SUBMIT = mutation("submitItem", "SubmitItemInput")
APPROVE = mutation("approveStep", "DecideStepInput")
REJECT = mutation("rejectStep", "DecideStepInput")
MODIFY = mutation("modifyStepParams", "ModifyStepParamsInput")
APPROVE_ALL = mutation("approveAll", "ItemReasonInput")
RESOLVE = mutation("resolveHeldStep", "ResolveHeldStepInput")
REPORT = mutation("reportExecution", "ReportExecutionInput")
RECOVER = mutation("recoverStep", "RecoverStepInput")
ITEM = (
    f"query($id: ID!) {{ item(id: $id) {{ {ITEM_FIELDS} "
    "auditEvents { nodes { action data } } } }"
)
SAVE_TEMPLATE = """
mutation($input: SaveTemplateInput!) {
  saveTemplate(input: $input) { template { key status } errors { code message } }
}"""

AGENT = "agent-7"
SUPERVISOR = ("sam", ("agent-supervisor",))


class Plan:
    """A submitted plan item, driven through GraphQL by its agent and its supervisor."""

    def __init__(self, gql: Any, clock: Any, item: dict[str, Any]) -> None:
        self.gql, self.clock, self.item = gql, clock, item

    def step(self, key: str) -> dict[str, Any]:
        return next(s for s in self.item["steps"] if s["key"] == key)

    def states(self) -> dict[str, str]:
        return {s["key"]: s["stepState"] for s in self.item["steps"]}

    async def call(
        self, query: str, variables: dict[str, Any], user: str, roles: tuple = ()
    ) -> dict[str, Any]:
        self.clock.advance(timedelta(minutes=1))
        data = await self.gql.data(query, {"input": variables}, as_user=user, roles=roles)
        (result,) = data.values()
        if result["item"] is not None:
            self.item = result["item"]
        return result

    async def ok(self, query: str, variables: dict[str, Any], user: str, roles: tuple = ()):
        result = await self.call(query, variables, user, roles)
        assert result["errors"] == [], result["errors"]
        return self.item

    async def refused(
        self, query: str, variables: dict[str, Any], user: str, roles: tuple = ()
    ) -> str:
        before = await self.read()
        result = await self.call(query, variables, user, roles)
        assert result["item"] is None
        after = await self.read()
        assert after["version"] == before["version"], "a refused action changed the item"
        return result["errors"][0]["code"]

    async def supervise(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        user, roles = SUPERVISOR
        return await self.ok(query, variables, user, roles)

    async def report(self, key: str, status: str, **extra: Any) -> dict[str, Any]:
        return await self.ok(
            REPORT, {"stepId": self.step(key)["id"], "status": status, **extra}, AGENT
        )

    async def run(self, key: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.report(key, "RUNNING")
        assert self.step(key)["stepState"] == "RUNNING"
        return await self.report(key, "COMPLETED", result=result or {"ok": key})

    async def read(self) -> dict[str, Any]:
        data = await self.gql.data(ITEM, {"id": self.item["id"]}, as_user=AGENT)
        return data["item"]

    async def audit(self) -> list[str]:
        return [e["action"] for e in (await self.read())["auditEvents"]["nodes"]]


@pytest.fixture
def submit_plan(gql: Any, clock: Any):
    async def submit(steps: list[dict[str, Any]], template: str = "agent-plan") -> Plan:
        data = await gql.data(
            SUBMIT,
            {
                "input": {
                    "templateKey": template,
                    "title": "Follow up with John",
                    "payload": {"summary": "meeting follow-up"},
                    "plan": {"title": "Follow up with John", "steps": steps},
                }
            },
            as_user=AGENT,
        )
        assert data["submitItem"]["errors"] == [], data["submitItem"]["errors"]
        return Plan(gql, clock, data["submitItem"]["item"])

    return submit


async def save_base(gql: Any, key: str, **overrides: Any) -> None:
    """A plan base template like the demo one, with `overrides` (e.g. no compensation)."""
    document = {
        "key": key,
        "name": key,
        "kind": "plan",
        "max_revisions": 3,
        "compensate_on_failure": False,
        "fields": {"summary": {"type": "string", "required": False, "max_length": 1000}},
        "steps": [
            {
                "key": "plan-step",
                "name": "Plan step",
                "assignees": {"roles": ["agent-supervisor"]},
                "risk": "medium",
                "sla": "PT4H",
                "max_attempts": 2,
            }
        ],
    }
    prototype = overrides.pop("prototype", {})
    document["steps"][0].update(prototype)
    document.update(overrides)
    data = await gql.data(
        SAVE_TEMPLATE,
        {"input": {"definition": document, "publish": True}},
        as_user="root",
        roles=("admin",),
    )
    assert data["saveTemplate"]["errors"] == [], data["saveTemplate"]["errors"]


FOLLOW_UP = [
    {"key": "lookup", "action": "search_contacts", "risk": "low", "params": {"query": "John"}},
    {
        "key": "draft",
        "action": "draft_email",
        "risk": "medium",
        "params": {"to": "john@example.com", "subject": "Summary"},
        "depends_on": ["lookup"],
    },
    {
        "key": "calendar",
        "action": "create_event",
        "risk": "medium",
        "params": {"title": "Sync"},
        "depends_on": ["lookup"],
    },
    {
        "key": "invite",
        "action": "send_invite",
        "risk": "medium",
        "depends_on": [{"step": "calendar", "effect": "blocks", "resolution": "ask_user"}],
    },
    {
        "key": "notes",
        "action": "write_notes",
        "risk": "medium",
        "depends_on": [{"step": "calendar", "effect": "blocks", "resolution": "skip"}],
    },
    {
        "key": "send",
        "action": "send_email",
        "risk": "high",
        "depends_on": [{"step": "draft", "effect": "blocks", "resolution": "ask_user"}],
    },
]


async def test_plan_modified_rejected_approved_and_executed(submit_plan, demo_templates):
    plan = await submit_plan(FOLLOW_UP)
    assert plan.item["state"] == "PENDING"
    assert plan.states() == {
        "lookup": "APPROVED",  # low risk: approved by policy at once
        "draft": "ACTIVE",
        "calendar": "ACTIVE",
        "invite": "WAITING",
        "notes": "WAITING",
        "send": "WAITING",
    }

    # modify: the diff shows before/after, the original is kept
    assert plan.step("draft")["impactIfModified"] == [
        {
            "step": "send",
            "effect": "BLOCKS",
            "resolution": "ASK_USER",
            "outcome": "ASK_USER",
            "via": "draft",
        }
    ]
    await plan.supervise(
        MODIFY,
        {
            "stepId": plan.step("draft")["id"],
            "params": {"to": "john@example.com", "subject": "Meeting summary", "cc": "me"},
            "reason": "clearer subject, keep me in copy",
        },
    )
    draft = plan.step("draft")
    assert draft["stepState"] == "ACTIVE"
    # what was predicted happens: send relied on the draft as submitted; it is held for the
    # requester to choose (ask_user), and its assignees are told
    assert plan.states()["send"] == "HELD"
    assert plan.step("send")["hold"]["upstreams"] == ["draft"]
    assert draft["originalParams"] == {"to": "john@example.com", "subject": "Summary"}
    assert draft["params"] == {"to": "john@example.com", "subject": "Meeting summary", "cc": "me"}
    assert draft["paramsDiff"] == [
        {"key": "cc", "before": None, "after": "me"},
        {"key": "subject", "before": "Summary", "after": "Meeting summary"},
    ]
    # a second modification diffs against what was submitted, not the first edit
    await plan.supervise(
        MODIFY,
        {
            "stepId": draft["id"],
            "params": {"to": "john@example.com", "subject": "Summary", "cc": "me"},
            "reason": "subject was fine after all",
        },
    )
    assert plan.step("draft")["originalParams"] == {"to": "john@example.com", "subject": "Summary"}
    assert plan.step("draft")["paramsDiff"] == [{"key": "cc", "before": None, "after": "me"}]

    # reject with a blocking dependent: the impact is shown first
    assert plan.step("calendar")["impactIfRejected"] == [
        {
            "step": "invite",
            "effect": "BLOCKS",
            "resolution": "ASK_USER",
            "outcome": "ASK_USER",
            "via": "calendar",
        },
        {
            "step": "notes",
            "effect": "BLOCKS",
            "resolution": "SKIP",
            "outcome": "SKIP",
            "via": "calendar",
        },
    ]
    await plan.supervise(
        REJECT, {"stepId": plan.step("calendar")["id"], "reason": "no meeting needed"}
    )
    assert plan.item["state"] == "PENDING"
    assert plan.states()["calendar"] == "REJECTED"
    assert plan.states()["notes"] == "SKIPPED"  # blocks + skip
    assert plan.states()["invite"] == "HELD"  # blocks + ask_user: held for a person

    # only a held step can be resolved, only by the requester (or an admin)
    assert (
        await plan.refused(
            RESOLVE,
            {"stepId": plan.step("draft")["id"], "option": "SKIP", "reason": "not held"},
            AGENT,
        )
        == "ILLEGAL_TRANSITION"
    )
    assert (
        await plan.refused(
            RESOLVE,
            {"stepId": plan.step("invite")["id"], "option": "SKIP", "reason": "drop it"},
            "sam",
            ("agent-supervisor",),
        )
        == "FORBIDDEN"
    )
    await plan.ok(
        RESOLVE,
        {"stepId": plan.step("invite")["id"], "option": "SKIP", "reason": "no meeting, no invite"},
        AGENT,
    )
    assert plan.states()["invite"] == "SKIPPED"
    # send goes on waiting for the modified draft
    await plan.ok(
        RESOLVE,
        {"stepId": plan.step("send")["id"], "option": "RETRY", "reason": "the new draft is fine"},
        AGENT,
    )
    assert plan.states()["send"] == "WAITING"

    # approve the rest at once: draft, then send which opens once draft is approved
    await plan.supervise(APPROVE_ALL, {"itemId": plan.item["id"], "reason": "looks right"})
    assert plan.item["state"] == "APPROVED"
    assert plan.states() == {
        "lookup": "APPROVED",
        "draft": "APPROVED",
        "calendar": "REJECTED",
        "invite": "SKIPPED",
        "notes": "SKIPPED",
        "send": "APPROVED",
    }
    assert [d["actorId"] for d in plan.step("send")["decisions"]] == ["sam"]

    # only a holder of `execute` (by default the requester) reports execution
    assert (
        await plan.refused(
            REPORT, {"stepId": plan.step("lookup")["id"], "status": "RUNNING"}, "mallory"
        )
        == "FORBIDDEN"
    )
    await plan.report("lookup", "RUNNING")
    assert plan.item["state"] == "EXECUTING"
    await plan.report("lookup", "COMPLETED", result={"email": "john@example.com"})
    assert plan.step("lookup")["result"] == {"email": "john@example.com"}
    assert plan.item["state"] == "EXECUTING"
    await plan.run("draft")
    assert plan.item["state"] == "EXECUTING"
    await plan.run("send", {"message_id": "m-1"})
    assert plan.item["state"] == "COMPLETED"
    assert plan.states() == {
        "lookup": "COMPLETED",
        "draft": "COMPLETED",
        "calendar": "REJECTED",
        "invite": "SKIPPED",
        "notes": "SKIPPED",
        "send": "COMPLETED",
    }
    assert plan.step("send")["executionAttempts"] == 1

    assert await plan.audit() == [
        "item.submitted",
        "step.activate",  # lookup
        "step.approve",  # lookup, by policy
        "step.activate",  # draft
        "step.activate",  # calendar
        "step.modify",
        "step.hold",  # send: the draft it relied on changed
        "step.dependency_conflict",
        "step.modify",
        "step.reject",  # calendar
        "step.hold",  # invite
        "step.dependency_conflict",
        "step.skip",  # notes
        "step.skip",  # invite, by the requester
        "step.release",  # send, by the requester: wait for the new draft
        "step.approve",  # draft
        "step.activate",  # send
        "step.approve",  # send
        "item.approve",
        "item.approve_all",
        "item.start_execution",
        "step.start",
        "step.complete",
        "step.start",
        "step.complete",
        "step.start",
        "step.complete",
        "item.complete",
    ]
    events = (await plan.read())["auditEvents"]["nodes"]
    modify = next(e for e in events if e["action"] == "step.modify")
    assert modify["data"]["before"] == {"to": "john@example.com", "subject": "Summary"}
    assert modify["data"]["after"]["subject"] == "Meeting summary"


async def test_a_step_cannot_start_before_its_blocking_dependency_has_run(
    submit_plan, demo_templates
):
    """`send` hard-depends on `draft`: while `draft` is approved but has not run, `send` has
    nothing to send, so starting it is DEPENDENCY_UNMET."""
    plan = await submit_plan(
        [
            {"key": "draft", "action": "draft_email", "risk": "medium"},
            {"key": "send", "action": "send_email", "risk": "high", "depends_on": ["draft"]},
        ]
    )
    await plan.supervise(APPROVE_ALL, {"itemId": plan.item["id"], "reason": "fine"})
    assert plan.item["state"] == "APPROVED"
    code = await plan.refused(
        REPORT, {"stepId": plan.step("send")["id"], "status": "RUNNING"}, AGENT
    )
    assert code == "DEPENDENCY_UNMET"
    assert plan.item["state"] == "APPROVED"


async def test_auto_approval_by_policy_records_the_rule_and_spares_high_risk(
    submit_plan, demo_templates
):
    plan = await submit_plan(
        [
            {"key": "contacts", "action": "search_contacts", "risk": "low"},
            {"key": "events", "action": "list_events", "risk": "medium"},
            {"key": "mails", "action": "fetch_emails", "risk": "high"},
            {"key": "wipe", "action": "list_events", "risk": "critical"},
            {"key": "post", "action": "post_message", "risk": "medium"},
        ]
    )
    # an allowed action at a low enough assessed risk is approved by the policy; an agent
    # that declares more risk than the template's for the action raises it (events)
    assert plan.states() == {
        "contacts": "APPROVED",
        "events": "ACTIVE",
        "mails": "ACTIVE",
        "wipe": "ACTIVE",
        "post": "ACTIVE",
    }
    contacts = plan.step("contacts")["decisions"]
    assert [(d["actorId"], d["outcome"]) for d in contacts] == [("system", "APPROVE_BY_POLICY")]
    assert "low-risk-agent-steps" in contacts[0]["rule"]
    assert "'search_contacts' at low risk (below medium)" in contacts[0]["rule"]
    assert (plan.step("events")["risk"], plan.step("events")["declaredRisk"]) == (
        "MEDIUM",
        "MEDIUM",
    )
    # an action the template does not list is high, whatever the agent says
    assert plan.step("post")["risk"] == "HIGH"
    for key in ("events", "mails", "wipe", "post"):
        assert plan.step(key)["decisions"] == []
    audit = (await plan.read())["auditEvents"]["nodes"]
    by_policy = [e for e in audit if e["action"] == "step.approve" and e["data"].get("by")]
    assert {e["data"]["step"] for e in by_policy} == {"contacts"}
    assert all(e["data"]["by"] == "policy" and e["data"]["rule"] for e in by_policy)
    assert by_policy[0]["data"]["risk"] == "low" and by_policy[0]["data"]["declared_risk"] == "low"


async def test_a_plan_of_only_low_risk_steps_is_approved_without_a_person(
    submit_plan, demo_templates
):
    plan = await submit_plan(
        [
            {"key": "a", "action": "search_contacts", "risk": "low"},
            {"key": "b", "action": "list_events", "risk": "low", "depends_on": ["a"]},
        ]
    )
    assert plan.item["state"] == "APPROVED"
    assert all(d["actorId"] == "system" for s in plan.item["steps"] for d in s["decisions"])


async def test_sensitive_steps_are_never_approved_by_policy(gql, submit_plan, demo_templates):
    await save_base(
        gql,
        "sensitive-plan",
        auto_approval={"name": "everything-low", "below_risk": "high"},
        prototype={"sensitive": True},
    )
    plan = await submit_plan(
        [{"key": "a", "action": "search_contacts", "risk": "low"}], template="sensitive-plan"
    )
    assert plan.states() == {"a": "ACTIVE"}
    assert plan.step("a")["decisions"] == []


async def approved_plan(submit_plan, gql, steps, template="manual-plan") -> Plan:
    if template == "manual-plan":
        await save_base(gql, "manual-plan")
    plan = await submit_plan(steps, template=template)
    await plan.supervise(APPROVE_ALL, {"itemId": plan.item["id"], "reason": "go"})
    assert plan.item["state"] == "APPROVED"
    return plan


async def test_failed_step_retry_then_skip(gql, submit_plan, demo_templates):
    plan = await approved_plan(
        submit_plan,
        gql,
        [
            {"key": "a", "action": "export", "risk": "medium"},
            {"key": "b", "action": "notify", "risk": "medium"},
        ],
    )
    await plan.report("a", "RUNNING")
    await plan.report("a", "FAILED", error="upstream timeout")
    assert plan.item["state"] == "FAILED"
    assert plan.step("a")["stepState"] == "FAILED"
    assert plan.step("a")["error"] == "upstream timeout"
    # a failure without an error message is refused
    assert (
        await plan.refused(REPORT, {"stepId": plan.step("b")["id"], "status": "FAILED"}, AGENT)
        != ""
    )

    await plan.ok(
        RECOVER,
        {"stepId": plan.step("a")["id"], "recovery": "RETRY", "reason": "transient"},
        AGENT,
    )
    assert plan.item["state"] == "EXECUTING"
    assert plan.step("a")["stepState"] == "RUNNING"
    assert plan.step("a")["executionAttempts"] == 2
    assert plan.step("a")["error"] is None
    await plan.report("a", "FAILED", error="upstream timeout again")
    assert plan.item["state"] == "FAILED"
    # max_attempts is 2 in this base template
    assert (
        await plan.refused(
            RECOVER,
            {"stepId": plan.step("a")["id"], "recovery": "RETRY", "reason": "again"},
            AGENT,
        )
        == "LIMIT_EXCEEDED"
    )
    await plan.ok(
        RECOVER,
        {"stepId": plan.step("a")["id"], "recovery": "SKIP", "reason": "not needed"},
        AGENT,
    )
    assert plan.step("a")["stepState"] == "SKIPPED"
    assert plan.item["state"] == "EXECUTING"
    await plan.run("b")
    assert plan.item["state"] == "COMPLETED"
    audit = await plan.audit()
    assert audit.count("item.fail") == 2
    assert audit.count("item.recover") == 2
    assert "step.retry" in audit and audit[-1] == "item.complete"


async def test_failed_step_continue_skips_its_dependents(gql, submit_plan, demo_templates):
    plan = await approved_plan(
        submit_plan,
        gql,
        [
            {"key": "a", "action": "export", "risk": "medium"},
            {"key": "b", "action": "publish", "risk": "medium", "depends_on": ["a"]},
            {"key": "c", "action": "notify", "risk": "medium"},
        ],
    )
    await plan.report("a", "RUNNING")
    await plan.report("a", "FAILED", error="disk full")
    # b hard-depends on the failed a
    assert (
        await plan.refused(REPORT, {"stepId": plan.step("b")["id"], "status": "RUNNING"}, AGENT)
        == "DEPENDENCY_UNMET"
    )
    await plan.ok(
        RECOVER,
        {"stepId": plan.step("a")["id"], "recovery": "CONTINUE", "reason": "do the rest"},
        AGENT,
    )
    assert plan.item["state"] == "EXECUTING"
    assert plan.states() == {"a": "FAILED", "b": "SKIPPED", "c": "APPROVED"}
    await plan.run("c")
    assert plan.item["state"] == "COMPLETED"
    events = (await plan.read())["auditEvents"]["nodes"]
    skip = next(e for e in events if e["action"] == "step.skip")
    assert skip["data"]["by"] == "failed_dependency" and skip["data"]["failed"] == "a"


async def test_failed_step_compensate_goes_in_reverse_order_of_completion(
    gql, submit_plan, demo_templates
):
    plan = await approved_plan(
        submit_plan,
        gql,
        [
            {"key": "a", "action": "reserve", "risk": "medium"},
            {"key": "b", "action": "charge", "risk": "medium"},
            {"key": "c", "action": "ship", "risk": "medium"},
        ],
    )
    # b completes before a: compensation must undo a first (most recent), then b
    await plan.run("b")
    await plan.run("a")
    await plan.report("c", "RUNNING")
    await plan.report("c", "FAILED", error="carrier down")
    assert plan.item["state"] == "FAILED"  # this template does not compensate on its own
    await plan.ok(
        RECOVER,
        {"stepId": plan.step("c")["id"], "recovery": "COMPENSATE", "reason": "undo"},
        AGENT,
    )
    assert plan.item["state"] == "COMPENSATING"
    assert (
        await plan.refused(REPORT, {"stepId": plan.step("b")["id"], "status": "COMPENSATED"}, AGENT)
        == "ILLEGAL_TRANSITION"
    )
    await plan.report("a", "COMPENSATED")
    assert plan.item["state"] == "COMPENSATING"
    await plan.report("b", "COMPENSATED")
    assert plan.item["state"] == "COMPENSATED"
    assert plan.states() == {"a": "COMPENSATED", "b": "COMPENSATED", "c": "FAILED"}
    events = (await plan.read())["auditEvents"]["nodes"]
    compensate = next(e for e in events if e["action"] == "item.compensate")
    assert compensate["data"]["order"] == ["a", "b"]
    assert [e["action"] for e in events][-3:] == [
        "step.compensate",
        "step.compensate",
        "item.finish_compensation",
    ]


async def test_demo_plan_compensates_on_failure_by_itself(submit_plan, demo_templates):
    plan = await submit_plan(
        [
            {"key": "x", "action": "reserve", "risk": "medium"},
            {"key": "y", "action": "charge", "risk": "medium"},
            {"key": "z", "action": "ship", "risk": "medium"},
        ]
    )
    await plan.supervise(APPROVE_ALL, {"itemId": plan.item["id"], "reason": "go"})
    await plan.run("y")
    await plan.run("x")
    await plan.report("z", "RUNNING")
    await plan.report("z", "FAILED", error="carrier down")
    assert plan.item["state"] == "COMPENSATING"
    audit = await plan.audit()
    assert audit[-3:] == ["step.fail", "item.fail", "item.compensate"]
    # nothing else may run while compensating, and the order is enforced
    assert (
        await plan.refused(REPORT, {"stepId": plan.step("y")["id"], "status": "COMPENSATED"}, AGENT)
        == "ILLEGAL_TRANSITION"
    )
    await plan.report("x", "COMPENSATED")
    await plan.report("y", "COMPENSATED")
    assert plan.item["state"] == "COMPENSATED"


async def test_recovery_of_a_step_that_did_not_fail_is_refused(gql, submit_plan, demo_templates):
    plan = await approved_plan(
        submit_plan, gql, [{"key": "a", "action": "export", "risk": "medium"}]
    )
    await plan.report("a", "RUNNING")
    assert (
        await plan.refused(
            RECOVER, {"stepId": plan.step("a")["id"], "recovery": "SKIP", "reason": "meh"}, AGENT
        )
        == "ILLEGAL_TRANSITION"
    )
