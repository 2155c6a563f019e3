"""Fan-out cost does not grow with subscribers: one reader per tenant per process, the rows an
event touches read once per batch for all subscribers, one result computed per distinct pushed
object and selection. (A subscriber that does not read: `test_slow_reader.py`.)"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from signoff.api.shared_results import SharingStats
from signoff.api.subscriptions import encode_cursor
from signoff.db import feed
from signoff.db.engine import ENGINE
from tests.conftest import wait_for
from tests.realtime.conftest import INBOX, TIMEOUT, Socket, submit, wait_subscribed

_INTROSPECTION = re.compile(r"pg_catalog|'jit'")
# Statements made while this is set are the writer's (the test's own changes), not fan-out.
_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("writing", default=False)


@pytest.fixture
def settings(settings: Any) -> Any:
    # No fallback polls during the test: every read the feed makes answers a notification.
    return dataclasses.replace(settings, realtime_poll_seconds=3600.0)


@contextlib.contextmanager
def fanout_statements(tenant: str) -> Iterator[list[str]]:
    """The statements about `tenant` sent to PostgreSQL through the process's pool while the
    block runs, except the writer's own (asyncpg's query loggers on every pooled connection;
    the pool is shared with whatever else runs in the process)."""
    statements: list[str] = []

    def log(record: Any) -> None:
        # asyncpg calls loggers with `call_soon`, which keeps the caller's context. Its own
        # type introspection (once per connection and type) is not fan-out work either.
        if (
            not _WRITING.get()
            and not _INTROSPECTION.search(record.query)
            and tenant in (record.args or ())
        ):
            statements.append(record.query)

    pool: Any = ENGINE.pool
    assert pool is not None
    holders = list(pool._holders)
    for holder in holders:
        if holder._con is None:  # connect every pooled connection so that all are watched
            pytest.fail("pool connection not open")
        holder._con.add_query_logger(log)
    try:
        yield statements
    finally:
        for holder in holders:
            if holder._con is not None:
                holder._con.remove_query_logger(log)


async def _write(services: Any, tenant: str, title: str) -> None:
    token = _WRITING.set(True)
    try:
        await submit(services, tenant, "change-approval", title)
    finally:
        _WRITING.reset(token)


@dataclasses.dataclass(frozen=True)
class Measured:
    statements: list[str]
    reads: int
    """Reads of the event feed by the tenant's reader."""
    batches: int
    """Batches it handed to the subscribers."""

    def count(self, table: str) -> int:
        return sum(1 for s in self.statements if re.search(rf"\bFROM {table}\b", s))


async def _measure(ws_url, hub, gql, services, tenant, subscribers: int, rounds: int) -> Measured:
    # Several principals (users, a group): the shared reads do not depend on who subscribes.
    tokens = [
        gql.token(f"u{n}", "change-approver", groups=("ops",) if n % 2 else ())
        for n in range(subscribers)
    ]
    sockets = [Socket(ws_url, token) for token in tokens]
    for socket in sockets:
        await socket.open()
        await socket.subscribe(INBOX)
    try:
        await wait_subscribed(hub, subscribers)
        # Warm up: the tenant's reader has started and every socket is live.
        await _write(services, tenant, "warm-up")
        for socket in sockets:
            assert (await socket.next())["inboxChanged"]["kind"] == "ENTERED"
        reads, batches = hub.feed_stats(tenant)
        with fanout_statements(tenant) as statements:
            for n in range(rounds):
                await _write(services, tenant, f"change {n}")
                # Every subscriber has it before the next change.
                for socket in sockets:
                    assert (await socket.next())["inboxChanged"]["kind"] == "ENTERED"
        assert hub.feed_count == 1
        reads_after, batches_after = hub.feed_stats(tenant)
        return Measured(statements, reads_after - reads, batches_after - batches)
    finally:
        for socket in sockets:
            await socket.close()
        await wait_for(lambda: hub.subscriber_count == 0 and hub.feed_count == 0, timeout=TIMEOUT)


async def test_database_work_per_event_does_not_grow_with_subscribers(
    ws_url, hub, gql, services, tenant, demo_templates
):
    rounds = 3
    pool: Any = ENGINE.pool
    # Open every pooled connection first, so that the loggers see all of them.
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    for connection in held:
        await pool.release(connection)

    one = await _measure(ws_url, hub, gql, services, tenant, 1, rounds)
    fifty = await _measure(ws_url, hub, gql, services, tenant, 50, rounds)
    for measured in (one, fifty):
        # The event feed is read by the tenant's reader only; the rows the events touch are
        # read at most once per batch, however many subscribers (of different principals)
        # it goes to. How a change's events split into batches depends on timing, the bound
        # does not.
        assert measured.count("audit_event") == measured.reads
        assert rounds <= measured.batches <= measured.reads
        for table in ("workflow_item", "step", "decision", "template", "permission_grant"):
            assert measured.count(table) <= measured.batches, (table, measured)
        # (four tables, the tenant's permission table and its redaction rules, each once per
        # batch)
        assert len(measured.statements) <= measured.reads + 6 * measured.batches
    assert one.count("workflow_item") > 0, "the measurement does not see the fan-out's reads"
    # The same kinds of statement, whether one subscriber or fifty.
    assert set(fifty.statements) == set(one.statements)


INBOX_CURSORS = """
subscription($after: String) {
  inboxChanged(after: $after) { ... on InboxChange { cursor kind } }
}"""


async def test_one_result_is_computed_per_event_and_selection_and_shared(
    ws_url, hub, gql, services, tenant, demo_templates
):
    start = await feed.tenant_head(tenant)
    await submit(services, tenant, "change-approval", "before")
    head = await feed.tenant_head(tenant)
    # Ten reviewers of one role with the same selection, half of them resuming from a cursor
    # (a variable of the subscription field only); one with another selection; an outsider.
    same = [Socket(ws_url, gql.token(f"r{n}", "change-approver")) for n in range(10)]
    other = Socket(ws_url, gql.token("r-other", "change-approver"))
    outsider = Socket(ws_url, gql.token("mallory"))
    for n, socket in enumerate(same):
        await socket.open()
        cursor = encode_cursor(tenant, head) if n % 2 else None
        await socket.subscribe(INBOX, {"after": cursor})
    await other.open()
    await other.subscribe(INBOX_CURSORS)
    await outsider.open()
    await outsider.subscribe(INBOX)
    try:
        await wait_subscribed(hub, 12)
        computed, reused = SharingStats.computed, SharingStats.reused
        await submit(services, tenant, "change-approval", "shared")
        pushed = [(await socket.next())["inboxChanged"] for socket in same]
        assert all(p == pushed[0] for p in pushed)
        assert pushed[0]["item"]["title"] == "shared" and pushed[0]["seq"] > head > start
        assert (await other.next())["inboxChanged"] == {
            "cursor": pushed[0]["cursor"],
            "kind": "ENTERED",
        }
        # One execution for the ten, one for the other selection; the outsider's inbox did
        # not change, so nothing is pushed to it.
        assert SharingStats.computed - computed == 2
        assert SharingStats.reused - reused == 9
    finally:
        for socket in [*same, other, outsider]:
            await socket.close()
