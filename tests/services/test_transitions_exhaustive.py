"""Every (state, action) pair of both state machines, through the real transition functions.

Legal pairs move the row and leave exactly one audit event with `from`/`to`; illegal pairs raise
ILLEGAL_TRANSITION and the failed unit of work changes nothing: not the state, not the version,
not the tenant's audit chain. The pairs come from the enums, not from the tables, so a pair the
tables forget is still exercised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.clock import ManualClock
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.run import Run
from signoff.domain.states import (
    ITEM_MACHINE,
    STEP_MACHINE,
    ItemAction,
    ItemState,
    StepAction,
    StepState,
    render_markdown,
)
from signoff.services import engine
from signoff.services import items as item_services
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.services.uow import unit_of_work

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "backend" / "signoff" / "demo"
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


def actor(tenant: str, user: str, *roles: str) -> Actor:
    return Actor(Principal(user, tenant, roles=frozenset(roles)))


@dataclass
class Bench:
    """A tenant of this module with one item per state under test (reused across actions:
    every test forces the state it needs first)."""

    tenant: str
    ctx: ServiceContext
    items: dict[tuple[str, str], UUID] = field(default_factory=dict)

    async def item_for(self, machine: str, state: str) -> UUID:
        key = (machine, state)
        if key not in self.items:
            view = await item_services.submit_item(
                actor(self.tenant, "alice"),
                self.ctx,
                item_services.SubmitItemInput(
                    template_key="change-approval", title=f"{machine} {state}", payload=PAYLOAD
                ),
            )
            self.items[key] = view.id
        return self.items[key]


@pytest.fixture(scope="module")
async def bench(settings: Any) -> Bench:
    tenant = f"t{uuid.uuid4().hex[:12]}"
    ctx = ServiceContext(settings=settings, clock=ManualClock())
    await load_templates(actor(tenant, "admin", "admin"), ctx, DEMO)
    return Bench(tenant, ctx)


async def snapshot(tenant: str, item_id: UUID) -> dict[str, Any]:
    item = await sql.fetchrow("SELECT state, version FROM workflow_item WHERE id = $1", item_id)
    step = await sql.fetchrow(
        "SELECT id, state, version FROM step WHERE item_id = $1 ORDER BY position", item_id
    )
    head = await sql.fetchrow(
        "SELECT max(seq) AS audit_seq FROM audit_event WHERE tenant_id = $1", tenant
    )
    assert item is not None and step is not None and head is not None
    return {
        "item_state": item["state"],
        "item_version": item["version"],
        "step_id": step["id"],
        "step_state": step["state"],
        "step_version": step["version"],
        "audit_seq": head["audit_seq"],
    }


async def events_after(tenant: str, seq: int) -> list[dict[str, Any]]:
    rows = await sql.fetch(
        "SELECT action, data, step_id, item_id FROM audit_event WHERE tenant_id = $1 AND seq > $2"
        " ORDER BY seq",
        tenant,
        seq,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


@pytest.mark.parametrize("action", list(StepAction), ids=str)
@pytest.mark.parametrize("state", list(StepState), ids=str)
async def test_step_transition(bench: Bench, state: StepState, action: StepAction) -> None:
    item_id = await bench.item_for("step", state.value)
    await sql.execute("UPDATE step SET state = $1 WHERE item_id = $2", state.value, item_id)
    before = await snapshot(bench.tenant, item_id)
    assert before["step_state"] == state.value
    legal = (state, action) in STEP_MACHINE.table
    who = actor(bench.tenant, "admin", "admin")

    async def apply() -> None:
        async with unit_of_work(who, bench.ctx) as uow:
            view, context = await engine.lock_view(who, bench.ctx, item_id=item_id)
            run = Run(view.snapshot, view.definition, context)
            run.move(view.step(before["step_id"]).key, action)
            await engine.apply(uow, view, run.result())

    if legal:
        await apply()
        after = await snapshot(bench.tenant, item_id)
        assert after["step_state"] == STEP_MACHINE.table[(state, action)].value
        assert after["item_version"] == before["item_version"] + 1
        assert after["step_version"] > before["step_version"]
        assert after["audit_seq"] == before["audit_seq"] + 1
        [event] = await events_after(bench.tenant, before["audit_seq"])
        assert event["action"] == f"step.{action.value}"
        assert event["item_id"] == item_id
        assert event["step_id"] == before["step_id"]
        assert event["data"]["from"] == state.value
        assert event["data"]["to"] == after["step_state"]
    else:
        with pytest.raises(DomainError) as refused:
            await apply()
        assert refused.value.code == ErrorCode.ILLEGAL_TRANSITION
        assert refused.value.details == {
            "machine": "step",
            "state": state.value,
            "action": action.value,
        }
        assert await snapshot(bench.tenant, item_id) == before
        assert await events_after(bench.tenant, before["audit_seq"]) == []


@pytest.mark.parametrize("action", list(ItemAction), ids=str)
@pytest.mark.parametrize("state", list(ItemState), ids=str)
async def test_item_transition(bench: Bench, state: ItemState, action: ItemAction) -> None:
    item_id = await bench.item_for("item", state.value)
    await sql.execute("UPDATE workflow_item SET state = $1 WHERE id = $2", state.value, item_id)
    before = await snapshot(bench.tenant, item_id)
    assert before["item_state"] == state.value
    legal = (state, action) in ITEM_MACHINE.table
    who = actor(bench.tenant, "admin", "admin")

    async def apply() -> None:
        async with unit_of_work(who, bench.ctx) as uow:
            view, context = await engine.lock_view(who, bench.ctx, item_id=item_id)
            run = Run(view.snapshot, view.definition, context)
            run.move_item(action)
            await engine.apply(uow, view, run.result())

    if legal:
        await apply()
        after = await snapshot(bench.tenant, item_id)
        assert after["item_state"] == ITEM_MACHINE.table[(state, action)].value
        assert after["item_version"] == before["item_version"] + 1
        assert (after["step_state"], after["step_version"]) == (
            before["step_state"],
            before["step_version"],
        )
        assert after["audit_seq"] == before["audit_seq"] + 1
        [event] = await events_after(bench.tenant, before["audit_seq"])
        assert event["action"] == f"item.{action.value}"
        assert event["item_id"] == item_id
        assert event["data"]["from"] == state.value
        assert event["data"]["to"] == after["item_state"]
    else:
        with pytest.raises(DomainError) as refused:
            await apply()
        assert refused.value.code == ErrorCode.ILLEGAL_TRANSITION
        assert refused.value.details == {
            "machine": "item",
            "state": state.value,
            "action": action.value,
        }
        assert await snapshot(bench.tenant, item_id) == before
        assert await events_after(bench.tenant, before["audit_seq"]) == []


def test_every_table_entry_names_known_states_and_actions() -> None:
    for machine in (ITEM_MACHINE, STEP_MACHINE):
        for (src, act), dst in machine.table.items():
            assert src in machine.states and dst in machine.states
            assert act in machine.actions


def test_allowed_actions_agree_with_the_table() -> None:
    for machine in (ITEM_MACHINE, STEP_MACHINE):
        for state in machine.states:
            allowed = machine.allowed_actions(state)
            assert allowed == [a for a in machine.actions if (state, a) in machine.table]


def test_state_machine_reference_doc_is_generated_from_the_tables() -> None:
    doc = REPO / "docs" / "reference" / "state-machine.md"
    assert doc.read_text() == render_markdown(), (
        "docs/reference/state-machine.md is stale: run `signoff docs state-machine`"
    )
    for machine in (ITEM_MACHINE, STEP_MACHINE):
        for (src, act), dst in machine.table.items():
            assert f"| `{src.value}` | `{act.value}` | `{dst.value}` |" in doc.read_text()
