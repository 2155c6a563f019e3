"""Reading audit events for an export: streamed through a server-side cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from signoff.db.engine import ENGINE
from signoff.domain.audit_export import COLUMNS, ExportFilter, action_patterns

_SELECT = ", ".join("data::text AS data" if c == "data" else c for c in COLUMNS)


def filtered_query(tenant_id: str, f: ExportFilter, to_seq: int) -> tuple[str, list[Any]]:
    """The SELECT of an export's events in seq order, with its arguments."""
    args: list[Any] = [tenant_id, to_seq]
    where = ["tenant_id = $1", "seq <= $2"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if f.since is not None:
        where.append(f"occurred_at >= {arg(f.since)}")
    if f.until is not None:
        where.append(f"occurred_at < {arg(f.until)}")
    if f.item_id is not None:
        where.append(f"item_id = {arg(f.item_id)}")
    if f.actor_id is not None:
        where.append(f"actor_id = {arg(f.actor_id)}")
    if f.kinds:
        where.append(f"action LIKE ANY ({arg(action_patterns(f.kinds))}::text[])")
    if f.template_key is not None:
        where.append(
            f"""item_id IN (SELECT i.id FROM workflow_item i JOIN template t
                ON t.id = i.template_id WHERE i.tenant_id = $1 AND t.key = {arg(f.template_key)})"""
        )
    query = f"SELECT {_SELECT} FROM audit_event WHERE {' AND '.join(where)} ORDER BY seq"
    return query, args


@asynccontextmanager
async def _own_connection() -> AsyncIterator[asyncpg.Connection]:
    # A connection of its own: the cursor's transaction stays open while the export runs.
    if ENGINE.pool is not None:
        async with ENGINE.pool.acquire() as conn:
            yield conn
        return
    conn = await ENGINE.get_new_connection()
    try:
        yield conn
    finally:
        await conn.close()


async def stream_events(
    tenant_id: str, f: ExportFilter, to_seq: int, batch: int = 2_000
) -> AsyncIterator[list[asyncpg.Record]]:
    """The export's events in batches of at most `batch`, oldest first, from one snapshot.

    A server-side cursor in a read-only repeatable-read transaction: memory holds one batch,
    whatever the number of events.
    """
    query, args = filtered_query(tenant_id, f, to_seq)
    async with (
        _own_connection() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        cursor = await conn.cursor(query, *args)
        while rows := await cursor.fetch(batch):
            yield rows
