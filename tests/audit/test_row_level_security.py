"""Tenant isolation in the database: row-level security binds the application's role, whatever
SQL it sends.

The checks go around the repositories: raw SQL on a connection of the application's login role
(a member of `signoff_app`), with the tenant set as `signoff.db.engine` sets it at BEGIN.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from signoff.db import feed, roles, scope, sql
from signoff.db import items as items_repo
from signoff.db.engine import ENGINE
from signoff.db.scope import Scope
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.services.uow import unit_of_work
from tests.conftest import DEMO_TEMPLATES, actor
from tests.services.test_actions import World

# Tables whose rows belong to a tenant without a `tenant_id` column of their own.
ISOLATED_OTHERWISE = {"tenant", "notification_attempt"}


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'
            AND t.table_type = 'BASE TABLE'
        ORDER BY 1"""
    )
    return [r["table_name"] for r in rows]


@pytest.fixture
async def as_app(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection of the application's login role (the suite's own)."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def owner(owner_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection of the role that ran the migrations."""
    conn = await asyncpg.connect(owner_database_url)
    yield conn
    await conn.close()


async def in_scope(conn: asyncpg.Connection, scope: Scope | None, query: str, *args: Any) -> Any:
    """`query` in a transaction that declares `scope` as the engine does (then rolled back)."""
    await conn.execute(scope.begin_statement() if scope else "BEGIN")
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.execute("ROLLBACK")


async def two_tenants(services: ServiceContext, first: str) -> tuple[str, str]:
    """Templates, an item with its steps, timers and audit events in two tenants."""
    second = first + "b"
    for tenant in (first, second):
        await load_templates(actor(tenant, "admin", "admin"), services, DEMO_TEMPLATES)
        await World(tenant, services).submit()
    return first, second


async def test_every_tenant_table_has_row_level_security_enabled_and_forced(owner):
    tables = await tenant_tables(owner)
    assert "workflow_item" in tables and "audit_event" in tables
    rows = await owner.fetch(
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
            EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public'
                AND p.tablename = c.relname AND p.policyname = 'tenant_isolation') AS policy
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])""",
        [*tables, *ISOLATED_OTHERWISE],
    )
    state = {
        r["relname"]: (r["relrowsecurity"], r["relforcerowsecurity"], r["policy"]) for r in rows
    }
    assert set(state) == {*tables, *ISOLATED_OTHERWISE}
    unprotected = {t: s for t, s in state.items() if s != (True, True, True)}
    assert unprotected == {}, (
        "tables with tenant rows but without enabled+forced row-level security and the "
        f"tenant_isolation policy (call signoff_isolate_tenant_tables() in the migration "
        f"that adds them): {unprotected}"
    )


async def test_the_application_role_can_bypass_nothing(as_app, owner):
    role = await as_app.fetchrow(
        """SELECT r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user"""
    )
    assert role is not None and not role["rolsuper"] and not role["rolbypassrls"]
    inherited = await as_app.fetchval(
        "SELECT bool_or(rolbypassrls OR rolsuper) FROM pg_roles WHERE pg_has_role(oid, 'MEMBER')"
    )
    assert inherited is False
    owned = await as_app.fetchval(
        """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND pg_has_role(c.relowner, 'MEMBER')"""
    )
    assert owned == 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute("ALTER TABLE workflow_item DISABLE ROW LEVEL SECURITY")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute("DROP POLICY tenant_isolation ON workflow_item")
    # row_security = off makes a query that policies would filter fail instead
    await as_app.execute("SET row_security = off")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.fetch("SELECT id FROM workflow_item")
    await as_app.execute("RESET row_security")


async def test_raw_sql_as_the_application_sees_only_its_tenant(as_app, owner, tenant, services):
    mine, theirs = await two_tenants(services, tenant)
    scope = Scope(tenant=mine)
    seen_rows = 0
    for table in await tenant_tables(owner):
        everyone = await owner.fetch(
            f"SELECT tenant_id, count(*) AS n FROM {table} "  # noqa: S608 (table names from the catalog)
            "WHERE tenant_id = ANY($1::text[]) GROUP BY 1",
            [mine, theirs],
        )
        expected = {r["tenant_id"]: r["n"] for r in everyone}.get(mine, 0)
        # no WHERE clause at all: the policy alone decides
        seen = await in_scope(as_app, scope, f"SELECT tenant_id FROM {table}")  # noqa: S608
        assert {r["tenant_id"] for r in seen} <= {mine}, table
        assert len(seen) == expected, table
        seen_rows += len(seen)
        assert await in_scope(as_app, None, f"SELECT 1 FROM {table}") == [], table  # noqa: S608
    assert seen_rows > 0
    tenants = await in_scope(as_app, scope, "SELECT id FROM tenant")
    assert [r["id"] for r in tenants] == [mine]
    attempts = await in_scope(
        as_app,
        scope,
        """SELECT count(*) AS n FROM notification_attempt a
        WHERE NOT EXISTS (SELECT 1 FROM notification_delivery d WHERE d.id = a.delivery_id)""",
    )
    assert attempts[0]["n"] == 0


async def test_the_application_cannot_write_another_tenants_rows(as_app, tenant, services):
    mine, theirs = await two_tenants(services, tenant)
    scope = Scope(tenant=mine)
    changed = await in_scope(
        as_app,
        scope,
        "UPDATE workflow_item SET title = 'x' WHERE tenant_id = $1 RETURNING id",
        theirs,
    )
    assert changed == []
    deleted = await in_scope(
        as_app, scope, "DELETE FROM idempotency_key WHERE tenant_id = $1 RETURNING key", theirs
    )
    assert deleted == []
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await in_scope(
            as_app,
            scope,
            "UPDATE workflow_item SET tenant_id = $1 WHERE tenant_id = $2 RETURNING 1",
            theirs,
            mine,
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await in_scope(
            as_app,
            scope,
            "INSERT INTO tenant (id, name) VALUES ($1, $1) RETURNING id",
            theirs + "x",
        )


async def test_the_all_tenants_scope_sees_every_tenant(as_app, tenant, services):
    mine, theirs = await two_tenants(services, tenant)
    rows = await in_scope(
        as_app,
        Scope(all_tenants=True),
        "SELECT DISTINCT tenant_id FROM workflow_item WHERE tenant_id = ANY($1::text[])",
        [mine, theirs],
    )
    assert {r["tenant_id"] for r in rows} == {mine, theirs}


def test_a_scope_refuses_what_is_not_a_tenant_id():
    for bad in ("", "a'b", "x" * 201, "a b", "é", "a\x00"):
        with pytest.raises(ValueError), scope.tenant(bad):
            pass
    for bad in ("a'b", "x');DROP TABLE tenant;--"):
        with pytest.raises(ValueError):
            Scope(tenant=bad).begin_statement()


async def test_the_repositories_see_only_the_scopes_tenant(tenant, services):
    mine, theirs = await two_tenants(services, tenant)
    with scope.all_tenants():
        [their_item] = await items_repo.recent_items_of_template(theirs, "change-approval", 1)
    with scope.tenant(mine):
        # asked by id and by the other tenant's name, the repository finds nothing
        assert await items_repo.get_item(theirs, their_item.id) is None
        assert await items_repo.steps_of(theirs, their_item.id) == []
        assert await items_repo.recent_items_of_template(theirs, "change-approval", 5) == []
    with scope.tenant(theirs):
        assert await items_repo.get_item(theirs, their_item.id) is not None
    with scope.unbound():
        assert await items_repo.get_item(theirs, their_item.id) is None


async def test_a_snapshot_read_sees_only_the_scopes_tenant_read_only_and_repeatable(
    tenant, services
):
    """The inbox's and the item's reads (`feed.snapshot_read`) declare the scope with their
    BEGIN: one REPEATABLE READ, READ ONLY snapshot of the scope's tenant and no other."""
    mine, theirs = await two_tenants(services, tenant)
    query = "SELECT DISTINCT tenant_id FROM workflow_item WHERE tenant_id = ANY($1::text[])"
    seen: dict[str, object] = {}
    for name, bound in (
        ("mine", scope.tenant(mine)),
        ("theirs", scope.tenant(theirs)),
        ("none", scope.unbound()),
    ):
        with bound:
            async with feed.snapshot_read(mine):
                rows = await sql.fetch(query, [mine, theirs])
                mode = await sql.fetchrow(
                    "SELECT current_setting('transaction_isolation') AS isolation,"
                    " current_setting('transaction_read_only') AS read_only"
                )
            seen[name] = ({r["tenant_id"] for r in rows}, dict(mode or {}))
    snapshot = {"isolation": "repeatable read", "read_only": "on"}
    assert seen == {
        "mine": ({mine}, snapshot),
        "theirs": ({theirs}, snapshot),
        "none": (set(), snapshot),
    }


async def test_the_suite_itself_runs_as_a_role_row_security_binds():
    assert await roles.row_security_bypasses() == []


async def test_production_refuses_a_role_row_security_does_not_bind(
    settings, owner_transaction, caplog
):
    production = dataclasses.replace(settings, environment="production")
    await scopes.check_database_role(production)  # the suite's own role passes
    async with owner_transaction():
        reasons = await roles.row_security_bypasses()
        assert any("superuser" in r for r in reasons), reasons
        with pytest.raises(RuntimeError, match="row-level security does not bind"):
            await scopes.check_database_role(production)
        with caplog.at_level(logging.WARNING, logger="signoff.services"):
            await scopes.check_database_role(settings)  # development: a warning only
        assert "row-level security does not bind" in caplog.text


async def test_a_unit_of_work_never_widens_or_switches_its_transactions_tenant(tenant, services):
    mine, theirs = await two_tenants(services, tenant)
    with scope.tenant(mine):
        async with ENGINE.transaction():
            with pytest.raises(RuntimeError, match="cannot join"):
                async with unit_of_work(actor(theirs, "u"), services):
                    pass
    with scope.all_tenants():
        async with ENGINE.transaction():
            async with unit_of_work(actor(mine, "u"), services):
                pass
            # narrowed to its tenant for the rest of the transaction
            seen = await sql.fetch(
                "SELECT DISTINCT tenant_id FROM workflow_item WHERE tenant_id = ANY($1::text[])",
                [mine, theirs],
            )
            assert [r["tenant_id"] for r in seen] == [mine]
