"""What a change reads first comes in one statement, and its writes go in one more; neither
may cost the freshness or the all-or-nothing of separate statements."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signoff.db import items as items_repo
from signoff.db import permissions as permission_repo
from signoff.db import scope as tenant_scope
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.domain.actors import Actor, Principal
from signoff.domain.permissions import Grant, Permission
from signoff.services import items as item_services
from tests.conftest import wait_for

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"}


async def submit(services: Any, tenant: str) -> item_services.ItemView:
    return await item_services.submit_item(
        Actor(Principal("dave", tenant)),
        services,
        item_services.SubmitItemInput(template_key="change-approval", title="x", payload=PAYLOAD),
    )


async def waiting_for_the_lock() -> bool:
    rows = await sql.fetch(
        """SELECT pid FROM pg_stat_activity WHERE datname = current_database()
        AND wait_event_type = 'Lock' AND query LIKE '%snapshot_steps%'"""
    )
    return bool(rows)


async def test_a_change_that_waited_for_the_lock_reads_the_steps_the_holder_left(
    tenant, services, demo_templates
):
    view = await submit(services, tenant)
    step = view.steps[0]
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        with tenant_scope.tenant(tenant):
            async with ENGINE.transaction():
                basis = await items_repo.lock_for_change(tenant, item_id=view.id)
                assert basis is not None
                await sql.execute(
                    "UPDATE step SET state = 'approved', version = version + 1 WHERE id = $1",
                    step.id,
                )
                await sql.execute(
                    "UPDATE workflow_item SET version = version + 1 WHERE id = $1", view.id
                )
                holding.set()
                await release.wait()

    async def waiter() -> items_repo.ChangeBasis | None:
        with tenant_scope.tenant(tenant):
            async with ENGINE.transaction():
                return await items_repo.lock_for_change(tenant, step_id=step.id)

    held = asyncio.create_task(holder())
    await holding.wait()
    waiting = asyncio.create_task(waiter())
    # the waiter's statement (and its snapshot) began before the holder commits
    await wait_for(waiting_for_the_lock, timeout=30)
    release.set()
    await held
    basis = await waiting
    assert basis is not None
    assert basis.item.version == view.item.version + 1
    # its snapshot still held the step active; what it returns is what was committed
    assert [s.state.value for s in basis.steps] == ["approved"]
    assert basis.steps[0].version == step.version + 1


async def test_a_change_reads_its_item_steps_calendar_and_grants_in_one_statement(
    tenant, services, demo_templates, statements
):
    view = await submit(services, tenant)
    grants = [
        Grant(Permission.EXECUTE, frozenset({"ops"}), "change-approval"),
        Grant(Permission.DECIDE, frozenset({"change-approver", "@requester"})),
    ]
    with tenant_scope.tenant(tenant):
        for grant in grants:
            await permission_repo.put_grant(tenant, grant, "admin", view.item.created_at)
    with tenant_scope.tenant(tenant), statements:
        async with ENGINE.transaction():
            basis = await items_repo.lock_for_change(tenant, step_id=view.steps[0].id)
    assert basis is not None
    assert basis.item == view.item
    assert basis.steps == view.steps
    with tenant_scope.tenant(tenant):
        assert basis.grants == await permission_repo.grants_of(tenant)
    assert set(basis.grants) == set(grants)
    begin, read, commit = statements.statements
    assert begin.startswith("BEGIN;") and commit == "COMMIT"
    assert read.endswith("FOR UPDATE OF i")


def test_writes_together_number_their_arguments_in_turn():
    first = sql.Write("UPDATE a SET x = $2 WHERE id = $1", (1, "x"))
    second = sql.Write("UPDATE b SET y = $1", ("y",))
    combined = sql.together([first, second])
    assert combined.text == (
        "WITH w0 AS (UPDATE a SET x = $2 WHERE id = $1), w1 AS (UPDATE b SET y = $3) SELECT"
    )
    assert combined.args == (1, "x", "y")
    assert sql.together([first]) is first


@pytest.mark.parametrize(
    ("text", "args"),
    [("UPDATE a SET x = $1", ()), ("UPDATE a SET x = $1", (1, 2)), ("UPDATE a SET x = $2", (1,))],
)
def test_a_write_uses_exactly_its_arguments(text, args):
    with pytest.raises(ValueError):
        sql.Write(text, args)


async def test_writes_made_together_all_happen_or_none(owner_transaction):
    async with owner_transaction() as conn:
        await conn.execute("CREATE TEMP TABLE w_a (id int PRIMARY KEY, x text)")
        await conn.execute("CREATE TEMP TABLE w_b (id int PRIMARY KEY, y text)")
        await conn.execute("INSERT INTO w_a VALUES (1, 'old'), (2, 'old')")
        update = sql.Write("UPDATE w_a SET x = $2 WHERE id = $1", (1, "new"))
        insert = sql.Write("INSERT INTO w_b VALUES ($1, $2)", (7, "seven"))
        combined = sql.together([update, insert])
        await conn.execute(combined.text, *combined.args)
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM w_a ORDER BY id")] == [
            (1, "new"),
            (2, "old"),
        ]
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM w_b")] == [(7, "seven")]
        clash = sql.together(
            [
                sql.Write("UPDATE w_a SET x = $1", ("lost",)),
                sql.Write("INSERT INTO w_b VALUES ($1, $2)", (7, "again")),
            ]
        )
        with pytest.raises(Exception, match="duplicate key"):
            async with conn.transaction():
                await conn.execute(clash.text, *clash.args)
        assert {r["x"] for r in await conn.fetch("SELECT x FROM w_a")} == {"new", "old"}
