"""Idempotency keys: the first result of a keyed mutation, kept with the change it made."""

from __future__ import annotations

from typing import Any

from signoff.db import sql


async def claim(
    tenant_id: str, actor_id: str, key: str, operation: str, request_hash: str
) -> dict[str, Any] | None:
    """Reserve `key` in the current transaction, or return the stored row of an earlier use.

    A concurrent transaction holding the same key makes this wait until it commits or rolls
    back (unique index), so a replay never acts twice.
    """
    inserted = await sql.fetchrow(
        """INSERT INTO idempotency_key (tenant_id, actor_id, key, operation, request_hash)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING key""",
        tenant_id,
        actor_id,
        key,
        operation,
        request_hash,
    )
    if inserted is not None:
        return None
    row = await sql.fetchrow(
        """SELECT operation, request_hash, result FROM idempotency_key
        WHERE tenant_id = $1 AND actor_id = $2 AND key = $3""",
        tenant_id,
        actor_id,
        key,
    )
    assert row is not None
    return sql.record_dict(row, ("result",))


async def store_result(tenant_id: str, actor_id: str, key: str, result: Any) -> None:
    """Keep the result of the keyed mutation, for replays."""
    await sql.execute(
        """UPDATE idempotency_key SET result = $4::jsonb
        WHERE tenant_id = $1 AND actor_id = $2 AND key = $3""",
        tenant_id,
        actor_id,
        key,
        sql.dumps(result),
    )
