"""Appending to and reading the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.domain.audit import event_hash

REALTIME_CHANNEL = "signoff_events"

_COLUMNS = (
    "tenant_id",
    "seq",
    "item_id",
    "step_id",
    "action",
    "actor_id",
    "acting_for",
    "reason",
    "request_id",
    "client_addr",
    "user_agent",
    "data",
    "occurred_at",
    "prev_hash",
    "hash",
)


async def ensure_tenant(tenant_id: str) -> None:
    """Create the tenant row on first use (a token may name a tenant not yet seen)."""
    await sql.execute(
        "INSERT INTO tenant (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING", tenant_id
    )


async def append_events(tenant_id: str, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number, chain and insert `events` in the current transaction.

    The tenant row is locked until commit, so one tenant's events are numbered in commit
    order without gaps: a reader that resumes after sequence N never misses an event that
    commits later with a smaller number.
    """
    if not sql.in_transaction():
        raise RuntimeError("audit events are written only inside the transaction of their change")
    head = await sql.fetchrow(
        "SELECT audit_seq, audit_hash FROM tenant WHERE id = $1 FOR NO KEY UPDATE", tenant_id
    )
    assert head is not None
    seq, prev = int(head["audit_seq"]), str(head["audit_hash"])
    rows: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        row = {**event, "tenant_id": tenant_id, "seq": seq, "prev_hash": prev}
        row["hash"] = event_hash(prev, row)
        prev = row["hash"]
        rows.append(row)
    await sql.execute(
        f"""INSERT INTO audit_event ({", ".join(_COLUMNS)})
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::jsonb[], $13::timestamptz[], $14::text[], $15::text[])""",
        *[[_param(row, c) for row in rows] for c in _COLUMNS],
    )
    await sql.execute(
        "UPDATE tenant SET audit_seq = $2, audit_hash = $3 WHERE id = $1", tenant_id, seq, prev
    )
    # Delivered to listeners only if and when the transaction commits.
    await sql.execute(
        "SELECT pg_notify($1, $2)", REALTIME_CHANNEL, sql.dumps({"tenant": tenant_id, "seq": seq})
    )
    return rows


def _param(row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    if column == "data":
        return sql.dumps(value or {})
    if column in ("item_id", "step_id") and value is not None and not isinstance(value, UUID):
        return UUID(str(value))
    return value


async def events_for_item(tenant_id: str, item_id: UUID) -> list[dict[str, Any]]:
    """Every audit event of one item, oldest first."""
    rows = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 AND item_id = $2 ORDER BY seq",
        tenant_id,
        item_id,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


async def events_after(tenant_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """A tenant's events with `seq` greater than `after_seq`, oldest first."""
    rows = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        tenant_id,
        after_seq,
        limit,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]
