"""Migrations: applying them again is a no-op, and the piccolo tables match the real columns."""

from __future__ import annotations

import pytest

from signoff.db import sql
from signoff.db.migrate import apply_migrations, expected_migration_ids, pending_migrations
from signoff.db.retention_tables import RETENTION_TABLES
from signoff.db.tables import ALL_TABLES as CORE_TABLES

ALL_TABLES = (*CORE_TABLES, *RETENTION_TABLES)


async def applied_ids() -> list[str]:
    rows = await sql.fetch("SELECT name FROM migration WHERE app_name = 'signoff' ORDER BY name")
    return [r["name"] for r in rows]


async def test_every_migration_is_applied(database_url):
    assert expected_migration_ids(), "no migration files found"
    assert await pending_migrations() == []
    assert await applied_ids() == expected_migration_ids()


async def test_applying_again_is_a_no_op(database_url, owner_database_url):
    before = await applied_ids()
    await apply_migrations(owner_database_url)
    await apply_migrations(owner_database_url)
    assert await pending_migrations() == []
    assert await applied_ids() == before  # no migration recorded (or run) twice


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t._meta.tablename)
async def test_table_class_matches_database(database_url, table):
    rows = await sql.fetch(
        """SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1""",
        table._meta.tablename,
    )
    in_database = {r["column_name"] for r in rows}
    assert in_database, f"table {table._meta.tablename} does not exist"
    in_class = {c._meta.db_column_name for c in table._meta.columns}
    assert in_class == in_database, (
        f"{table.__name__}: only in the class {sorted(in_class - in_database)}, "
        f"only in the database {sorted(in_database - in_class)}"
    )


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t._meta.tablename)
async def test_table_nullability_matches_database(database_url, table):
    rows = await sql.fetch(
        """SELECT column_name, is_nullable = 'YES' AS nullable FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1""",
        table._meta.tablename,
    )
    in_database = {r["column_name"]: r["nullable"] for r in rows}
    mismatched = {
        c._meta.db_column_name: f"class null={c._meta.null}, database null={in_database[name]}"
        for c in table._meta.columns
        if (name := c._meta.db_column_name) in in_database and c._meta.null != in_database[name]
    }
    assert mismatched == {}, f"{table.__name__}: {mismatched}"
