"""The sequencer: a change stages its events with its COMMIT, and they are numbered after it.

What must always hold, whatever runs at once:
- only numbered events are in the trail, numbered 1, 2, 3 … without a hole, and a reader that
  resumes "after N" never misses one and never sees one twice;
- every staged event of a committed transaction is numbered exactly once, however many
  sequencers (processes) run at the same time, beside transactions that number their own
  events before their commit; a rolled-back or still open transaction's
  events never are;
- a transaction's events are consecutive and in the order recorded, and a transaction that
  committed before another began is numbered before it;
- the hash chain verifies;
- a unit of work returns only once its events are numbered (by a sequencing its COMMIT's
  message carries, or by the run after the one in flight in its process);
- events left staged by a crash between a commit and its sequencing are numbered by the next
  sequencing of their tenant or by the worker's sweep.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import scope as tenant_scope
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.actors import Actor, Principal
from signoff.services import sequencing
from signoff.services.uow import unit_of_work
from tests.audit.test_concurrent_appends import read_until_done

NOW = datetime(2026, 12, 10, 21, 0, tzinfo=UTC)
WRITERS = 8
TRANSACTIONS = 6
SEQUENCERS = 3


def events_of(marker: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "action": "test.staged",
            "actor_id": "u",
            "occurred_at": NOW,
            "data": {"m": marker, "i": i},
        }
        for i in range(count)
    ]


async def commit_staged(tenant: str, events: list[dict[str, Any]]) -> None:
    """Stage `events` with the COMMIT and sequence nothing: a process that crashed right after
    its commit."""
    with tenant_scope.tenant(tenant):
        async with ENGINE.transaction() as transaction:
            statement, _ = audit_repo.append_statement(tenant, events)
            await transaction.commit_with(statement)


async def numbered(tenant: str) -> list[dict[str, Any]]:
    return await audit_repo.events_after(tenant, 0, 100_000)


async def pending(tenant: str) -> list[dict[str, Any]]:
    rows = await sql.fetch(
        "SELECT * FROM audit_pending WHERE tenant_id = $1 ORDER BY batch, n", tenant
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


def markers(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["data"]["m"], e["data"]["i"]) for e in events]


async def test_writers_and_several_sequencers_number_every_committed_event_once(
    tenant, services, caplog
):
    await ensure_tenant(tenant)
    done = asyncio.Event()
    rng = random.Random(7)

    async def writer(w: int) -> None:
        for k in range(TRANSACTIONS):
            count = 1 + (w + k) % 3
            marker = f"{w}:{k}"
            if w % 3 == 2:
                # numbered inside its transaction, the tenant's chain lock held to its commit
                async with ENGINE.transaction():
                    await audit_repo.append_events(tenant, events_of(marker, count))
                    await asyncio.sleep(rng.random() * 0.005)
            elif w % 3 == 1:
                # through the unit of work: it returns once its events are numbered
                async with unit_of_work(Actor(Principal(f"w{w}", tenant)), services) as uow:
                    for i in range(count):
                        uow.record("test.staged", data={"m": marker, "i": i})
                rows = await sql.fetch(
                    "SELECT seq FROM audit_event WHERE tenant_id = $1 AND data->>'m' = $2",
                    tenant,
                    marker,
                )
                assert len(rows) == count, marker
            else:
                await commit_staged(tenant, events_of(marker, count))
            await asyncio.sleep(rng.random() * 0.005)

    async def sequencer() -> None:
        # another process's sequencer: not coalesced with this one's
        while not done.is_set():
            with tenant_scope.tenant(tenant):
                await audit_repo.sequence_pending(tenant)
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_until_done(tenant, done))
    others = [asyncio.create_task(sequencer()) for _ in range(SEQUENCERS)]
    try:
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    finally:
        done.set()
    await asyncio.gather(*others)
    await sequencing.number_events(tenant)
    seen, _polls = await reader

    events = await numbered(tenant)
    assert await pending(tenant) == []
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert seen == [e["seq"] for e in events][: len(seen)]
    expected = Counter(
        (f"{w}:{k}", i)
        for w in range(WRITERS)
        for k in range(TRANSACTIONS)
        for i in range(1 + (w + k) % 3)
    )
    assert Counter(markers(events)) == expected  # each exactly once
    by_transaction: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_transaction.setdefault(event["data"]["m"], []).append(event)
    for group in by_transaction.values():
        assert [e["data"]["i"] for e in group] == list(range(len(group)))
        assert [e["seq"] for e in group] == list(range(group[0]["seq"], group[-1]["seq"] + 1))
    for w in range(WRITERS):
        firsts = [by_transaction[f"{w}:{k}"][0]["seq"] for k in range(TRANSACTIONS)]
        assert firsts == sorted(firsts), w  # one writer's transactions in commit order
    assert await audit_repo.verify_chain(tenant) is None
    # no sequencing failed and was made good by a later one
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


async def test_events_left_staged_by_a_crash_are_numbered_by_the_sweep(tenant, services):
    other = f"{tenant}-b"
    for t in (tenant, other):
        await ensure_tenant(t)
        await commit_staged(t, events_of("lost", 2))
        assert await numbered(t) == []
        assert markers(await pending(t)) == [("lost", 0), ("lost", 1)]
    swept = await sequencing.sweep_pending()
    assert swept[tenant] == swept[other] == 1
    for t in (tenant, other):
        assert markers(await numbered(t)) == [("lost", 0), ("lost", 1)]
        assert await pending(t) == []
        assert await audit_repo.verify_chain(t) is None
    assert tenant not in await sequencing.sweep_pending()


async def test_the_next_commit_numbers_what_a_crash_left_before_its_own(tenant, services):
    await ensure_tenant(tenant)
    await commit_staged(tenant, events_of("lost", 1))
    async with unit_of_work(Actor(Principal("ann", tenant)), services) as uow:
        uow.record("test.staged", data={"m": "next", "i": 0})
    assert markers(await numbered(tenant)) == [("lost", 0), ("next", 0)]
    # and so does a transaction that numbers its own events before its commit
    await commit_staged(tenant, events_of("lost-again", 1))
    async with ENGINE.transaction():
        await audit_repo.append_events(tenant, events_of("inside", 1))
    assert markers(await numbered(tenant))[2:] == [("lost-again", 0), ("inside", 0)]
    assert await audit_repo.verify_chain(tenant) is None


async def test_a_failed_sequencing_loses_nothing(tenant, services, monkeypatch):
    await ensure_tenant(tenant)

    async def broken(tenant_id: str) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(audit_repo, "sequence_pending", broken)
    # another commit's message carries the tenant's sequencing: this one waits for the next
    with sequencing.SEQUENCER.in_commit(tenant) as carried:
        assert carried
        change = asyncio.create_task(write_one(tenant, services, "kept"))
        await wait_for(lambda: pending_markers(tenant), lambda found: found == [("kept", 0)])
        assert not change.done()
    await change
    monkeypatch.undo()
    assert await numbered(tenant) == []
    assert markers(await pending(tenant)) == [("kept", 0)]
    await sequencing.number_events(tenant)
    assert markers(await numbered(tenant)) == [("kept", 0)]


async def test_a_failed_sequencing_carried_by_the_commit_loses_nothing(
    tenant, services, monkeypatch
):
    await ensure_tenant(tenant)
    carried = audit_repo.sequence_after_commit_statement
    channel = audit_repo.literal(audit_repo.REALTIME_CHANNEL)
    # the database refuses its notification (an empty channel): the numbering is undone
    monkeypatch.setattr(
        audit_repo,
        "sequence_after_commit_statement",
        lambda tenant_id: carried(tenant_id).replace(channel, "NULL"),
    )
    await write_one(tenant, services, "kept")  # the change commits all the same
    monkeypatch.undo()
    assert await numbered(tenant) == []
    assert markers(await pending(tenant)) == [("kept", 0)]
    await write_one(tenant, services, "next")
    assert markers(await numbered(tenant)) == [("kept", 0), ("next", 0)]
    assert await audit_repo.verify_chain(tenant) is None


async def test_a_commit_carries_its_sequencing_unless_one_is_in_flight(
    tenant, services, statements
):
    await ensure_tenant(tenant)
    with statements:
        await write_one(tenant, services, "alone")
    # one round trip stages, commits and numbers: nothing is sent after it
    [message] = statements.matching("audit_stage(")
    assert statements.statements[-1] == message
    staged, numbering = message.split("COMMIT", 1)
    assert "audit_sequence_after_commit(" in numbering and numbering.strip().endswith("COMMIT")
    assert markers(await numbered(tenant)) == [("alone", 0)]
    with statements:
        with sequencing.SEQUENCER.in_commit(tenant) as carried:
            assert carried
            change = asyncio.create_task(write_one(tenant, services, "behind"))
            await wait_for(lambda: pending_markers(tenant), lambda found: found == [("behind", 0)])
            assert not change.done()  # it waits for the run after the one in flight
        await change
    [message] = statements.matching("audit_stage(")
    assert "audit_sequence" not in message
    assert len(statements.matching("SELECT audit_sequence(")) == 1
    assert markers(await numbered(tenant)) == [("alone", 0), ("behind", 0)]
    assert await audit_repo.verify_chain(tenant) is None


async def write_one(tenant: str, services: Any, marker: str) -> None:
    async with unit_of_work(Actor(Principal("ann", tenant)), services) as uow:
        uow.record("test.staged", data={"m": marker, "i": 0})


async def pending_markers(tenant: str) -> list[tuple[str, int]]:
    return markers(await pending(tenant))


async def wait_for(read: Any, done: Any, timeout: float = 30.0) -> None:
    """Poll `read()` until `done(result)`; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not done(await read()):
            await asyncio.sleep(0.01)


async def test_concurrent_callers_in_one_process_share_sequencings(tenant, services, statements):
    await ensure_tenant(tenant)
    for n in range(20):
        await commit_staged(tenant, events_of(f"c{n}", 1))
    with statements:
        await asyncio.gather(*(sequencing.number_events(tenant) for _ in range(20)))
    runs = statements.matching("audit_sequence(")
    assert 1 <= len(runs) <= 2  # one in flight, at most one queued behind it
    assert len(await numbered(tenant)) == 20


# A schedule of operations on one tenant, run in order: staging commits, transactions left
# open over the following operations, in-transaction appends, sequencings. The model says
# what must be numbered after each step and in which order.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(1, 3)),
        st.tuples(st.just("open"), st.integers(1, 3)),
        st.tuples(st.just("close"), st.booleans()),
        st.tuples(st.just("append"), st.integers(1, 2)),
        st.tuples(st.just("sequence"), st.just(0)),
    ),
    max_size=14,
)


class Open:
    """A staging transaction held open in a task of its own until told to commit or not."""

    def __init__(self, tenant: str, events: list[dict[str, Any]]) -> None:
        self.staged = asyncio.Event()
        self.decision: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(tenant, events))

    async def _run(self, tenant: str, events: list[dict[str, Any]]) -> None:
        with tenant_scope.tenant(tenant):
            async with ENGINE.transaction() as transaction:
                statement, _ = audit_repo.append_statement(tenant, events)
                await sql.execute(statement)
                self.staged.set()
                if await self.decision:
                    await transaction.commit()
                else:
                    await transaction.rollback()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
async def test_any_schedule_numbers_exactly_the_committed_events_in_staging_order(
    services, operations
):
    tenant = f"s{uuid.uuid4().hex[:12]}"
    await ensure_tenant(tenant)
    batches: list[tuple[list[tuple[str, int]], str]] = []  # staged, in staging order: state
    opened: list[tuple[Open, int]] = []
    expected: list[tuple[str, int]] = []

    def number_committed() -> None:
        for index, (marks, state) in enumerate(batches):
            if state == "committed":
                expected.extend(marks)
                batches[index] = (marks, "numbered")

    try:
        for n, (kind, arg) in enumerate(operations):
            marker = f"op{n}"
            if kind == "commit":
                await commit_staged(tenant, events_of(marker, arg))
                batches.append(([(marker, i) for i in range(arg)], "committed"))
            elif kind == "open":
                held = Open(tenant, events_of(marker, arg))
                await held.staged.wait()
                batches.append(([(marker, i) for i in range(arg)], "open"))
                opened.append((held, len(batches) - 1))
            elif kind == "close" and opened:
                held, index = opened.pop(0)
                held.decision.set_result(arg)
                await held.task
                batches[index] = (batches[index][0], "committed" if arg else "rolled back")
            elif kind == "append":
                async with ENGINE.transaction():
                    await audit_repo.append_events(tenant, events_of(marker, arg))
                number_committed()
                expected.extend((marker, i) for i in range(arg))
            elif kind == "sequence":
                with tenant_scope.tenant(tenant):
                    await audit_repo.sequence_pending(tenant)
                number_committed()
            events = await numbered(tenant)
            assert markers(events) == expected
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            waiting = [m for marks, state in batches if state == "committed" for m in marks]
            assert markers(await pending(tenant)) == waiting  # the uncommitted are not seen
    finally:
        for held, _ in opened:
            held.decision.set_result(False)
            await held.task
    await sequencing.number_events(tenant)
    number_committed()
    assert markers(await numbered(tenant)) == expected
    assert await audit_repo.verify_chain(tenant) is None
