"""Tenants: created on first use."""

from __future__ import annotations

from signoff.db import sql


async def ensure_tenant(tenant_id: str) -> None:
    """Create the tenant unless it exists."""
    await sql.execute(
        "INSERT INTO tenant (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING", tenant_id
    )
