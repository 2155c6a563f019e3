"""A client that stops reading: its stream's bounded queue overflows, the server drops it for a
`ResyncRequired` carrying the cursor of the last message its socket was given, and resuming
from that cursor loses nothing and repeats nothing. A real client on a real socket, made slow
by not reading (a small receive buffer so that the server's side congests soon)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from signoff.db import feed, sql
from signoff.services import items as item_services
from tests.conftest import actor
from tests.realtime.conftest import PROTOCOL, TIMEOUT, serve, wait_subscribed

QUEUED = 4
"""The bound of a stream's queue here (`SIGNOFF_WS_MAX_QUEUED_EVENTS`)."""
MOST_SUBMISSIONS = 3000
"""A bound for a server that never congests: the test fails instead of running on."""

INBOX_WITH_PAYLOAD = """
subscription($after: String) {
  inboxChanged(after: $after) {
    __typename
    ... on InboxChange { cursor seq kind item { payload } }
    ... on ResyncRequired { cursor seq }
  }
}"""


@pytest.fixture
def settings(settings: Any) -> Any:
    return dataclasses.replace(settings, ws_max_queued_events=QUEUED)


@pytest.fixture
async def ws_url(app: Any) -> AsyncIterator[str]:
    # The server's sockets buffer little (accepted sockets inherit the listener's send buffer),
    # so that a client that does not read congests them soon. No keep-alive pings: a client
    # that does not read would not answer them, and this one stops reading on purpose.
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listening.bind(("127.0.0.1", 0))
    server, task, port = await serve(app, listening, ws_ping_interval=None)
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await asyncio.wait_for(task, TIMEOUT)


async def _connect_slow(url: str, token: str) -> Any:
    """A client whose socket buffers little and that reads nothing until asked."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
    ws = await websockets.connect(url, sock=raw, subprotocols=[PROTOCOL], max_queue=1)
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "connection_ack"
    return ws


async def submit_large(services: Any, tenant: str, n: int) -> None:
    """An item whose payload is large: every message fills the socket's buffers sooner."""
    await item_services.submit_item(
        actor(tenant, f"requester-{n % 100}"),  # (each has a bound on open items)
        services,
        item_services.SubmitItemInput(
            template_key="change-approval",
            title=f"item {n}",
            payload={"title": f"item {n}", "system": "payments", "rollback_plan": "x" * 4000},
        ),
    )


async def _message(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return message


async def test_a_reader_that_stops_gets_a_resync_marker_and_resuming_loses_nothing(
    ws_url, hub, gql, services, tenant, demo_templates
):
    start = await feed.tenant_head(tenant)
    ws = await _connect_slow(ws_url, gql.token("bob", "change-approver"))
    try:
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": INBOX_WITH_PAYLOAD}})
        )
        await wait_subscribed(hub, 1)
        # The client reads nothing while items enter its inbox, until the server gives up on
        # the stream: ending it is a task of the hub's, waiting for the socket to drain.
        submitted = 0
        while not hub.running_tasks():
            assert submitted < MOST_SUBMISSIONS, "the stream never fell behind"
            await submit_large(services, tenant, submitted)
            submitted += 1
            await asyncio.sleep(0)  # let the reader push what was committed

        # Now it reads: what its socket was given, in order, then the marker, then the end.
        received: list[dict[str, Any]] = []
        while True:
            message = await _message(ws)
            assert message["id"] == "1" and message["type"] == "next", message
            pushed = message["payload"]["data"]["inboxChanged"]
            if pushed["__typename"] == "ResyncRequired":
                marker = pushed
                break
            received.append(pushed)
        assert (await _message(ws)) == {"id": "1", "type": "complete"}

        activations = [
            r["seq"]
            for r in await sql.fetch(
                "SELECT seq FROM audit_event WHERE tenant_id = $1 AND seq > $2 "
                "AND action = 'step.activate' ORDER BY seq",
                tenant,
                start,
            )
        ]
        assert len(activations) == submitted
        seqs = [p["seq"] for p in received]
        # Nothing out of order or twice before the marker, and something was dropped.
        assert seqs == activations[: len(seqs)]
        assert 0 < len(seqs) < submitted
        # The marker names the last message handed to the socket: resume after it.
        assert (marker["seq"], marker["cursor"]) == (seqs[-1], received[-1]["cursor"])

        # The same socket, reading now: resuming after the marker brings the rest, once each.
        await ws.send(
            json.dumps(
                {
                    "id": "2",
                    "type": "subscribe",
                    "payload": {
                        "query": INBOX_WITH_PAYLOAD,
                        "variables": {"after": marker["cursor"]},
                    },
                }
            )
        )
        resumed: list[int] = []
        while len(seqs) + len(resumed) < submitted:
            message = await _message(ws)
            assert message["id"] == "2" and message["type"] == "next", message
            pushed = message["payload"]["data"]["inboxChanged"]
            assert pushed["__typename"] == "InboxChange", pushed
            resumed.append(pushed["seq"])
        assert seqs + resumed == activations
    finally:
        await ws.close()
