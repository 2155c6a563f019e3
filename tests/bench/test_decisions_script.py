"""The decisions scenario's pgbench transaction and its SQL loader still fit the real tables.

The benchmark is not part of the test run, so a schema change could break its baseline or its
loader unnoticed; this runs the script's statements once, as pgbench would, in a transaction
that is rolled back, and checks what they wrote; and it checks that the loader's copies of a
submitted item are what a submission writes (steps, timers, inbox entries) and decide like one.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import asyncpg

from signoff.bench.scenarios.decisions import (
    APPROVER_ROLE,
    PGBENCH_SCRIPT,
    PGBENCH_SETUP,
    Stock,
    copied_id,
)
from signoff.domain.events import VoteOutcome
from signoff.domain.states import ItemState, StepState
from signoff.services.context import ServiceContext
from signoff.services.items import DecideStepInput, decide_step
from tests.conftest import actor

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
    conn = await asyncpg.connect(owner_database_url)
    try:
        [(item_id, step_id)] = await Stock(services, conn).open(tenant, 1)
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


# what a copy must reproduce of its prototype, row for row (ids aside)
SHAPE = {
    "step": "SELECT key, state, assignees, quorum, due_at FROM step WHERE item_id = $1::uuid "
    "ORDER BY key",
    "timer": "SELECT t.kind, t.level, t.due_at, t.status, s.key FROM timer t "
    "JOIN step s ON s.id = t.step_id WHERE t.item_id = $1::uuid ORDER BY 1, 2, 3",
    "inbox_entry": "SELECT principal, kind, item_state FROM inbox_entry WHERE item_id = $1::uuid "
    "ORDER BY 1, 2",
}


async def test_loader_copies_are_submitted_items_that_decide_alike(
    owner_database_url: str, services: ServiceContext, demo_templates: Any, tenant: str
) -> None:
    conn = await asyncpg.connect(owner_database_url)
    try:
        stock = Stock(services, conn)
        copies = await stock.open(tenant, 3) + await stock.open(tenant, 2)
        prototype, prototype_step = await stock._prototype(tenant)
        expected = {t: await conn.fetch(q, prototype) for t, q in SHAPE.items()}
        assert expected["timer"], "the prototype's step arms timers: the copy must too"
        assert expected["inbox_entry"], "the prototype is in an inbox: the copy must be too"
        assert len({item for item, _ in copies}) == 5
        for item, step in copies:
            assert step == str(copied_id(UUID(item), prototype_step))
            for table, query in SHAPE.items():
                assert await conn.fetch(query, item) == expected[table], table
        timer_ids = await conn.fetchval("SELECT count(DISTINCT id) FROM timer")
        assert timer_ids == await conn.fetchval("SELECT count(*) FROM timer")
    finally:
        await conn.close()
    approver = actor(tenant, "approver-1", APPROVER_ROLE)
    for item, step in copies:
        view = await decide_step(
            approver, services, DecideStepInput(step_id=UUID(step), outcome=VoteOutcome.APPROVE)
        )
        assert str(view.id) == item
        assert view.state == ItemState.APPROVED
        assert [s.state for s in view.steps] == [StepState.APPROVED]
