"""Websocket sessions follow their token, on a real socket (uvicorn + the websockets client):
closed with 4403 when the token expires, refreshed by a `ping` carrying a new token, and capped
per user and per address across processes. Every wait is for a frame, with a generous timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from signoff.api.auth import mint_token
from signoff.api.ws_sessions import SessionClock, SocketCaps
from signoff.app import create_app
from signoff.domain.actors import Actor
from tests.conftest import actor, running_app, served, wait_for

PROTOCOL = "graphql-transport-ws"
WAIT = 20  # seconds: generous, the frames come much sooner


@pytest.fixture
def ws_server(settings, clock):
    """`async with ws_server(**setting_changes) as url:` a served app with those settings."""

    @asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[str]:
        application = create_app(dataclasses.replace(settings, **changes), clock=clock)
        async with running_app(application), served(application) as address:
            yield f"ws://{address}/graphql"

    return start


async def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def close_frame(ws: Any) -> tuple[int | None, str | None]:
    """Wait for the server to close the socket; its code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return ws.close_code, ws.close_reason


async def connect(url: str, token: str) -> Any:
    ws = await websockets.connect(url, subprotocols=[PROTOCOL])
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    return ws


async def viewer(ws: Any, op_id: str) -> dict[str, Any]:
    await ws.send(
        json.dumps(
            {"id": op_id, "type": "subscribe", "payload": {"query": "{ viewer { userId roles } }"}}
        )
    )
    message = await receive(ws)
    assert message["type"] == "next", message
    assert (await receive(ws))["type"] == "complete"
    return message["payload"]["data"]["viewer"]


def token(settings, tenant: str, user: str, ttl: int, *roles: str) -> str:
    return mint_token(settings, user_id=user, tenant_id=tenant, roles=roles, ttl_seconds=ttl)


async def test_the_server_closes_the_socket_when_the_token_expires(ws_server, settings, tenant):
    async with ws_server(jwt_leeway_seconds=0) as url:
        short = token(settings, tenant, "alice", 2)
        expires = time.time() + 2
        ws = await connect(url, short)
        assert (await receive(ws))["type"] == "connection_ack"
        assert (await viewer(ws, "1"))["userId"] == "alice"
        code, reason = await close_frame(ws)
    assert (code, reason) == (4403, "Token expired")
    assert time.time() >= expires - 1  # not earlier than the token's own expiry (1 s rounding)


async def test_a_ping_with_a_fresh_token_keeps_the_session_and_updates_its_roles(
    ws_server, settings, tenant
):
    async with ws_server(jwt_leeway_seconds=0) as url:
        ws = await connect(url, token(settings, tenant, "alice", 2))
        assert (await receive(ws))["type"] == "connection_ack"
        fresh = token(settings, tenant, "alice", 60, "approver")
        await ws.send(json.dumps({"type": "ping", "payload": {"authorization": f"Bearer {fresh}"}}))
        pong = await receive(ws)
        assert pong["type"] == "pong"
        assert pong["payload"]["expiresAt"] > time.time() + 30
        # past the first token's expiry the socket still serves, with the new roles
        while time.time() < pong["payload"]["expiresAt"] - 58 + 1:
            await asyncio.sleep(0.1)
        assert await viewer(ws, "2") == {"userId": "alice", "roles": ["approver"]}
        await ws.close()


@pytest.mark.parametrize("other", ["bob", "not a token"])
async def test_a_refresh_with_another_users_or_a_bad_token_closes_the_socket(
    ws_server, settings, tenant, other
):
    async with ws_server() as url:
        ws = await connect(url, token(settings, tenant, "alice", 60))
        assert (await receive(ws))["type"] == "connection_ack"
        replacement = other if " " in other else token(settings, tenant, other, 60, "admin")
        await ws.send(
            json.dumps({"type": "ping", "payload": {"authorization": f"Bearer {replacement}"}})
        )
        code, reason = await close_frame(ws)
    assert code == 4403
    assert reason.startswith("Refresh refused")


async def test_a_plain_ping_is_still_answered(ws_server, settings, tenant):
    async with ws_server() as url:
        ws = await connect(url, token(settings, tenant, "alice", 60))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await receive(ws))["type"] == "pong"
        await ws.close()


async def test_open_sockets_are_capped_per_user_across_processes(ws_server, settings, tenant):
    """Two served apps share the caps through Redis; a closed socket frees its seat."""
    limits = {"ws_max_sockets_per_user": 2}
    async with ws_server(**limits) as one, ws_server(**limits) as two:
        alice = token(settings, tenant, "alice", 60)
        first, second = await connect(one, alice), await connect(two, alice)
        assert (await receive(first))["type"] == "connection_ack"
        assert (await receive(second))["type"] == "connection_ack"
        third = await connect(one, alice)
        assert await close_frame(third) == (4429, "Too many sockets (user)")
        bob = await connect(two, token(settings, tenant, "bob", 60))
        assert (await receive(bob))["type"] == "connection_ack"
        await first.close()
        await first.wait_closed()
        # the server releases the lease as it shuts the socket down, which may end after the
        # client has seen the close: until then a new socket is refused for the cap, after it
        # one is accepted
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            fourth = await connect(two, alice)
            try:
                message = json.loads(await asyncio.wait_for(fourth.recv(), WAIT))
            except ConnectionClosed:
                assert (fourth.close_code, fourth.close_reason) == (
                    4429,
                    "Too many sockets (user)",
                )
                assert asyncio.get_running_loop().time() < deadline, "the seat was never freed"
                await asyncio.sleep(0.05)  # polling the release, bounded by the deadline
                continue
            assert message["type"] == "connection_ack"
            break
        for ws in (second, bob, fourth):
            await ws.close()


async def test_open_sockets_are_capped_per_address(ws_server, settings, tenant):
    # Leases are counted in Redis under the key prefix; the run's prefix also holds the leases
    # of other tests' sockets (on the same address) until they are released or lapse.
    own_prefix = f"{settings.redis_prefix}-a{uuid.uuid4().hex[:8]}"
    async with ws_server(ws_max_sockets_per_address=2, redis_prefix=own_prefix) as url:
        opened = []
        for user in ("u1", "u2"):
            ws = await connect(url, token(settings, tenant, user, 60))
            assert (await receive(ws))["type"] == "connection_ack"
            opened.append(ws)
        third = await connect(url, token(settings, tenant, "u3", 60))
        assert await close_frame(third) == (4429, "Too many sockets (address)")
        for ws in opened:
            await ws.close()


async def test_one_task_keeps_every_sockets_deadline(ws_server, settings, tenant):
    """Sockets expire each at its own token's deadline, a refresh moves it, and the process
    keeps them all with one task, not one per socket."""

    def clocks() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() if t.get_name() == "signoff-ws-sessions"}

    async with ws_server(jwt_leeway_seconds=0) as url:
        others = clocks()
        opened_at = time.time()
        # u0's token is refreshed as soon as its socket is up, well inside its 4 s, whatever
        # the machine's load; u1 and u2 expire at 5 and 6 s, after u0's first deadline
        first = await connect(url, token(settings, tenant, "u0", 4))
        assert (await receive(first))["type"] == "connection_ack"
        fresh = token(settings, tenant, "u0", 600)
        await first.send(
            json.dumps({"type": "ping", "payload": {"authorization": f"Bearer {fresh}"}})
        )
        assert (await receive(first))["type"] == "pong"
        short = [first]
        short += [await connect(url, token(settings, tenant, f"u{n}", 4 + n)) for n in (1, 2)]
        keeper = await connect(url, token(settings, tenant, "keeper", 600))
        for ws in [*short[1:], keeper]:
            assert (await receive(ws))["type"] == "connection_ack"
        assert len(clocks() - others) == 1
        for n, ws in enumerate(short[1:], start=1):
            assert await close_frame(ws) == (4403, "Token expired")
            assert time.time() >= opened_at + 4 + n - 1  # not before its own expiry (1 s rounding)
        # u0's first deadline has passed: the refresh moved it
        assert time.time() >= opened_at + 4
        # the refreshed socket and the long-lived one still serve
        for ws, user in ((short[0], "u0"), (keeper, "keeper")):
            assert (await viewer(ws, "v"))["userId"] == user
            await ws.close()


async def test_the_clock_renews_every_lease_in_one_round(settings, tenant):
    caps = SocketCaps(settings)
    clock = SessionClock(caps, 0, renew_every=0.05)

    @dataclasses.dataclass(eq=False)
    class Held:
        lease: str
        leased_as: tuple[Actor, str]

        async def expire(self) -> None:
            raise AssertionError("no deadline was set")

    try:
        held = []
        for n in range(3):
            who = (actor(tenant, f"lease-{n}"), "10.0.0.9")
            lease = f"lease-{n}-{time.time()}"
            assert await caps.acquire(*who, lease) is None
            held.append(Held(lease, who))
        keys = [caps._keys(*h.leased_as) for h in held]
        before = [await caps._redis.zscore(k[0], h.lease) for k, h in zip(keys, held, strict=True)]
        for h in held:
            clock.watch(h, None)
        assert clock.running
        await wait_for(lambda: clock.renewals >= 2, timeout=WAIT)
        for k, h, was in zip(keys, held, before, strict=True):
            for key in k:
                assert await caps._redis.zscore(key, h.lease) > was
        for h in held:
            clock.forget(h)
            await caps.release(*h.leased_as, h.lease)
        await wait_for(lambda: not clock.running, timeout=WAIT)
    finally:
        await caps.close()
