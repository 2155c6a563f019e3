"""Tenants: created by an administrator (or, where a setting allows, on first use)."""

from __future__ import annotations

from typing import Any

from signoff.db import sql


async def tenant_exists(tenant_id: str) -> bool:
    """Whether the tenant exists (seen through the transaction's scope)."""
    return await sql.fetchrow("SELECT 1 FROM tenant WHERE id = $1", tenant_id) is not None


async def create_tenant(tenant_id: str, name: str) -> bool:
    """Create the tenant; False when it existed already (then nothing changes)."""
    rows = await sql.fetch(
        "INSERT INTO tenant (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id",
        tenant_id,
        name,
    )
    return bool(rows)


async def list_tenants() -> list[dict[str, Any]]:
    """Every tenant the scope shows: id, name, created_at, oldest first."""
    rows = await sql.fetch("SELECT id, name, created_at FROM tenant ORDER BY created_at, id")
    return [dict(r) for r in rows]


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
