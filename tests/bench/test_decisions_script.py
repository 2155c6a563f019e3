"""The decisions scenario's pgbench transaction still fits the real tables.

The benchmark is not part of the test run, so a schema change could break its baseline
unnoticed; this runs the script's statements once, as pgbench would, in a transaction that
is rolled back, and checks what they wrote.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from signoff.bench.scenarios.decisions import PGBENCH_SCRIPT, PGBENCH_SETUP, submit_items
from signoff.services.context import ServiceContext

VARIABLE = re.compile(r"(?<!:):([a-z_]+)\b")


def _substitute(statement: str, variables: dict[str, Any]) -> str:
    def literal(match: re.Match[str]) -> str:
        value = str(variables[match.group(1)]).replace("'", "''")
        return f"'{value}'"

    return VARIABLE.sub(literal, statement)


async def _run_script(conn: asyncpg.Connection, variables: dict[str, Any]) -> None:
    """Each statement of the script in order; `\\gset` stores the last row's columns."""
    pending = ""
    for line in PGBENCH_SCRIPT.splitlines():
        if line.strip() == "\\gset":
            row = await conn.fetchrow(_substitute(pending, variables))
            assert row is not None, pending
            variables.update(dict(row))
            pending = ""
            continue
        pending += line + "\n"
        if line.rstrip().endswith(";"):
            statement = pending.strip()
            pending = ""
            if statement.upper() in ("BEGIN;", "END;"):
                continue  # the test's own transaction stands in for pgbench's
            await conn.execute(_substitute(statement, variables))
    assert not pending.strip(), pending


async def test_pgbench_transaction_writes_a_decision(
    owner_database_url: str, services: ServiceContext, demo_templates: Any, tenant: str
) -> None:
    [(item_id, step_id)] = await submit_items(services, tenant, 1, concurrency=1)
    conn = await asyncpg.connect(owner_database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(PGBENCH_SETUP)
            await conn.execute(
                "INSERT INTO bench_decision_target VALUES (5, $1, $2::uuid, $3::uuid)",
                tenant,
                item_id,
                step_id,
            )
            await _run_script(conn, {"base": 5, "targets": 1})
            decision = await conn.fetchrow(
                "SELECT outcome, actor_id FROM decision WHERE step_id = $1::uuid", step_id
            )
            state = await conn.fetchval("SELECT state FROM step WHERE id = $1::uuid", step_id)
            event = await conn.fetchrow(
                "SELECT action, seq, prev_hash FROM audit_event WHERE step_id = $1::uuid "
                "AND actor_id LIKE 'pgbench-%'",
                step_id,
            )
            before = await conn.fetchrow(
                "SELECT seq, hash FROM audit_event WHERE tenant_id = $1 AND seq = $2 - 1",
                tenant,
                event["seq"] if event else 0,
            )
        finally:
            await transaction.rollback()
        assert decision is not None and decision["outcome"] == "approve"
        assert decision["actor_id"].startswith("pgbench-")
        assert state == "approved"
        assert event is not None and event["action"] == "step.approved"
        # numbered and linked after the tenant's last event, as signoff's own appends are
        assert before is not None and event["prev_hash"] == before["hash"]
        left = await conn.fetchval("SELECT to_regclass('bench_decision_target') IS NOT NULL")
        assert left is False  # nothing of the benchmark stays in the test database
    finally:
        await conn.close()
