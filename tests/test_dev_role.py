"""`signoff dev` connects as production does: as a login role in `signoff_app` that row-level
security binds, created on the owner's database (tests/test_quickstart.py runs the command)."""

from __future__ import annotations

import asyncpg

from signoff.db import roles
from signoff.services import tenants
from signoff.services.context import ServiceContext


async def test_the_dev_login_role_is_bound_by_row_level_security(
    owner_database_url, tenant, settings
):
    await tenants.create_tenant(ServiceContext(settings=settings), tenant, "t", by="test")
    url = await roles.app_login(owner_database_url, "signoff_dev")
    # created once, found the next time
    assert await roles.app_login(owner_database_url, "signoff_dev") == url
    conn = await asyncpg.connect(url)
    try:
        me = await conn.fetchrow(
            """SELECT current_user AS name, r.rolsuper, r.rolbypassrls,
                pg_has_role('signoff_app', 'MEMBER') AS member
            FROM pg_roles r WHERE r.rolname = current_user"""
        )
        assert (me["name"], me["rolsuper"], me["rolbypassrls"], me["member"]) == (
            "signoff_dev",
            False,
            False,
            True,
        )
        # the tenant's first audit event is there, but only a transaction that declares the
        # tenant sees it
        count = "SELECT count(*) FROM audit_event WHERE tenant_id = $1"
        assert await conn.fetchval(count, tenant) == 0
        async with conn.transaction():
            await conn.execute("SELECT set_config('signoff.tenant', $1, true)", tenant)
            assert await conn.fetchval(count, tenant) >= 1
    finally:
        await conn.close()
