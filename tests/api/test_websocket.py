"""The GraphQL websocket (graphql-transport-ws) on a real socket: same token, origins enforced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signoff.api.auth import mint_token
from signoff.api.push import WEBSOCKET_OPTIONS

PROTOCOL = "graphql-transport-ws"
TIMEOUT = 5


@pytest.fixture
async def ws_url(app: Any) -> AsyncIterator[str]:
    """The app served by uvicorn on a loopback port of its own, on the test loop."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", **WEBSOCKET_OPTIONS
        )
    )
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # surface a startup failure instead of timing out
        return server.started

    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not started():
        assert loop.time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await asyncio.wait_for(task, TIMEOUT)


async def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return message


async def closed_code(ws: Any) -> int | None:
    """The close code the server sends, once it closes the socket."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return ws.close_code


async def test_token_in_connection_init_authenticates(ws_url, gql):
    async with websockets.connect(ws_url, subprotocols=[PROTOCOL]) as ws:
        assert ws.subprotocol == PROTOCOL
        token = gql.token("alice", "reviewer")
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "{ viewer { userId tenantId } }"},
                }
            )
        )
        message = await receive(ws)
        assert (message["id"], message["type"]) == ("1", "next")
        assert message["payload"]["data"] == {"viewer": {"userId": "alice", "tenantId": gql.tenant}}
        assert message["payload"]["extensions"]["cost"]["requested"] == 0
        assert await receive(ws) == {"id": "1", "type": "complete"}


@pytest.mark.parametrize("payload", [{"Authorization": "Bearer not-a-token"}, {}, None])
async def test_bad_or_missing_token_closes_with_4403(ws_url, payload):
    async with websockets.connect(ws_url, subprotocols=[PROTOCOL]) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        assert await closed_code(ws) == 4403


async def test_expired_token_closes_with_4403(ws_url, settings, gql):
    token = mint_token(settings, user_id="alice", tenant_id=gql.tenant, ttl_seconds=-3600)
    async with websockets.connect(ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert await closed_code(ws) == 4403


async def test_subscribe_before_ack_is_refused(ws_url):
    async with websockets.connect(ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { userId } }"}}
            )
        )
        assert await closed_code(ws) == 4401


async def test_legacy_graphql_ws_protocol_is_refused(ws_url):
    async with websockets.connect(ws_url, subprotocols=["graphql-ws"]) as ws:
        # No subprotocol is agreed, and the server closes before serving anything.
        assert ws.subprotocol is None
        assert await closed_code(ws) == 4406
        assert ws.close_reason == "Subprotocol not acceptable"


async def test_cross_origin_handshake_from_unknown_origin_is_refused(ws_url):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            ws_url, subprotocols=[PROTOCOL], origin="http://evil.example"
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_handshake_from_configured_origin_is_accepted(ws_url, gql):
    async with websockets.connect(
        ws_url, subprotocols=[PROTOCOL], origin="http://inbox.example"
    ) as ws:
        assert ws.subprotocol == PROTOCOL
        token = gql.token("bob")
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        assert (await receive(ws))["type"] == "connection_ack"
