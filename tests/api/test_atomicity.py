"""Every change and its audit events commit together or not at all; keys and versions guard it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

import signoff.db.audit
from signoff.api import ids
from signoff.db import sql
from signoff.db.audit import chain_head, events_after, events_for_item, verify_chain
from signoff.db.engine import ENGINE
from signoff.domain.actors import Actor, Principal
from signoff.domain.audit import verify_events
from signoff.services import items as item_services

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) {
    item { id version title steps { id stepState } }
    errors { code message field }
  }
}"""

APPROVE = """
mutation($input: DecideStepInput!) {
  approveStep(input: $input) {
    item { id state version steps { stepState } }
    errors { code message field }
  }
}"""


class Boom(Exception):
    """Raised on purpose after a change, to force its transaction to roll back."""


def actor(tenant: str, user: str, *roles: str) -> Actor:
    return Actor(Principal(user, tenant, roles=frozenset(roles)))


async def submit(tenant: str, services: Any, **overrides: Any) -> item_services.ItemView:
    inp = item_services.SubmitItemInput(
        template_key="change-approval",
        title=overrides.pop("title", "Deploy payments"),
        payload=PAYLOAD,
        **overrides,
    )
    return await item_services.submit_item(actor(tenant, "alice"), services, inp)


def approve_input(view: item_services.ItemView, **kwargs: Any) -> item_services.DecideStepInput:
    return item_services.DecideStepInput(
        step_id=view.steps[0].id, outcome=item_services.Outcome.APPROVE, **kwargs
    )


def approver(tenant: str) -> Actor:
    return actor(tenant, "bob", "change-approver")


async def snapshot(tenant: str, item_id: UUID) -> dict[str, Any]:
    """What a rolled-back change must leave untouched."""
    item = await sql.fetchrow("SELECT state, version FROM workflow_item WHERE id = $1", item_id)
    steps = await sql.fetch(
        "SELECT key, state, version FROM step WHERE item_id = $1 ORDER BY position", item_id
    )
    decisions = await sql.fetchrow("SELECT count(*) AS n FROM decision WHERE item_id = $1", item_id)
    head = await chain_head(tenant)
    assert item is not None and decisions is not None
    return {
        "item": dict(item),
        "steps": [dict(s) for s in steps],
        "decisions": decisions["n"],
        "head": head,
        "events": [e["action"] for e in await events_for_item(tenant, item_id)],
    }


async def test_failure_after_the_change_leaves_neither_change_nor_event(
    tenant, services, demo_templates
):
    view = await submit(tenant, services)
    before = await snapshot(tenant, view.id)
    assert before["steps"][0]["state"] == "active"
    assert before["events"] == ["item.submitted", "step.activate"]

    with pytest.raises(Boom):
        async with ENGINE.transaction():
            decided = await item_services.decide_step(
                approver(tenant), services, approve_input(view)
            )
            # Inside the transaction the change and its events are there...
            assert decided.item.state == "approved"
            inside = await events_for_item(tenant, view.id)
            assert [e["action"] for e in inside][2:] == ["step.approve", "item.approve"]
            raise Boom

    # ...and after the rollback neither is.
    after = await snapshot(tenant, view.id)
    assert after == before


async def test_failing_audit_write_refuses_the_change(
    tenant, services, demo_templates, monkeypatch
):
    view = await submit(tenant, services)
    before = await snapshot(tenant, view.id)

    async def broken_append(tenant_id: str, events: Any) -> list[dict[str, Any]]:
        raise Boom("audit store unavailable")

    def broken_statement(tenant_id: str, events: Any) -> tuple[str, list[dict[str, Any]]]:
        raise Boom("audit store unavailable")

    # both ways of appending: with the COMMIT (a unit of work's own transaction) and alone
    monkeypatch.setattr(signoff.db.audit, "append_events", broken_append)
    monkeypatch.setattr(signoff.db.audit, "append_statement", broken_statement)
    with pytest.raises(Boom):
        await item_services.decide_step(approver(tenant), services, approve_input(view))
    monkeypatch.undo()

    after = await snapshot(tenant, view.id)
    assert after == before
    assert after["steps"][0]["state"] == "active"
    assert after["item"]["version"] == view.item.version

    # The same decision goes through once the audit trail can be written again.
    decided = await item_services.decide_step(approver(tenant), services, approve_input(view))
    assert decided.item.state == "approved"


async def audit_head(tenant: str) -> int:
    return (await chain_head(tenant))[0]


async def test_one_audit_event_per_change_and_chain_verifies(tenant, services, demo_templates):
    start = await audit_head(tenant)  # publishing the demo templates is audited too
    view = await submit(tenant, services)
    events = await events_after(tenant, start, 1000)
    assert [(e["seq"], e["action"]) for e in events] == [
        (start + 1, "item.submitted"),
        (start + 2, "step.activate"),
    ]
    assert events[0]["item_id"] == view.id and events[0]["step_id"] is None
    assert events[1]["step_id"] == view.steps[0].id
    assert all(e["actor_id"] == "alice" for e in events)

    await item_services.decide_step(approver(tenant), services, approve_input(view))
    events = await events_after(tenant, start, 1000)
    assert [(e["seq"], e["action"], e["actor_id"]) for e in events] == [
        (start + 1, "item.submitted", "alice"),
        (start + 2, "step.activate", "alice"),
        (start + 3, "step.approve", "bob"),
        (start + 4, "item.approve", "bob"),
    ]
    assert [e["step_id"] for e in events[1:3]] == [view.steps[0].id] * 2

    # The whole chain of the tenant, from its first event, verifies.
    chain = await events_after(tenant, 0, 1000)
    assert [e["seq"] for e in chain] == list(range(1, start + 5))
    assert chain[0]["prev_hash"] == ""
    assert verify_events(chain) is None
    assert await chain_head(tenant) == (start + 4, chain[-1]["hash"])
    assert await verify_chain(tenant) is None

    # The chain check is not vacuous: a changed event breaks it at that event.
    tampered = [dict(e) for e in chain]
    tampered[start + 2]["actor_id"] = "mallory"
    broken = verify_events(tampered)
    assert broken is not None and broken.seq == start + 3


async def test_audit_trail_is_append_only(tenant, services, demo_templates):
    view = await submit(tenant, services)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await sql.execute(
            "UPDATE audit_event SET actor_id = 'mallory' WHERE tenant_id = $1", tenant
        )
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await sql.execute("DELETE FROM audit_event WHERE tenant_id = $1", tenant)
    events = await events_for_item(tenant, view.id)
    assert [(e["action"], e["actor_id"]) for e in events] == [
        ("item.submitted", "alice"),
        ("step.activate", "alice"),
    ]


async def test_submit_is_idempotent_by_key(gql, demo_templates):
    variables = {
        "input": {
            "templateKey": "change-approval",
            "title": "Deploy payments",
            "payload": PAYLOAD,
            "guards": {"idempotencyKey": "deploy-42"},
        }
    }
    first = (await gql.data(SUBMIT, variables, as_user="alice"))["submitItem"]
    start = await audit_head(gql.tenant)
    second = (await gql.data(SUBMIT, variables, as_user="alice"))["submitItem"]
    assert first["errors"] == [] and second["errors"] == []
    assert second["item"]["id"] == first["item"]["id"]
    count = await sql.fetchrow(
        "SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", gql.tenant
    )
    assert count is not None and count["n"] == 1
    assert await audit_head(gql.tenant) == start  # the replay changed and audited nothing

    variables["input"]["title"] = "Deploy something else"
    reused = (await gql.data(SUBMIT, variables, as_user="alice"))["submitItem"]
    assert reused["item"] is None
    assert reused["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert reused["errors"][0]["field"] == "guards.idempotencyKey"
    count = await sql.fetchrow(
        "SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", gql.tenant
    )
    assert count is not None and count["n"] == 1


async def test_stale_expected_version_is_refused(gql, demo_templates):
    submitted = (
        await gql.data(
            SUBMIT,
            {"input": {"templateKey": "change-approval", "title": "Deploy", "payload": PAYLOAD}},
            as_user="alice",
        )
    )["submitItem"]["item"]
    item_id = ids.decode_uuid(submitted["id"], "WorkflowItem")
    before = await snapshot(gql.tenant, item_id)
    stale = submitted["version"] - 1
    result = (
        await gql.data(
            APPROVE,
            {
                "input": {
                    "stepId": submitted["steps"][0]["id"],
                    "guards": {"expectedVersion": stale},
                }
            },
            as_user="bob",
            roles=("change-approver",),
        )
    )["approveStep"]
    assert result["item"] is None
    assert result["errors"][0]["code"] == "VERSION_CONFLICT"
    assert result["errors"][0]["field"] == "guards.expectedVersion"
    assert await snapshot(gql.tenant, item_id) == before

    current = (
        await gql.data(
            APPROVE,
            {
                "input": {
                    "stepId": submitted["steps"][0]["id"],
                    "guards": {"expectedVersion": submitted["version"]},
                }
            },
            as_user="bob",
            roles=("change-approver",),
        )
    )["approveStep"]
    assert current["errors"] == []
    assert current["item"]["state"] == "APPROVED"
