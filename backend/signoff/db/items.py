"""Workflow items, their steps and decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from signoff.db import sql

ITEM_JSON = ("payload", "plan")
STEP_JSON = ("assignees", "quorum", "params", "original_params", "result", "escalation_plan")


async def insert_item(values: dict[str, Any]) -> dict[str, Any]:
    """Store a new item and return it."""
    row = await sql.fetchrow(
        """INSERT INTO workflow_item (tenant_id, environment, template_id, kind, title, state,
            priority, risk, requester_id, payload, plan, external_ref, due_at, created_at,
            updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13, $14, $14)
        RETURNING *""",
        values["tenant_id"],
        values.get("environment", "production"),
        values["template_id"],
        values["kind"],
        values["title"],
        values["state"],
        values.get("priority", 0),
        values.get("risk", "low"),
        values["requester_id"],
        sql.dumps(values.get("payload") or {}),
        sql.dumps(values["plan"]) if values.get("plan") is not None else None,
        values.get("external_ref"),
        values.get("due_at"),
        values["now"],
    )
    assert row is not None
    return sql.record_dict(row, ITEM_JSON)


async def insert_steps(tenant_id: str, item_id: UUID, steps: Sequence[dict[str, Any]]) -> None:
    """Store an item's steps."""
    for step in steps:
        await sql.execute(
            """INSERT INTO step (tenant_id, item_id, key, name, kind, position, state, assignees,
                quorum, risk, sensitive, action, params, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, $13::jsonb,
                $14, $14)""",
            tenant_id,
            item_id,
            step["key"],
            step["name"],
            step["kind"],
            step["position"],
            step["state"],
            sql.dumps(step["assignees"]),
            sql.dumps(step["quorum"]),
            step["risk"],
            step["sensitive"],
            step.get("action"),
            sql.dumps(step.get("params") or {}),
            step["now"],
        )


async def get_item(tenant_id: str, item_id: UUID, *, lock: bool = False) -> dict[str, Any] | None:
    """One item of `tenant_id`; `lock` holds its row until commit (serialises actions on it)."""
    suffix = " FOR UPDATE" if lock else ""
    row = await sql.fetchrow(
        "SELECT * FROM workflow_item WHERE tenant_id = $1 AND id = $2" + suffix,
        tenant_id,
        item_id,
    )
    return sql.record_dict(row, ITEM_JSON) if row else None


async def item_id_of_step(tenant_id: str, step_id: UUID) -> UUID | None:
    """The item a step belongs to."""
    row = await sql.fetchrow(
        "SELECT item_id FROM step WHERE tenant_id = $1 AND id = $2", tenant_id, step_id
    )
    return row["item_id"] if row else None


async def steps_of(tenant_id: str, item_id: UUID) -> list[dict[str, Any]]:
    """An item's steps in template order."""
    rows = await sql.fetch(
        "SELECT * FROM step WHERE tenant_id = $1 AND item_id = $2 ORDER BY position",
        tenant_id,
        item_id,
    )
    return [sql.record_dict(r, STEP_JSON) for r in rows]


async def steps_of_items(tenant_id: str, item_ids: Sequence[UUID]) -> list[dict[str, Any]]:
    """The steps of several items at once (for dataloaders)."""
    rows = await sql.fetch(
        """SELECT * FROM step WHERE tenant_id = $1 AND item_id = ANY($2::uuid[])
        ORDER BY item_id, position""",
        tenant_id,
        list(item_ids),
    )
    return [sql.record_dict(r, STEP_JSON) for r in rows]


_STEP_UPDATABLE = {
    "state",
    "assignees",
    "params",
    "original_params",
    "claimed_by",
    "decision_value",
    "result",
    "error",
    "attempts",
    "escalation_level",
    "escalation_plan",
    "activated_at",
    "due_at",
    "decided_at",
    "risk",
}
_ITEM_UPDATABLE = {"state", "payload", "plan", "revision", "priority", "due_at", "title"}


async def update_step(step_id: UUID, changes: dict[str, Any], now: Any) -> None:
    """Apply `changes` to a step and bump its version."""
    await _update("step", step_id, changes, now, _STEP_UPDATABLE, STEP_JSON)


async def update_item(item_id: UUID, changes: dict[str, Any], now: Any) -> None:
    """Apply `changes` to an item and bump its version (every change to an item or its steps)."""
    await _update("workflow_item", item_id, changes, now, _ITEM_UPDATABLE, ITEM_JSON)


async def _update(
    table: str,
    row_id: UUID,
    changes: dict[str, Any],
    now: Any,
    allowed: set[str],
    json_columns: Sequence[str],
) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot update {table}.{sorted(unknown)}")
    assignments = []
    args: list[Any] = [row_id, now]
    for column, value in changes.items():
        args.append(sql.dumps(value) if column in json_columns and value is not None else value)
        cast = "::jsonb" if column in json_columns else ""
        assignments.append(f"{column} = ${len(args)}{cast}")
    assignments += ["version = version + 1", "updated_at = $2"]
    await sql.execute(f"UPDATE {table} SET {', '.join(assignments)} WHERE id = $1", *args)


async def insert_decision(values: dict[str, Any]) -> None:
    """Store one decision (a vote, a rejection, an override, ...)."""
    await sql.execute(
        """INSERT INTO decision (tenant_id, item_id, step_id, revision, actor_id, acting_for,
            outcome, reason, rule, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        values["tenant_id"],
        values["item_id"],
        values["step_id"],
        values["revision"],
        values["actor_id"],
        values.get("acting_for"),
        values["outcome"],
        values.get("reason"),
        values.get("rule"),
        values["now"],
    )


async def decisions_of_step(step_id: UUID, revision: int | None = None) -> list[dict[str, Any]]:
    """A step's decisions (of one revision, when given), oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM decision WHERE step_id = $1 AND ($2::int IS NULL OR revision = $2)
        ORDER BY created_at, seq""",
        step_id,
        revision,
    )
    return [dict(r) for r in rows]


async def decisions_of_items(tenant_id: str, item_ids: Sequence[UUID]) -> list[dict[str, Any]]:
    """The decisions of several items (for dataloaders)."""
    rows = await sql.fetch(
        """SELECT * FROM decision WHERE tenant_id = $1 AND item_id = ANY($2::uuid[])
        ORDER BY created_at, seq""",
        tenant_id,
        list(item_ids),
    )
    return [dict(r) for r in rows]


async def count_open_items(tenant_id: str, requester_id: str) -> int:
    """How many undecided items a requester has."""
    row = await sql.fetchrow(
        """SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1 AND requester_id = $2
        AND state IN ('pending', 'changes_requested')""",
        tenant_id,
        requester_id,
    )
    return int(row["n"]) if row else 0
