"""The uses of decision links: one row per link that decided (services/decision_links.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from signoff.db import sql


async def claim_use(
    tenant_id: str, link_id: UUID, step_id: UUID, user_id: str, outcome: str, now: datetime
) -> bool:
    """Record that a link is used, in the caller's transaction; False when it already was.
    A concurrent use of the same link waits here until the first commits (then False) or
    rolls back (then True)."""
    row = await sql.fetchrow(
        """INSERT INTO decision_link_use (tenant_id, link_id, step_id, user_id, outcome, used_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (tenant_id, link_id) DO NOTHING
        RETURNING link_id""",
        tenant_id,
        link_id,
        step_id,
        user_id,
        outcome,
        now,
    )
    return row is not None


async def use_of(tenant_id: str, link_id: UUID) -> dict[str, Any] | None:
    """The use of a link, if it was used."""
    row = await sql.fetchrow(
        "SELECT * FROM decision_link_use WHERE tenant_id = $1 AND link_id = $2",
        tenant_id,
        link_id,
    )
    return dict(row) if row else None
