"""Applying migrations: idempotent, and safe when several processes start at once."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.apps.migrations.commands.forwards import run_forwards

from signoff.db.engine import ENGINE

# Any constant works; it only has to be the same in every signoff process.
_MIGRATION_LOCK = 0x5160FF


def migrations_folder() -> Path:
    """The top-level `migrations/` folder of the source tree (or SIGNOFF_MIGRATIONS_DIR)."""
    override = os.environ.get("SIGNOFF_MIGRATIONS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "migrations"


def expected_migration_ids() -> list[str]:
    """The ids of every migration file, sorted, read without importing them."""
    ids = []
    for path in sorted(migrations_folder().glob("*.py")):
        for line in path.read_text().splitlines():
            if line.startswith("ID = "):
                ids.append(line.split("=", 1)[1].strip().strip("\"'"))
    return sorted(ids)


async def apply_migrations(database_url: str | None = None) -> str:
    """Apply every pending migration under an advisory lock; return piccolo's report.

    `database_url` names the role that owns the tables (the application's role may create
    nothing); by default the engine's own. The engine is pointed back afterwards.

    Every run ends by isolating every table with a `tenant_id` column (row-level security,
    the tenant policy, the application role's grants: `signoff_isolate_tenant_tables()`, an
    idempotent function of migration `2026-11-30T05`), so a table a later migration adds is
    isolated without its author remembering to.
    """
    saved, pool = ENGINE.config, ENGINE.pool
    if database_url:
        # piccolo's own statements (its migration table) would go through a running pool,
        # whose role may create nothing: every statement takes a connection of its own.
        ENGINE.config, ENGINE.pool = {"dsn": database_url}, None
    try:
        return await _apply(ENGINE.config["dsn"])
    finally:
        ENGINE.config, ENGINE.pool = saved, pool


async def _apply(dsn: str) -> str:
    lock_conn = await asyncpg.connect(dsn)
    try:
        await lock_conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = await run_forwards(app_name="signoff")
        if not result.success:
            raise RuntimeError(f"migration failed: {result.message}\n{out.getvalue()}")
        if await lock_conn.fetchval(
            "SELECT to_regprocedure('signoff_isolate_tenant_tables()') IS NOT NULL"
        ):
            await lock_conn.execute("SELECT signoff_isolate_tenant_tables()")
        return out.getvalue()
    finally:
        await lock_conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await lock_conn.close()


async def run_sql_script(script: str) -> None:
    """Run a multi-statement SQL script (migrations' raw DDL) in the current transaction."""
    transaction = ENGINE.current_transaction.get()
    if transaction is not None:
        await transaction.connection.execute(script)
        return
    conn = await ENGINE.get_new_connection()
    try:
        async with conn.transaction():
            await conn.execute(script)
    finally:
        await conn.close()


def sql_migration(
    migration_id: str, description: str, forwards: str, backwards: str
) -> Callable[[], Awaitable[MigrationManager]]:
    """The `forwards` entry point of a migration that runs one SQL script each way."""

    async def make() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name="signoff", description=description
        )

        async def run() -> None:
            await run_sql_script(forwards)

        async def run_backwards() -> None:
            await run_sql_script(backwards)

        manager.add_raw(run)
        manager.add_raw_backwards(run_backwards)
        return manager

    return make


async def pending_migrations() -> list[str]:
    """Migration ids present in `migrations/` but not yet applied to the database."""
    applied: set[str] = set()
    exists = await ENGINE._run_in_new_connection(
        "SELECT to_regclass('public.migration') IS NOT NULL AS present"
    )
    if exists and exists[0]["present"]:
        rows = await ENGINE._run_in_new_connection(
            "SELECT name FROM migration WHERE app_name = 'signoff'"
        )
        applied = {row["name"] for row in rows}
    return [mid for mid in expected_migration_ids() if mid not in applied]
