"""Reading one item or one step touches that item's rows, not its tenant's: every statement of
those reads, run as the application's role (row-level security on), in a custom plan and in the
generic plan a prepared statement settles on, reaches the big tables through an index and
discards almost nothing it read. A statement that ranges over a tenant's rows, or over the
whole table because a qualifier cannot be an index condition under the policy, fails here
whatever the planner's estimates, since the test counts the rows the executor actually read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest

from signoff.db import items as items_repo
from signoff.db import scope as tenant_scope
from signoff.db import sql
from signoff.db import timers as timer_repo
from signoff.db.engine import ENGINE
from tests.conftest import bulk_tenant

ITEMS = 3000
# tables that grow with a tenant's history
BIG = {"workflow_item", "step", "decision", "timer", "inbox_entry", "audit_event"}
# rows a read of one item may look at and discard (its own other steps, decisions, timers)
DISCARDED_AT_MOST = 20


@pytest.fixture(scope="module")
async def crowded(database_url: str, owner_database_url: str) -> AsyncIterator[dict[str, Any]]:
    """A tenant of 3,000 items, each with a step, two decisions and three timers (armed,
    fired, cancelled), with the planner's statistics; yields its ids and one item's."""
    tenant, template = await bulk_tenant("bounded")
    await sql.execute(
        """INSERT INTO workflow_item (tenant_id, template_id, kind, title, state, requester_id)
        SELECT $1, $2, 'approval', 'item ' || n, 'pending', 'dave'
        FROM generate_series(1, $3) AS n""",
        tenant,
        template,
        ITEMS,
    )
    await sql.execute(
        """INSERT INTO step (tenant_id, item_id, key, name, kind, position, state, assignees)
        SELECT tenant_id, id, 'review', 'Review', 'approval', 0, 'active',
            '{"roles": ["approver"]}'
        FROM workflow_item WHERE tenant_id = $1""",
        tenant,
    )
    await sql.execute(
        """INSERT INTO decision (tenant_id, item_id, step_id, revision, actor_id, outcome)
        SELECT s.tenant_id, s.item_id, s.id, 1, who, 'approve'
        FROM step s, unnest(ARRAY['bob', 'carol']) AS who WHERE s.tenant_id = $1""",
        tenant,
    )
    await sql.execute(
        """INSERT INTO timer (tenant_id, item_id, step_id, kind, due_at, token, status)
        SELECT s.tenant_id, s.item_id, s.id, 'reminder', now() + interval '1 day',
            md5(s.id::text || status), status
        FROM step s, unnest(ARRAY['armed', 'fired', 'cancelled']) AS status
        WHERE s.tenant_id = $1""",
        tenant,
    )
    owner = await asyncpg.connect(owner_database_url)
    try:
        await owner.execute("ANALYZE workflow_item, step, decision, timer, inbox_entry")
    finally:
        await owner.close()
    one = await sql.fetchrow(
        """SELECT item_id, id FROM step WHERE tenant_id = $1 ORDER BY item_id
        OFFSET $2 LIMIT 1""",
        tenant,
        ITEMS // 2,
    )
    yield {"tenant": tenant, "item": one["item_id"], "step": one["id"], "url": database_url}


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """The parameterised statements asyncpg connections send inside, with their arguments."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    with monkeypatch.context() as patch:
        for name in ("fetch", "fetchrow", "fetchval", "execute"):
            original = getattr(asyncpg.Connection, name)

            def recorder(original: Any = original) -> Any:
                async def send(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                    if args:
                        sent.append((query, args))
                    return await original(self, query, *args, **kwargs)

                return send

            patch.setattr(asyncpg.Connection, name, recorder())
        yield sent


class Rollback(Exception):
    """Leaves a transaction without its writes."""


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if plan.get("Relation Name") in BIG:
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


async def explained(url: str, tenant: str, query: str, args: tuple[Any, ...], mode: str) -> Any:
    """The executed plan of `query` as the application's role in `tenant`, rolled back."""
    conn = await asyncpg.connect(url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(
                "SELECT set_config('signoff.tenant', $1, true), "
                "set_config('signoff.all_tenants', '', true)",
                tenant,
            )
            await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
            return json.loads(rows[0][0])[0]["Plan"]
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


READS: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
    "the change's read, by item":
        lambda c: items_repo.lock_for_change(c["tenant"], item_id=c["item"]),
    "the change's read, by step":
        lambda c: items_repo.lock_for_change(c["tenant"], step_id=c["step"]),
    "an item's steps": lambda c: items_repo.steps_of(c["tenant"], c["item"]),
    "an item's decisions": lambda c: items_repo.decisions_of_items(c["tenant"], [c["item"]]),
    "a step's decisions": lambda c: items_repo.decisions_of_step(c["step"]),
    "a step's timers": lambda c: timer_repo.for_step(c["step"]),
    "cancelling a step's timers": lambda c: timer_repo.cancel_for_steps([c["step"]]),
}  # fmt: skip


@pytest.mark.parametrize("read", sorted(READS))
async def test_a_read_of_one_item_touches_that_items_rows_only(crowded, monkeypatch, read):
    tenant = crowded["tenant"]
    with tenant_scope.tenant(tenant), recorded(monkeypatch) as sent:
        try:
            async with ENGINE.transaction():
                await READS[read](crowded)
                raise Rollback
        except Rollback:
            pass
    assert sent, "the read sent no statement"
    for query, args in sent:
        for mode in ("force_custom_plan", "force_generic_plan"):
            plan = await explained(crowded["url"], tenant, query, args, mode)
            big = list(scans(plan))
            assert big, query
            for node in big:
                where = (read, mode, node["Relation Name"], node["Node Type"])
                assert node["Node Type"] != "Seq Scan", where
                discarded = node.get("Rows Removed by Filter", 0) + node.get(
                    "Rows Removed by Index Recheck", 0
                )
                assert discarded <= DISCARDED_AT_MOST, (*where, discarded)
                assert node["Actual Rows"] * node["Actual Loops"] <= DISCARDED_AT_MOST, where
