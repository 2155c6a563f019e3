"""The demo partner approval (manager → legal → executive) end to end through GraphQL,
including a request-changes → resubmit loop and the escalation once the loop runs too long."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

ITEM_FIELDS = """
  id state version revision priority payload
  steps {
    id key stepState
    assignees { users groups roles }
    decisions { actorId actingFor outcome reason revision }
  }
"""

SUBMIT = f"""
mutation($input: SubmitItemInput!) {{
  submitItem(input: $input) {{ item {{ {ITEM_FIELDS} }} errors {{ code message field }} }}
}}"""


def decide_mutation(name: str) -> str:
    return (
        f"mutation($input: DecideStepInput!) {{ {name}(input: $input) "
        f"{{ item {{ {ITEM_FIELDS} }} errors {{ code message field }} }} }}"
    )


RESUBMIT = f"""
mutation($input: ResubmitItemInput!) {{
  resubmitItem(input: $input) {{ item {{ {ITEM_FIELDS} }} errors {{ code message field }} }}
}}"""

ITEM = f"""
query($id: ID!) {{
  item(id: $id) {{ {ITEM_FIELDS}
    auditEvents {{ nodes {{ seq action actorId reason stepId data }} }} }}
}}"""

MANAGER = ("mona", ("manager",), ())
LEGAL = ("lena", (), ("legal",))
EXECUTIVE = ("ezra", ("executive",), ())


def step(item: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in item["steps"] if s["key"] == key)


def states(item: dict[str, Any]) -> dict[str, str]:
    return {s["key"]: s["stepState"] for s in item["steps"]}


@pytest.fixture
def gql(gql: Any, clock: Any) -> Any:
    gql.clock = clock
    return gql


async def submit(gql: Any) -> dict[str, Any]:
    data = await gql.data(
        SUBMIT,
        {
            "input": {
                "templateKey": "partner-approval",
                "title": "ACME partnership",
                "payload": {"partner": "ACME", "value_eur": 250000},
            }
        },
        as_user="rita",
    )
    assert data["submitItem"]["errors"] == []
    return data["submitItem"]["item"]


async def decide(
    gql: Any, mutation: str, item: dict[str, Any], key: str, who: tuple, reason: str | None = None
) -> dict[str, Any]:
    # people take time to decide; a frozen clock would make every decision simultaneous
    gql.clock.advance(timedelta(minutes=7))
    user, roles, groups = who
    data = await gql.data(
        decide_mutation(mutation),
        {"input": {"stepId": step(item, key)["id"], "reason": reason}},
        as_user=user,
        roles=roles,
        groups=groups,
    )
    result = data[mutation]
    assert result["errors"] == [], result["errors"]
    return result["item"]


async def resubmit(gql: Any, item: dict[str, Any], value: int) -> dict[str, Any]:
    gql.clock.advance(timedelta(minutes=30))
    data = await gql.data(
        RESUBMIT,
        {
            "input": {
                "itemId": item["id"],
                "payload": {"partner": "ACME", "value_eur": value},
                "reason": "capped liability",
            }
        },
        as_user="rita",
    )
    assert data["resubmitItem"]["errors"] == [], data["resubmitItem"]["errors"]
    return data["resubmitItem"]["item"]


async def read(gql: Any, item: dict[str, Any]) -> dict[str, Any]:
    data = await gql.data(ITEM, {"id": item["id"]}, as_user="rita")
    return data["item"]


async def test_three_stages_with_a_request_changes_loop_end_approved(gql, demo_templates):
    item = await submit(gql)
    assert item["state"] == "PENDING"
    assert states(item) == {"manager": "ACTIVE", "legal": "WAITING", "executive": "WAITING"}
    assert item["revision"] == 1

    item = await decide(gql, "approveStep", item, "manager", MANAGER)
    assert states(item) == {"manager": "APPROVED", "legal": "ACTIVE", "executive": "WAITING"}

    # legal asks for changes: the item goes back to its requester
    item = await decide(
        gql, "requestChanges", item, "legal", LEGAL, reason="liability cap is missing"
    )
    assert item["state"] == "CHANGES_REQUESTED"
    assert states(item) == {
        "manager": "APPROVED",
        "legal": "CHANGES_REQUESTED",
        "executive": "WAITING",
    }

    item = await resubmit(gql, item, 200000)
    assert item["state"] == "PENDING"
    assert item["revision"] == 2
    assert item["payload"] == {"partner": "ACME", "value_eur": 200000}
    # only the step that asked for changes reviews again; the manager's approval stands
    assert states(item) == {"manager": "APPROVED", "legal": "ACTIVE", "executive": "WAITING"}

    # legal needs a justification to approve
    user, roles, groups = LEGAL
    refused = await gql.data(
        decide_mutation("approveStep"),
        {"input": {"stepId": step(item, "legal")["id"]}},
        as_user=user,
        roles=roles,
        groups=groups,
    )
    assert refused["approveStep"]["item"] is None
    assert refused["approveStep"]["errors"][0]["code"] == "JUSTIFICATION_REQUIRED"

    item = await decide(gql, "approveStep", item, "legal", LEGAL, reason="cap now in clause 9")
    assert states(item) == {"manager": "APPROVED", "legal": "APPROVED", "executive": "ACTIVE"}
    item = await decide(
        gql, "approveStep", item, "executive", EXECUTIVE, reason="strategic partner"
    )
    assert item["state"] == "APPROVED"
    assert states(item) == {"manager": "APPROVED", "legal": "APPROVED", "executive": "APPROVED"}

    # the decisions of the old revision are kept beside the new one
    legal = step(item, "legal")
    assert [(d["actorId"], d["outcome"], d["revision"]) for d in legal["decisions"]] == [
        ("lena", "REQUEST_CHANGES", 1),
        ("lena", "APPROVE", 2),
    ]
    assert legal["decisions"][0]["reason"] == "liability cap is missing"
    assert [(d["actorId"], d["revision"]) for d in step(item, "manager")["decisions"]] == [
        ("mona", 1)
    ]

    full = await read(gql, item)
    actions = [e["action"] for e in full["auditEvents"]["nodes"]]
    assert actions == [
        "item.submitted",
        "step.activate",  # manager
        "step.approve",  # manager
        "step.activate",  # legal
        "step.request_changes",
        "item.request_changes",
        "item.resubmit",
        "step.resubmit",
        "step.approve",  # legal
        "step.activate",  # executive
        "step.approve",  # executive
        "item.approve",
    ]
    events = full["auditEvents"]["nodes"]
    by_step = {s["id"]: s["key"] for s in full["steps"]}
    assert [by_step.get(e["stepId"]) for e in events] == [
        None,
        "manager",
        "manager",
        "legal",
        "legal",
        None,
        None,
        "legal",
        "legal",
        "executive",
        "executive",
        None,
    ]
    actors = [e["actorId"] for e in events]
    assert actors[2] == "mona" and actors[4] == "lena" and actors[6] == "rita"
    assert actors[10] == "ezra"
    resubmitted = events[6]
    assert resubmitted["data"]["revision"] == 2
    assert resubmitted["data"]["previous_payload"] == {"partner": "ACME", "value_eur": 250000}
    assert resubmitted["reason"] == "capped liability"
    assert events[4]["reason"] == "liability cap is missing"
    assert events[5]["data"] == {"from": "pending", "to": "changes_requested"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_the_requester_cannot_resubmit_while_review_is_pending(gql, demo_templates):
    item = await submit(gql)
    data = await gql.data(
        RESUBMIT, {"input": {"itemId": item["id"], "reason": "again"}}, as_user="rita"
    )
    assert data["resubmitItem"]["errors"][0]["code"] == "ILLEGAL_TRANSITION"
    assert (await read(gql, item))["revision"] == 1


async def test_only_the_requester_resubmits(gql, demo_templates):
    item = await submit(gql)
    item = await decide(gql, "approveStep", item, "manager", MANAGER)
    item = await decide(gql, "requestChanges", item, "legal", LEGAL, reason="missing clause")
    data = await gql.data(
        RESUBMIT,
        {"input": {"itemId": item["id"], "reason": "mine"}},
        as_user="mona",
        roles=("manager",),
    )
    assert data["resubmitItem"]["errors"][0]["code"] == "FORBIDDEN"
    assert (await read(gql, item))["state"] == "CHANGES_REQUESTED"


async def test_exceeding_max_revisions_escalates_instead_of_looping(gql, demo_templates):
    item = await submit(gql)
    item = await decide(gql, "approveStep", item, "manager", MANAGER)
    max_revisions = 3  # partner-approval.yaml
    for revision in range(1, max_revisions + 1):
        item = await decide(gql, "requestChanges", item, "legal", LEGAL, reason=f"round {revision}")
        assert item["state"] == "CHANGES_REQUESTED"
        item = await resubmit(gql, item, 100000 - revision)
        assert item["revision"] == revision + 1
    priority_before = item["priority"]

    # one loop too many: the step escalates, the item does not go back to the requester
    item = await decide(gql, "requestChanges", item, "legal", LEGAL, reason="round 4")
    assert item["state"] == "PENDING"
    assert item["revision"] == max_revisions + 1
    assert step(item, "legal")["stepState"] == "ACTIVE"
    # the first escalation level of legal raises the item to its priority (2)
    assert priority_before < 2 and item["priority"] == 2
    # the first escalation level's targets join the assignees (general counsel)
    assert "general-counsel" in step(item, "legal")["assignees"]["roles"]
    assert "legal" in step(item, "legal")["assignees"]["groups"]

    full = await read(gql, item)
    actions = [e["action"] for e in full["auditEvents"]["nodes"]]
    assert actions.count("step.request_changes") == max_revisions
    assert actions.count("item.resubmit") == max_revisions
    assert actions[-1] == "step.escalate"
    escalated = full["auditEvents"]["nodes"][-1]
    assert escalated["data"]["by"] == "revision_limit"
    assert escalated["data"]["max_revisions"] == max_revisions
    assert escalated["reason"] == "round 4"

    # the requester cannot loop again, and the escalated step can still be decided
    data = await gql.data(
        RESUBMIT, {"input": {"itemId": item["id"], "reason": "again"}}, as_user="rita"
    )
    assert data["resubmitItem"]["errors"][0]["code"] == "ILLEGAL_TRANSITION"
    item = await decide(
        gql, "approveStep", item, "legal", ("gus", ("general-counsel",), ()), reason="fine as is"
    )
    assert states(item) == {"manager": "APPROVED", "legal": "APPROVED", "executive": "ACTIVE"}


async def test_decisions_are_listed_oldest_first_within_one_instant(gql, demo_templates, clock):
    """`Step.decisions` promises oldest first; decisions stamped with the same instant (a frozen
    clock, or several written by one transaction) must still come in the order they were made."""
    item = await submit(gql)
    item = await decide(gql, "approveStep", item, "manager", MANAGER)
    frozen = gql.clock.now()
    gql.clock = type("Frozen", (), {"advance": staticmethod(lambda _d: frozen)})()
    for revision in range(1, 4):
        item = await decide(gql, "requestChanges", item, "legal", LEGAL, reason=f"r{revision}")
        item = await resubmit(gql, item, 1000 + revision)
    # revision 4: one more request escalates, then general counsel approves
    item = await decide(gql, "requestChanges", item, "legal", LEGAL, reason="r4")
    item = await decide(
        gql, "approveStep", item, "legal", ("gus", ("general-counsel",), ()), reason="done now"
    )
    decisions = step(item, "legal")["decisions"]
    assert [(d["actorId"], d["outcome"], d["revision"]) for d in decisions] == [
        ("lena", "REQUEST_CHANGES", 1),
        ("lena", "REQUEST_CHANGES", 2),
        ("lena", "REQUEST_CHANGES", 3),
        ("lena", "REQUEST_CHANGES", 4),
        ("gus", "APPROVE", 4),
    ]
