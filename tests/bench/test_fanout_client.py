"""The fanout scenario's client behaves as a frontend: a subscription ended by
`ResyncRequired` is resumed after the marker's cursor, and every event counts once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import serve

from signoff.bench.scenarios import fanout
from tests.conftest import wait_for

TIMEOUT = 30


def _next(operation: str, data: dict[str, object]) -> str:
    return json.dumps({"id": operation, "type": "next", "payload": {"data": data}})


async def test_a_resync_marker_resubscribes_after_its_cursor() -> None:
    subscribes: list[dict[str, Any]] = []
    resumed = asyncio.Event()

    async def server(ws: Any) -> None:
        init = json.loads(await ws.recv())
        assert init["type"] == "connection_init"
        await ws.send(json.dumps({"type": "connection_ack"}))
        first = json.loads(await ws.recv())
        subscribes.append(first)
        op = first["id"]
        change = {"__typename": "InboxChange", "item": {"title": "fanout-1"}}
        await ws.send(_next(op, {"inboxChanged": change}))
        marker = {"__typename": "ResyncRequired", "cursor": "cursor-after-1", "seq": 11}
        await ws.send(_next(op, {"inboxChanged": marker}))
        await ws.send(json.dumps({"id": op, "type": "complete"}))
        again = json.loads(await ws.recv())
        subscribes.append(again)
        change = {"__typename": "InboxChange", "item": {"title": "fanout-2"}}
        await ws.send(_next(again["id"], {"inboxChanged": change}))
        resumed.set()
        await ws.wait_closed()

    async with serve(
        server, "127.0.0.1", 0, compression=None, subprotocols=[fanout.PROTOCOL]
    ) as listening:
        port = listening.sockets[0].getsockname()[1]
        client = fanout._Client()
        await client.open("signoff", f"ws://127.0.0.1:{port}/", "token")
        await asyncio.wait_for(resumed.wait(), TIMEOUT)
        # the resumed subscription's event arrives after the server sent it
        await wait_for(lambda: len(client.arrivals[0]) == 2, timeout=TIMEOUT)
    first, again = subscribes
    assert first["payload"]["variables"] == {}
    assert again["payload"]["variables"] == {"after": "cursor-after-1"}
    assert again["id"] != first["id"]
    assert client.resyncs == 1
    report = client.report({1: 0.0, 2: 0.0})
    assert (report["received"], report["short"]) == (2, 0)
