"""Reading the tenant event feed (the audit trail) from a cursor: the head of the chain."""

from __future__ import annotations

from signoff.db import sql


async def tenant_head(tenant_id: str) -> int:
    """The last sequence number handed out in `tenant_id` (0 for a tenant not yet seen).

    Because the tenant row is locked until commit while events are numbered, every event up to
    the head that is visible now is committed: a subscriber starting "live" resumes from here.
    """
    row = await sql.fetchrow("SELECT audit_seq FROM tenant WHERE id = $1", tenant_id)
    return int(row["audit_seq"]) if row else 0
