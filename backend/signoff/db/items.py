"""Workflow items, their steps and decisions. Rows become records in `db/records.py`.

Writes take whole records: the engine computes what a change leaves behind and each row is
written once per transaction, several steps in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.db.permissions import grants_of_rows
from signoff.db.records import (
    ITEM_JSON,
    STEP_JSON,
    calendar_of,
    decision_of,
    item_of,
    step_of,
)
from signoff.domain.analytics import ACTIVATIONS
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.permissions import Grant
from signoff.domain.records import Decision, DecisionOutcome, Item, Step

__all__ = [
    "ITEM_JSON",
    "STEP_JSON",
    "ChangeBasis",
    "NewDecisionRow",
    "count_open_items",
    "decisions_of_items",
    "decisions_of_step",
    "get_item",
    "insert_item",
    "insert_steps",
    "item_id_of_step",
    "lock_for_change",
    "lock_item",
    "lock_items",
    "recent_items_of_template",
    "steps_of",
    "steps_of_items",
    "write_decisions",
    "write_item",
    "write_steps",
]


def _doc(value: Mapping[str, Any] | None) -> str | None:
    return sql.dumps(dict(value)) if value is not None else None


async def insert_item(item: Item) -> None:
    """Store a new item as the record says."""
    await sql.execute(
        """INSERT INTO workflow_item (id, tenant_id, environment, template_id, kind, title, state,
            priority, risk, requester_id, payload, plan, external_ref, revision, version, due_at,
            created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14, $15,
            $16, $17, $18)""",
        item.id,
        item.tenant_id,
        item.environment,
        item.template_id,
        item.kind.value,
        item.title,
        item.state.value,
        item.priority,
        item.risk.value,
        item.requester_id,
        sql.dumps(dict(item.payload)),
        _doc(item.plan),
        item.external_ref,
        item.revision,
        item.version,
        item.due_at,
        item.created_at,
        item.updated_at,
    )


_STEP_COLUMNS = (
    ("state", "text"),
    ("assignees", "jsonb"),
    ("params", "jsonb"),
    ("original_params", "jsonb"),
    ("claimed_by", "text"),
    ("decision_value", "text"),
    ("result", "jsonb"),
    ("error", "text"),
    ("attempts", "int"),
    ("escalation_level", "int"),
    ("escalation_plan", "jsonb"),
    ("activated_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("decided_at", "timestamptz"),
    ("risk", "text"),
    ("seats", "jsonb"),
    ("needed", "int"),
    ("declared_risk", "text"),
    ("waived", "text"),  # a text[] per row travels as its JSON form through unnest
    ("hold", "jsonb"),
    ("version", "int"),
    ("updated_at", "timestamptz"),
)


def _changeable(step: Step) -> list[Any]:
    """The changeable columns of `step`, in `_STEP_COLUMNS` order, as bound parameters."""
    return [
        step.state.value,
        sql.dumps(step.assignees.to_dict()),
        sql.dumps(dict(step.params)),
        _doc(step.original_params),
        step.claimed_by,
        step.decision_value,
        _doc(step.result),
        step.error,
        step.attempts,
        step.escalation_level,
        sql.dumps(step.escalation_plan.to_dict()) if step.escalation_plan else None,
        step.activated_at,
        step.due_at,
        step.decided_at,
        step.risk.value,
        sql.dumps([s.to_dict() for s in step.seats]),
        step.needed,
        step.declared_risk.value if step.declared_risk else None,
        sql.dumps(list(step.waived)),
        sql.dumps(step.hold.to_dict()) if step.hold else None,
        step.version,
        step.updated_at,
    ]


def _assignment(column: str, kind: str) -> str:
    if column == "waived":
        return "waived = ARRAY(SELECT jsonb_array_elements_text(u.waived::jsonb))"
    return f"{column} = u.{column}" + ("::jsonb" if kind == "jsonb" else "")


_UNNEST_TYPES = {"jsonb": "text"}


async def insert_steps(steps: Sequence[Step]) -> None:
    """Store new steps as the records say (one statement)."""
    if not steps:
        return
    fixed = ("id", "tenant_id", "item_id", "key", "name", "kind", "position", "quorum",
             "sensitive", "action", "created_at")  # fmt: skip
    columns = [*fixed, *(c for c, _ in _STEP_COLUMNS)]
    types = ["uuid", "text", "uuid", "text", "text", "text", "int", "text", "bool", "text",
             "timestamptz", *(_UNNEST_TYPES.get(k, k) for _, k in _STEP_COLUMNS)]  # fmt: skip
    rows = [
        [
            s.id,
            s.tenant_id,
            s.item_id,
            s.key,
            s.name,
            s.kind.value,
            s.position,
            sql.dumps({"mode": s.quorum.mode.value, "n": s.quorum.n}),
            s.sensitive,
            s.action,
            s.created_at,
            *_changeable(s),
        ]
        for s in steps
    ]
    arrays = [list(column) for column in zip(*rows, strict=True)]
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    kinds = {**dict(_STEP_COLUMNS), "quorum": "jsonb"}
    values = [_assignment(c, kinds.get(c, "")).split(" = ", 1)[1] for c in columns]
    await sql.execute(
        f"""INSERT INTO step ({", ".join(columns)})
        SELECT {", ".join(values)} FROM unnest({unnest}) AS u({", ".join(columns)})""",
        *arrays,
    )


def write_steps(steps: Sequence[Step]) -> sql.Write | None:
    """The statement writing every changeable column of each step as its record holds it."""
    if not steps:
        return None
    columns = ["id", *(c for c, _ in _STEP_COLUMNS)]
    types = ["uuid", *(_UNNEST_TYPES.get(k, k) for _, k in _STEP_COLUMNS)]
    rows = [[s.id, *_changeable(s)] for s in steps]
    arrays = [list(column) for column in zip(*rows, strict=True)]
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    assignments = ", ".join(_assignment(c, k) for c, k in _STEP_COLUMNS)
    return sql.Write(
        f"""UPDATE step SET {assignments}
        FROM unnest({unnest}) AS u({", ".join(columns)})
        WHERE step.id = u.id""",
        tuple(arrays),
    )


def write_item(item: Item) -> sql.Write:
    """The statement writing every changeable column of `item` as the record holds it
    (version included)."""
    return sql.Write(
        """UPDATE workflow_item SET state = $2, payload = $3::jsonb, plan = $4::jsonb,
            revision = $5, priority = $6, due_at = $7, title = $8, version = $9,
            updated_at = $10
        WHERE id = $1""",
        (
            item.id,
            item.state.value,
            sql.dumps(dict(item.payload)),
            _doc(item.plan),
            item.revision,
            item.priority,
            item.due_at,
            item.title,
            item.version,
            item.updated_at,
        ),
    )


async def get_item(tenant_id: str, item_id: UUID) -> Item | None:
    """One item of `tenant_id`, unlocked."""
    row = await sql.fetchrow(
        "SELECT * FROM workflow_item WHERE tenant_id = $1 AND id = $2", tenant_id, item_id
    )
    return item_of(sql.record_dict(row, ITEM_JSON)) if row else None


async def lock_item(
    tenant_id: str, *, item_id: UUID | None = None, step_id: UUID | None = None
) -> tuple[Item, BusinessCalendar | None] | None:
    """The item (by its id, or the id of one of its steps) locked until commit, with its
    tenant's business calendar (`lock_for_change` without the rest)."""
    basis = await lock_for_change(tenant_id, item_id=item_id, step_id=step_id)
    return None if basis is None else (basis.item, basis.calendar)


@dataclass(frozen=True)
class ChangeBasis:
    """What every change of an item reads first: the item locked until commit, its tenant's
    business calendar, its steps in template order and the tenant's stored grants."""

    item: Item
    calendar: BusinessCalendar | None
    steps: tuple[Step, ...]
    grants: tuple[Grant, ...]


# The item by its id ($2) or by one of its steps ($3) in tenant $1, locked, with its calendar,
# its steps as of the statement's snapshot and its tenant's grants (see `lock_for_change`).
LOCK_FOR_CHANGE = """SELECT i.*, c.timezone AS cal_timezone, c.workdays AS cal_workdays,
        c.day_start AS cal_day_start, c.day_end AS cal_day_end, c.holidays AS cal_holidays,
        (SELECT o.version FROM workflow_item o WHERE o.id = i.id) AS snapshot_version,
        (SELECT array_agg(s ORDER BY s.position) FROM step s
            WHERE s.tenant_id = i.tenant_id AND s.item_id = i.id) AS snapshot_steps,
        (SELECT array_agg(g ORDER BY g.template_key, g.permission)
            FROM permission_grant g WHERE g.tenant_id = i.tenant_id) AS grants
    FROM workflow_item i LEFT JOIN business_calendar c ON c.tenant_id = i.tenant_id
    WHERE i.tenant_id = $1
      AND i.id = (SELECT coalesce($2, (SELECT item_id FROM step
                                           WHERE tenant_id = $1 AND id = $3)))
    FOR UPDATE OF i"""


async def lock_for_change(
    tenant_id: str, *, item_id: UUID | None = None, step_id: UUID | None = None
) -> ChangeBasis | None:
    """The item (by its id, or the id of one of its steps) locked until commit, with what a
    change of it reads besides (`ChangeBasis`), in one statement.

    The steps and grants come from the statement's snapshot, taken before the lock was
    granted. When another transaction changed the item meanwhile (it committed while this one
    waited for the lock), the locked row is the newer one but the snapshot's steps are not:
    every change of a step bumps its item's version under the item's lock, so a version that
    differs from the snapshot's says so, and the steps are read again, now under the lock.

    The item's id is a scalar subquery (an init plan, a parameter to the index scan), not a
    bare `coalesce(...)`: under row-level security a qualifier that is not leakproof (a
    COALESCE is not) is evaluated only after the policy's, on every row of the table, so the
    bare form scanned the whole `workflow_item` table on every change by step id.
    """
    row = await sql.fetchrow(
        LOCK_FOR_CHANGE,
        tenant_id,
        item_id,
        step_id,
    )
    if row is None:
        return None
    values = sql.record_dict(row, ITEM_JSON)
    calendar = calendar_of(values, "cal_") if values["cal_timezone"] is not None else None
    item = item_of(values)
    if values["snapshot_version"] == item.version:
        steps = [step_of(s) for s in values["snapshot_steps"] or ()]
    else:
        steps = await steps_of(tenant_id, item.id)
    return ChangeBasis(item, calendar, tuple(steps), grants_of_rows(values["grants"] or ()))


async def lock_items(
    tenant_id: str, item_ids: Sequence[UUID]
) -> tuple[list[Item], BusinessCalendar | None]:
    """Those of the items that no other transaction holds, locked until commit (the others
    are left out, not waited for), with the tenant's business calendar."""
    rows = await sql.fetch(
        """SELECT i.*, c.timezone AS cal_timezone, c.workdays AS cal_workdays,
            c.day_start AS cal_day_start, c.day_end AS cal_day_end, c.holidays AS cal_holidays
        FROM workflow_item i LEFT JOIN business_calendar c ON c.tenant_id = i.tenant_id
        WHERE i.tenant_id = $1 AND i.id = ANY($2::uuid[])
        ORDER BY i.id
        FOR UPDATE OF i SKIP LOCKED""",
        tenant_id,
        list(item_ids),
    )
    values = [sql.record_dict(r, ITEM_JSON) for r in rows]
    calendar = None
    if values and values[0]["cal_timezone"] is not None:
        calendar = calendar_of(values[0], "cal_")
    return [item_of(v) for v in values], calendar


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
    return [step_of(r) for r in rows]


async def steps_of_items(tenant_id: str, item_ids: Sequence[UUID]) -> list[Step]:
    """The steps of several items at once (for dataloaders)."""
    rows = await sql.fetch(
        """SELECT * FROM step WHERE tenant_id = $1 AND item_id = ANY($2::uuid[])
        ORDER BY item_id, position""",
        tenant_id,
        list(item_ids),
    )
    return [step_of(r) for r in rows]


# literals, so that the partial index `audit_event_activation` serves the probe
ACTIVATION_ACTIONS = ", ".join(f"'{a}'" for a in ACTIVATIONS)

NewDecisionRow = tuple[
    Step, int, str, DecisionOutcome, str | None, str | None, str | None, int | None, bool
]
"""(step, revision, actor, outcome, acting_for, reason, rule, seat, activated now) of a
decision to store; `activated now`: the step was activated in the same change."""


def write_decisions(rows: Sequence[NewDecisionRow], now: Any) -> sql.Write | None:
    """The statement storing decisions (votes, rejections, overrides, rules that decided).
    Each keeps when its step was last activated (`step.activate`, `step.resubmit` or
    `step.reopen` at or before it): now, when that happened in this change (its events are
    appended at commit), else the latest such audit event (one probe of its index)."""
    if not rows:
        return None
    return sql.Write(
        f"""INSERT INTO decision (tenant_id, item_id, step_id, revision, actor_id, outcome,
            acting_for, reason, rule, seat, created_at, step_activated_at)
        SELECT u.tenant_id, u.item_id, u.step_id, u.revision, u.actor_id, u.outcome,
            u.acting_for, u.reason, u.rule, u.seat, $11,
            CASE WHEN u.activated_now THEN $11 ELSE (
                SELECT max(a.occurred_at) FROM audit_event a
                WHERE a.step_id = u.step_id AND a.tenant_id = u.tenant_id
                  AND a.action IN ({ACTIVATION_ACTIONS}) AND a.occurred_at <= $11) END
        FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::int[], $12::boolean[]) WITH ORDINALITY
            AS u(tenant_id, item_id, step_id, revision, actor_id, outcome, acting_for, reason,
                rule, seat, activated_now, n)
        ORDER BY u.n""",
        (
            [r[0].tenant_id for r in rows],
            [r[0].item_id for r in rows],
            [r[0].id for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3].value for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
            [r[6] for r in rows],
            [r[7] for r in rows],
            now,
            [r[8] for r in rows],
        ),
    )


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
