"""Workflow items, their steps and decisions. Rows become records in `db/records.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.db.records import ITEM_JSON, STEP_JSON, decision_of, item_of, step_of
from signoff.domain.records import Decision, DecisionOutcome, Item, Step
from signoff.domain.states import ItemState, StepState
from signoff.domain.template_model import RiskLevel, StepDefinition, TemplateKind

__all__ = [
    "ITEM_JSON",
    "STEP_JSON",
    "count_open_items",
    "decisions_of_items",
    "decisions_of_step",
    "get_item",
    "insert_decision",
    "insert_item",
    "insert_steps",
    "item_id_of_step",
    "recent_items_of_template",
    "save_item",
    "save_step",
    "steps_of",
    "steps_of_items",
]


async def insert_item(
    *,
    tenant_id: str,
    environment: str,
    template_id: UUID,
    kind: TemplateKind,
    title: str,
    state: ItemState,
    priority: int,
    risk: RiskLevel,
    requester_id: str,
    payload: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    external_ref: str | None,
    now: datetime,
) -> Item:
    """Store a new item and return it."""
    row = await sql.fetchrow(
        """INSERT INTO workflow_item (tenant_id, environment, template_id, kind, title, state,
            priority, risk, requester_id, payload, plan, external_ref, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13, $13)
        RETURNING *""",
        tenant_id,
        environment,
        template_id,
        kind.value,
        title,
        state.value,
        priority,
        risk.value,
        requester_id,
        sql.dumps(dict(payload)),
        sql.dumps(dict(plan)) if plan is not None else None,
        external_ref,
        now,
    )
    assert row is not None
    return item_of(sql.record_dict(row, ITEM_JSON))


async def insert_steps(
    item: Item, steps: Sequence[StepDefinition], state: StepState, now: datetime
) -> list[Step]:
    """Store an item's steps (one statement), in template order, and return them."""
    rows = await sql.fetch(
        """INSERT INTO step (tenant_id, item_id, key, name, kind, position, state, assignees,
            quorum, risk, sensitive, action, params, created_at, updated_at)
        SELECT $1, $2, s.key, s.name, s.kind, s.position, $3, s.assignees, s.quorum, s.risk,
            s.sensitive, s.action, s.params, $4, $4
        FROM unnest($5::text[], $6::text[], $7::text[], $8::int[], $9::jsonb[], $10::jsonb[],
            $11::text[], $12::bool[], $13::text[], $14::jsonb[])
            AS s(key, name, kind, position, assignees, quorum, risk, sensitive, action, params)
        RETURNING *""",
        item.tenant_id,
        item.id,
        state.value,
        now,
        [s.key for s in steps],
        [s.name for s in steps],
        [s.kind.value for s in steps],
        list(range(len(steps))),
        [sql.dumps({**s.assignees.to_dict(), "delegates": {}}) for s in steps],
        [sql.dumps({"mode": s.quorum.mode.value, "n": s.quorum.n}) for s in steps],
        [s.risk.value for s in steps],
        [s.sensitive for s in steps],
        [s.action for s in steps],
        [sql.dumps(dict(s.params)) for s in steps],
    )
    records = [step_of(sql.record_dict(r, STEP_JSON)) for r in rows]
    return sorted(records, key=lambda s: s.position)


async def get_item(tenant_id: str, item_id: UUID, *, lock: bool = False) -> Item | None:
    """One item of `tenant_id`; `lock` holds its row until commit (serialises actions on it)."""
    suffix = " FOR UPDATE" if lock else ""
    row = await sql.fetchrow(
        "SELECT * FROM workflow_item WHERE tenant_id = $1 AND id = $2" + suffix,
        tenant_id,
        item_id,
    )
    return item_of(sql.record_dict(row, ITEM_JSON)) if row else None


async def item_id_of_step(tenant_id: str, step_id: UUID) -> UUID | None:
    """The item a step belongs to."""
    row = await sql.fetchrow(
        "SELECT item_id FROM step WHERE tenant_id = $1 AND id = $2", tenant_id, step_id
    )
    return row["item_id"] if row else None


async def steps_of(tenant_id: str, item_id: UUID) -> list[Step]:
    """An item's steps in template order."""
    rows = await sql.fetch(
        "SELECT * FROM step WHERE tenant_id = $1 AND item_id = $2 ORDER BY position",
        tenant_id,
        item_id,
    )
    return [step_of(sql.record_dict(r, STEP_JSON)) for r in rows]


async def steps_of_items(tenant_id: str, item_ids: Sequence[UUID]) -> list[Step]:
    """The steps of several items at once (for dataloaders)."""
    rows = await sql.fetch(
        """SELECT * FROM step WHERE tenant_id = $1 AND item_id = ANY($2::uuid[])
        ORDER BY item_id, position""",
        tenant_id,
        list(item_ids),
    )
    return [step_of(sql.record_dict(r, STEP_JSON)) for r in rows]


def _json_or_null(value: Mapping[str, Any] | None) -> str | None:
    return sql.dumps(dict(value)) if value is not None else None


async def save_step(step: Step) -> None:
    """Write every changeable column of `step` as the record holds it (version included)."""
    await sql.execute(
        """UPDATE step SET state = $2, assignees = $3::jsonb, params = $4::jsonb,
            original_params = $5::jsonb, claimed_by = $6, decision_value = $7,
            result = $8::jsonb, error = $9, attempts = $10, escalation_level = $11,
            escalation_plan = $12::jsonb, activated_at = $13, due_at = $14, decided_at = $15,
            risk = $16, version = $17, updated_at = $18
        WHERE id = $1""",
        step.id,
        step.state.value,
        sql.dumps(step.assignees.to_dict()),
        sql.dumps(dict(step.params)),
        _json_or_null(step.original_params),
        step.claimed_by,
        step.decision_value,
        _json_or_null(step.result),
        step.error,
        step.attempts,
        step.escalation_level,
        sql.dumps(step.escalation_plan.to_dict()) if step.escalation_plan else None,
        step.activated_at,
        step.due_at,
        step.decided_at,
        step.risk.value,
        step.version,
        step.updated_at,
    )


async def save_item(item: Item) -> None:
    """Write every changeable column of `item` as the record holds it (version included)."""
    await sql.execute(
        """UPDATE workflow_item SET state = $2, payload = $3::jsonb, plan = $4::jsonb,
            revision = $5, priority = $6, due_at = $7, title = $8, version = $9,
            updated_at = $10
        WHERE id = $1""",
        item.id,
        item.state.value,
        sql.dumps(dict(item.payload)),
        _json_or_null(item.plan),
        item.revision,
        item.priority,
        item.due_at,
        item.title,
        item.version,
        item.updated_at,
    )


async def insert_decision(
    *,
    step: Step,
    revision: int,
    actor_id: str,
    outcome: DecisionOutcome,
    now: datetime,
    acting_for: str | None = None,
    reason: str | None = None,
    rule: str | None = None,
) -> Decision:
    """Store one decision (a vote, a rejection, an override, ...) and return it."""
    row = await sql.fetchrow(
        """INSERT INTO decision (tenant_id, item_id, step_id, revision, actor_id, acting_for,
            outcome, reason, rule, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *""",
        step.tenant_id,
        step.item_id,
        step.id,
        revision,
        actor_id,
        acting_for,
        outcome.value,
        reason,
        rule,
        now,
    )
    assert row is not None
    return decision_of(row)


async def decisions_of_step(step_id: UUID, revision: int | None = None) -> list[Decision]:
    """A step's decisions (of one revision, when given), oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM decision WHERE step_id = $1 AND ($2::int IS NULL OR revision = $2)
        ORDER BY created_at, seq""",
        step_id,
        revision,
    )
    return [decision_of(r) for r in rows]


async def decisions_of_items(tenant_id: str, item_ids: Sequence[UUID]) -> list[Decision]:
    """The decisions of several items (for dataloaders), oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM decision WHERE tenant_id = $1 AND item_id = ANY($2::uuid[])
        ORDER BY created_at, seq""",
        tenant_id,
        list(item_ids),
    )
    return [decision_of(r) for r in rows]


async def recent_items_of_template(tenant_id: str, key: str, last: int) -> list[Item]:
    """The `last` newest items (not plans) submitted with any version of template `key`."""
    rows = await sql.fetch(
        """SELECT i.* FROM workflow_item i JOIN template t ON t.id = i.template_id
        WHERE i.tenant_id = $1 AND t.key = $2 AND i.plan IS NULL
        ORDER BY i.created_at DESC LIMIT $3""",
        tenant_id,
        key,
        last,
    )
    return [item_of(sql.record_dict(r, ITEM_JSON)) for r in rows]


async def count_open_items(tenant_id: str, requester_id: str) -> int:
    """How many undecided items a requester has."""
    row = await sql.fetchrow(
        """SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1 AND requester_id = $2
        AND state IN ('pending', 'changes_requested')""",
        tenant_id,
        requester_id,
    )
    return int(row["n"]) if row else 0
