"""A probe, not a test (pytest collects only `test_*.py`; run it by name): the traced Python heap
of the server per `inboxChanged` socket, once subscribed and after some events, by the file that
allocated it (docs/architecture.md, "Memory per socket, where it is").

    PROBE_SOCKETS=100 PROBE_EVENTS=20 pytest tests/realtime/probe_memory.py -s -p no:cacheprovider

The sockets are the bench's clients (`signoff.bench.wsclient`) on the test server (pytest's
asyncio loop, not uvloop: uvloop's transports are not in Python's heap), one reviewer each.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import tracemalloc
from collections import Counter
from typing import Any

from signoff.bench import wsclient
from tests.conftest import wait_for
from tests.realtime.conftest import INBOX, TIMEOUT, submit, wait_subscribed

SOCKETS = int(os.environ.get("PROBE_SOCKETS", "100"))
EVENTS = int(os.environ.get("PROBE_EVENTS", "20"))


def _by_file(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> Counter[str]:
    grown: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        for marker in ("site-packages/", "backend/", "lib/python3.11/"):
            if marker in name:
                name = name.split(marker, 1)[1]
                break
        grown[name] += stat.size_diff
    return grown


def _show(title: str, grown: Counter[str], rows: int) -> None:
    print(f"{title}: {sum(grown.values()) / SOCKETS / 1024:.2f} KiB per socket")
    for name, size in grown.most_common(rows):
        print(f"  {size / SOCKETS / 1024:7.2f} KiB  {name}")


async def test_probe_memory_per_socket(
    ws_url: str, hub: Any, gql: Any, services: Any, tenant: str, demo_templates: Any
) -> None:
    nexts = Counter[str]()
    sockets = []

    async def open_socket(user: str) -> wsclient.RawWebSocket:
        acked = asyncio.get_running_loop().create_future()

        def on_frame(_opcode: int, payload: bytes, _now: float) -> None:
            if b'"next"' in payload:
                nexts["next"] += 1
            elif b"connection_ack" in payload and not acked.done():
                acked.set_result(None)

        socket = await wsclient.connect(
            ws_url, on_frame, time.time, subprotocol="graphql-transport-ws"
        )
        token = gql.token(user, "change-approver")
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        socket.send(wsclient.TEXT, json.dumps(init).encode())
        await asyncio.wait_for(acked, TIMEOUT)
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": INBOX}}
        socket.send(wsclient.TEXT, json.dumps(subscribe).encode())
        return socket

    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for n in range(SOCKETS):
        sockets.append(await open_socket(f"reviewer-{n}"))
    await wait_subscribed(hub, SOCKETS)
    await wait_for(lambda: not hub.running_tasks(), timeout=TIMEOUT)
    gc.collect()
    subscribed = tracemalloc.take_snapshot()
    for n in range(EVENTS):
        await submit(services, tenant, "change-approval", f"probe-{n}")
    await wait_for(lambda: nexts["next"] >= SOCKETS * EVENTS, timeout=TIMEOUT)
    gc.collect()
    evented = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print()
    _show("subscribed", _by_file(before, subscribed), 25)
    _show(f"after {EVENTS} events", _by_file(before, evented), 0)
    _show("grown with the events", _by_file(subscribed, evented), 6)
    for socket in sockets:
        assert socket.transport is not None
        socket.transport.close()
