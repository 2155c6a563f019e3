"""Many transactions commit at once while subscribers come and go: every event arrives exactly
once, in sequence order, with no gap."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from signoff.api.event_cursors import encode_cursor
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


EVERY_EVENT = """
subscription($after: String) {
  itemsChanged(scope: REQUESTED, after: $after) {
    ... on ItemListChange { cursor seq }
    ... on ResyncRequired { __typename cursor seq }
  }
}"""


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_every_event_arrives_once_in_order_across_resubscriptions(
    ws_url, hub, gql, services, tenant, demo_templates
):
    """The requester's `itemsChanged(REQUESTED)` carries every event of the tenant here (every
    item is theirs): a stream completed and started again from its last cursor, on the same
    socket, while writers commit, receives each event exactly once, in sequence order."""
    # How many events one submission writes (the same for every submission of the template):
    # the reader then knows how many to expect and never waits for one that will not come.
    before = await feed.tenant_head(tenant)
    await submit(services, tenant, "change-approval", "probe")
    start = await feed.tenant_head(tenant)
    total = (start - before) * WRITERS * ITEMS_PER_WRITER
    seen: list[int] = []
    cursor = None
    rng = random.Random(4)
    restarts = 0
    async with Socket(ws_url, gql.token("dave")) as socket:
        operation = await socket.subscribe(EVERY_EVENT, {"after": encode_cursor(tenant, start)})
        await wait_subscribed(hub, 1)
        writing = asyncio.create_task(_write(services, tenant, asyncio.Event()))
        # A bound for a hang only; nothing below waits on the clock to decide anything.
        async with asyncio.timeout(RECONNECT_TEST_BOUND - 60):
            while len(seen) < total:
                for _ in range(rng.randint(1, 4)):
                    if len(seen) >= total:
                        break
                    message = await socket.message()
                    if message.get("id") != operation:
                        continue  # sent before the previous stream's `complete` was read
                    assert message["type"] == "next", message
                    change = message["payload"]["data"]["itemsChanged"]
                    assert "__typename" not in change, change  # never a ResyncRequired here
                    seen.append(change["seq"])
                    cursor = change["cursor"]
                if len(seen) < total:
                    # End the stream (the client's `complete`), start it again after the last
                    # event applied.
                    await socket.ws.send(json.dumps({"id": operation, "type": "complete"}))
                    operation = await socket.subscribe(EVERY_EVENT, {"after": cursor})
                    restarts += 1
        await writing
    assert restarts >= 5
    head = await feed.tenant_head(tenant)
    assert head == start + total  # several events per submission, every one seen
    assert seen == list(range(start + 1, head + 1))
    await wait_for(lambda: hub.subscriber_count == 0 and not hub.running_tasks(), timeout=TIMEOUT)


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
