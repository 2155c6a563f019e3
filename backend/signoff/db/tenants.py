"""Tenants: created on first use."""

from __future__ import annotations

from signoff.db import sql


async def ensure_tenant(tenant_id: str) -> None:
    """Create the tenant unless it exists."""
    await sql.execute(
        "INSERT INTO tenant (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING", tenant_id
    )


async def bind_transaction(tenant_id: str) -> None:
    """Bind the open transaction, begun without a scope, to `tenant_id`'s rows."""
    await sql.execute(
        "SELECT set_config('signoff.tenant', $1, true),"
        " set_config('signoff.all_tenants', '', true)",
        tenant_id,
    )
