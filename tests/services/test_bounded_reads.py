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
from signoff.domain.actors import Actor, Principal
from signoff.domain.events import VoteOutcome
from signoff.services.items import DecideStepInput, SubmitItemInput, decide_step, submit_item
from signoff.services.templates import load_templates
from signoff.services.uow import unit_of_work
from tests.conftest import DEMO_TEMPLATES, bulk_tenant

ITEMS = 3000
# tables that grow with a tenant's history
BIG = {"workflow_item", "step", "decision", "timer", "inbox_entry", "audit_event"}
# rows a read of one item may look at and discard (its own other steps, decisions, timers)
DISCARDED_AT_MOST = 20
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"}


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
        await owner.execute(
            "ANALYZE workflow_item, step, decision, timer, inbox_entry, audit_event"
        )
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


async def explained(url: str, tenant: str, query: str, args: tuple[Any, ...], generic: bool) -> Any:
    """The executed plan of `query` with `args` as the application's role in `tenant`, rolled
    back: its custom plan, or (`generic`) the generic plan a prepared statement may settle on.
    EXPLAIN with bound parameters plans them as constants (a custom plan, whatever
    `plan_cache_mode` says); only EXECUTE of a prepared statement can run the generic plan,
    so the arguments are passed to it as literals of the parameters' types."""
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
            if not generic:
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
                return json.loads(rows[0][0])[0]["Plan"]
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE bounded AS {query}")
            types = await conn.fetchval(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'bounded'"
            )
            literals = [
                await conn.fetchval(f"SELECT quote_nullable($1::{kind}::text) || '::{kind}'", arg)
                for kind, arg in zip(types, args, strict=True)
            ]
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) EXECUTE bounded({', '.join(literals)})"
            )
            plan = json.loads(rows[0][0])[0]["Plan"]
            # a generic plan leaves its parameters in the plan (a custom one would not)
            assert "$1" in json.dumps(plan) or not args, "not the generic plan"
            return plan
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
    await assert_bounded(crowded["url"], tenant, read, sent)


async def assert_bounded(
    url: str, tenant: str, what: str, sent: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """Every statement `sent`, in its custom and its generic plan, returns and discards at most
    `DISCARDED_AT_MOST` rows at each node on a big table (a sequential scan of one of the
    crowded tables discards thousands; on a table that is still small here, such as this
    run's audit events, it is what the planner should pick and passes)."""
    assert sent, "nothing was sent"
    for query, args in sent:
        for generic in (False, True):
            plan = await explained(url, tenant, query, args, generic)
            for node in scans(plan):
                mode = "generic" if generic else "custom"
                where = (what, mode, node["Relation Name"], node["Node Type"], query[:80])
                discarded = node.get("Rows Removed by Filter", 0) + node.get(
                    "Rows Removed by Index Recheck", 0
                )
                assert discarded <= DISCARDED_AT_MOST, (*where, discarded)
                assert node["Actual Rows"] * node["Actual Loops"] <= DISCARDED_AT_MOST, where


@pytest.mark.parametrize("outcome", [VoteOutcome.APPROVE, VoteOutcome.REJECT])
async def test_a_decision_touches_its_items_rows_only(crowded, services, monkeypatch, outcome):
    """The whole change, its read, its writes and its audit events, among 3,000 other items."""
    tenant = crowded["tenant"]
    await load_templates(Actor(Principal("admin", tenant, roles=frozenset({"admin"}))),
                         services, DEMO_TEMPLATES)  # fmt: skip
    view = await submit_item(
        Actor(Principal("alice", tenant)),
        services,
        SubmitItemInput(template_key="change-approval", title="x", payload=PAYLOAD),
    )
    bob = Actor(Principal("bob", tenant, roles=frozenset({"change-approver"})))
    with tenant_scope.tenant(tenant), recorded(monkeypatch) as sent:
        try:
            async with ENGINE.transaction():
                await decide_step(
                    bob, services, DecideStepInput(view.steps[0].id, outcome, reason="checked")
                )
                raise Rollback
        except Rollback:
            pass
    writes = [q for q, _ in sent if q.lstrip().startswith("WITH w0")]
    assert writes, "the change's writes were not among the statements"
    await assert_bounded(crowded["url"], tenant, f"decideStep {outcome}", sent)


async def plan_cache_mode() -> str:
    row = await sql.fetchrow("SELECT current_setting('plan_cache_mode') AS mode")
    assert row is not None
    return str(row["mode"])


async def test_a_unit_of_work_runs_generic_plans_and_leaves_nothing_behind(crowded, services):
    """Units of work plan their statements once per connection (`plan_cache_mode` set with
    their BEGIN); any other transaction, on the same pooled connections, plans as usual."""
    actor = Actor(Principal("dave", crowded["tenant"]))
    for _ in range(3):
        async with unit_of_work(actor, services):
            assert await plan_cache_mode() == "force_generic_plan"
        with tenant_scope.tenant(crowded["tenant"]):
            async with ENGINE.transaction():
                assert await plan_cache_mode() == "auto"
