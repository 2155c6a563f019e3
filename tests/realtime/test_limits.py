"""Limits and clean-up: dropped sockets leave nothing running, caps hold, a lost listener heals."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from signoff.app import create_app
from signoff.db import sql
from tests.conftest import wait_for
from tests.realtime.conftest import (
    INBOX,
    ITEM_EVENTS,
    PROTOCOL,
    RECONNECT_TEST_BOUND,
    TIMEOUT,
    Socket,
    global_id,
    serve,
    submit,
    wait_subscribed,
)


async def test_dropped_sockets_leave_no_subscription_task_running(
    ws_url, hub, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    token = gql.token("bob", "change-approver")
    sockets = [Socket(ws_url, token) for _ in range(20)]
    for socket in sockets:
        await socket.open()
        await socket.subscribe(INBOX)
        await socket.subscribe(ITEM_EVENTS, {"itemId": global_id("WorkflowItem", view.id)})
    await wait_for(lambda: hub.subscriber_count == 40, timeout=TIMEOUT)
    # A live stream holds no task: its operation's task ended when it joined the tenant's
    # fan-out.
    await wait_for(lambda: not hub.running_tasks(), timeout=TIMEOUT)

    for n, socket in enumerate(sockets):
        if n % 2:
            socket.abort()  # the network goes away: no close frame
        else:
            await socket.close()
    await wait_for(lambda: not hub.running_tasks() and hub.subscriber_count == 0, timeout=TIMEOUT)


async def test_subscriptions_per_connection_are_capped(ws_url, hub, gql, settings, demo_templates):
    cap = settings.ws_max_subscriptions
    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        for _ in range(cap):
            await socket.subscribe(INBOX)
        await wait_for(lambda: hub.subscriber_count == cap, timeout=TIMEOUT)
        op = await socket.subscribe(INBOX)
        refused = await socket.message()
        assert refused["id"] == op
        assert refused["type"] == "error"
        assert refused["payload"][0]["message"] == "Subscription limit reached"
        assert hub.subscriber_count == cap


@pytest.fixture
async def impatient_ws_url(settings, clock):
    """An app that waits only half a second for `connection_init`."""
    app = create_app(dataclasses.replace(settings, ws_connection_init_timeout=0.5), clock=clock)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), TIMEOUT)
    server, serving, port = await serve(app)
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await asyncio.wait_for(serving, TIMEOUT)
    stop.set()
    await task


async def test_a_socket_that_never_sends_connection_init_is_closed(impatient_ws_url):
    async with websockets.connect(impatient_ws_url, subprotocols=[PROTOCOL]) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 4408


async def test_legacy_graphql_ws_is_refused(ws_url):
    async with websockets.connect(ws_url, subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await ws.send(json.dumps({"type": "connection_init"}))
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 4406


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_a_lost_listener_reconnects_and_nothing_is_lost(
    ws_url, hub, gql, services, tenant, demo_templates
):
    assert hub.listener_pid is not None
    connects = hub.listener_connects
    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        await socket.subscribe(INBOX)
        await wait_subscribed(hub, 1)
        await sql.execute("SELECT pg_terminate_backend($1)", hub.listener_pid)
        # Committed while the listener may be down: the poll or the re-LISTEN finds it.
        view = await submit(services, tenant, "change-approval", "while reconnecting")
        pushed = (await socket.next())["inboxChanged"]
        assert pushed["itemId"] == global_id("WorkflowItem", view.id)
        await wait_for(lambda: hub.listener_connects == connects + 1, timeout=TIMEOUT)
        assert hub.listener_pid is not None
        # And live pushes keep working through the new connection.
        later = await submit(services, tenant, "change-approval", "after reconnecting")
        pushed = (await socket.next())["inboxChanged"]
        assert pushed["itemId"] == global_id("WorkflowItem", later.id)
