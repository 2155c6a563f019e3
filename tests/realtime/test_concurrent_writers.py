"""Many transactions commit at once while subscribers come and go: every event arrives exactly
once, in sequence order, with no gap."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from signoff.db import feed, sql
from tests.conftest import wait_for
from tests.realtime.conftest import (
    INBOX,
    RECONNECT_TEST_BOUND,
    TIMEOUT,
    Socket,
    global_id,
    submit,
    wait_subscribed,
)

WRITERS = 10
ITEMS_PER_WRITER = 6


async def _write(services, tenant, done: asyncio.Event) -> list:
    async def writer(n: int) -> list:
        # No retries: concurrent submissions in one tenant must not deadlock (the audit
        # numbering lock is FOR NO KEY UPDATE, compatible with the foreign keys' KEY SHARE).
        return [
            await submit(services, tenant, "change-approval", f"w{n}-{k}")
            for k in range(ITEMS_PER_WRITER)
        ]

    try:
        results = await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    finally:
        done.set()
    return [v for views in results for v in views]


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_the_hub_streams_every_event_once_in_order_across_restarts(
    hub, services, tenant, demo_templates
):
    # How many events one submission writes (the same for every submission of the template):
    # the reader then knows how many to expect and never waits for one that will not come.
    before = await feed.tenant_head(tenant)
    await submit(services, tenant, "change-approval", "probe")
    start = await feed.tenant_head(tenant)
    total = (start - before) * WRITERS * ITEMS_PER_WRITER
    done = asyncio.Event()
    writing = asyncio.create_task(_write(services, tenant, done))
    seen: list[int] = []
    cursor = start
    rng = random.Random(4)
    # A bound for a hang only; nothing below waits on the clock to decide anything.
    async with asyncio.timeout(RECONNECT_TEST_BOUND - 60):
        while len(seen) < total:
            # Read a few batches, then drop the stream and resume from the cursor. The stream
            # is read by this task, as a subscription's stream is read by its own.
            async with contextlib.aclosing(hub.batches(tenant, cursor)) as stream:
                for _ in range(rng.randint(1, 3)):
                    if len(seen) >= total:
                        break
                    batch = await anext(stream)
                    seen += [e["seq"] for e in batch]
                    cursor = batch[-1]["seq"]
    await writing
    head = await feed.tenant_head(tenant)
    assert head == start + total  # several events per submission, every one seen
    assert seen == list(range(start + 1, head + 1))
    await wait_for(lambda: hub.subscriber_count == 0, timeout=TIMEOUT)


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_a_reconnecting_subscriber_sees_every_change_once_in_order(
    ws_url, hub, gql, services, tenant, demo_templates
):
    token = gql.token("bob", "change-approver")
    received: list[dict] = []
    cursor = None
    done = asyncio.Event()
    rng = random.Random(7)
    total = WRITERS * ITEMS_PER_WRITER
    reconnects = 0

    socket = Socket(ws_url, token)
    await socket.open()
    await socket.subscribe(INBOX)
    await wait_subscribed(hub, 1)
    writing = asyncio.create_task(_write(services, tenant, done))
    try:
        while len(received) < total:
            if socket is None:
                socket = Socket(ws_url, token)
                await socket.open()
                await socket.subscribe(INBOX, {"after": cursor})
                reconnects += 1
            for _ in range(rng.randint(1, 4)):
                if len(received) == total:
                    break
                change = (await socket.next(timeout=TIMEOUT))["inboxChanged"]
                received.append(change)
                cursor = change["cursor"]
            # Drop the connection the way a network does (a clean close would wait for the
            # replay still queued unread on this socket).
            socket.abort()
            socket = None
    finally:
        if socket is not None:
            await socket.close()
    views = await writing
    assert reconnects >= 5

    rows = await sql.fetch(
        "SELECT seq, item_id FROM audit_event WHERE tenant_id = $1 AND action = 'step.activate' "
        "ORDER BY seq",
        tenant,
    )
    # Exactly the activations, each once, in commit order: nothing missed, nothing repeated.
    assert [c["seq"] for c in received] == [r["seq"] for r in rows]
    assert [c["itemId"] for c in received] == [
        global_id("WorkflowItem", r["item_id"]) for r in rows
    ]
    assert {c["itemId"] for c in received} == {global_id("WorkflowItem", v.id) for v in views}
    assert all(c["kind"] == "ENTERED" for c in received)
    await wait_for(lambda: not hub.running_tasks() and hub.subscriber_count == 0, timeout=TIMEOUT)
