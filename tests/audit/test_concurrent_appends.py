"""Concurrent writers in one tenant: numbers are gapless in commit order, so a reader resuming
"after N" never misses an event that commits late.

The writers stall between numbering their events and committing, the schedule that makes
plain sequences skip: a number handed out but not yet visible while a later one already is.
A reader polling meanwhile must never see a hole, and everything up to the head it read must
be visible.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

from signoff.db import audit as audit_repo
from signoff.db import feed
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.actors import Actor, Principal
from signoff.services.uow import unit_of_work

WRITERS = 10
TRANSACTIONS = 6
NOW = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)


async def stalled_append(tenant: str, writer: int, k: int, rng: random.Random) -> None:
    """Number a few events, then hold the transaction open a little before committing."""
    events = [
        {"action": "test.append", "actor_id": f"w{writer}", "data": {"w": writer, "k": k, "i": i}}
        for i in range(rng.randint(1, 3))
    ]
    async with ENGINE.transaction():
        await audit_repo.append_events(tenant, [{**e, "occurred_at": NOW} for e in events])
        await asyncio.sleep(rng.random() * 0.01)


async def through_unit_of_work(tenant: str, writer: int, k: int, services: Any) -> None:
    actor = Actor(Principal(f"w{writer}", tenant))
    async with unit_of_work(actor, services) as uow:
        for i in range(1 + (writer + k) % 3):
            uow.record("test.append", data={"w": writer, "k": k, "i": i})


async def write(tenant: str, services: Any, seed: int) -> None:
    async def writer(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        for k in range(TRANSACTIONS):
            if n % 2:
                await stalled_append(tenant, n, k, rng)
            else:
                await through_unit_of_work(tenant, n, k, services)

    await asyncio.gather(*(writer(n) for n in range(WRITERS)))


async def read_until_done(tenant: str, done: asyncio.Event) -> tuple[list[int], int]:
    """Poll like a resuming subscriber; return every seq seen and how many polls saw news."""
    cursor, seen, polls = 0, [], 0
    while True:
        finished = done.is_set()
        head = await feed.tenant_head(tenant)
        rows = await audit_repo.events_after(tenant, cursor, 10_000)
        seqs = [r["seq"] for r in rows]
        # No hole among what is visible, and nothing up to the head is still invisible.
        assert seqs == list(range(cursor + 1, cursor + 1 + len(seqs))), (cursor, seqs[:10])
        assert cursor + len(seqs) >= head
        if seqs:
            polls += 1
            seen += seqs
            cursor = seqs[-1]
        elif finished:
            return seen, polls
        await asyncio.sleep(0)


async def test_a_resuming_reader_never_misses_a_late_commit(tenant, services):
    other = f"{tenant}x"
    for t in (tenant, other):
        await ensure_tenant(t)
    done = asyncio.Event()
    reader = asyncio.create_task(read_until_done(tenant, done))
    try:
        await asyncio.gather(write(tenant, services, 1), write(other, services, 2))
    finally:
        done.set()
    seen, polls = await reader

    events = await audit_repo.events_after(tenant, 0, 10_000)
    assert seen == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert polls > 1, "the reader never overlapped the writers"
    # Each transaction's events are consecutive and in the order they were recorded.
    by_transaction: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in events:
        by_transaction.setdefault((event["data"]["w"], event["data"]["k"]), []).append(event)
    assert len(by_transaction) == WRITERS * TRANSACTIONS
    for group in by_transaction.values():
        assert [e["data"]["i"] for e in group] == list(range(len(group)))
        assert [e["seq"] for e in group] == list(range(group[0]["seq"], group[-1]["seq"] + 1))
    for t in (tenant, other):
        assert await audit_repo.verify_chain(t) is None
    others = await audit_repo.events_after(other, 0, 10_000)
    assert [e["seq"] for e in others] == list(range(1, WRITERS * TRANSACTIONS * 2 + 1))[
        : len(others)
    ]
    assert len(others) >= WRITERS * TRANSACTIONS


async def test_a_rolled_back_append_leaves_no_gap(tenant, services):
    await ensure_tenant(tenant)

    class Abort(Exception):
        pass

    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant, [{"action": "a", "actor_id": "u", "occurred_at": NOW}]
        )
    try:
        async with ENGINE.transaction():
            rows = await audit_repo.append_events(
                tenant, [{"action": "b", "actor_id": "u", "occurred_at": NOW}]
            )
            assert rows[0]["seq"] == 2
            raise Abort
    except Abort:
        pass
    async with ENGINE.transaction():
        [row] = await audit_repo.append_events(
            tenant, [{"action": "c", "actor_id": "u", "occurred_at": NOW}]
        )
    assert row["seq"] == 2
    assert [e["action"] for e in await audit_repo.events_after(tenant, 0, 10)] == ["a", "c"]
    assert await audit_repo.verify_chain(tenant) is None
