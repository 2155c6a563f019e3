"""Reading the tenant event feed (the audit trail) from a cursor: the head of the chain."""

from __future__ import annotations

from signoff.db import sql


async def tenant_head(tenant_id: str) -> int:
    """The last sequence number handed out in `tenant_id` (0 for a tenant not yet seen).

    Events are numbered in commit order (see `db.audit.append_events`), so every event up to the
    head visible now is committed: a subscriber starting "live" resumes from here.
    """
    row = await sql.fetchrow(
        "SELECT coalesce(max(seq), 0) AS seq FROM audit_event WHERE tenant_id = $1", tenant_id
    )
    return int(row["seq"]) if row else 0
