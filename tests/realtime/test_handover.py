"""A live stream (`inboxChanged`, `itemsChanged`, `itemEvents`) holds no task: its operation's
task ends when the stream joins the tenant's fan-out. The graphql-transport-ws protocol still
holds for it, on a real socket: the client's `complete` stops it and frees its id, the
subscription cap still counts it, and the server completes it when it ends the stream."""

from __future__ import annotations

import json

import pytest

from signoff.api.live_fanout import CONSUMER
from signoff.services import actions
from tests.conftest import actor, wait_for
from tests.realtime.conftest import (
    INBOX,
    ITEM_EVENTS,
    TIMEOUT,
    Socket,
    global_id,
    submit,
    wait_subscribed,
)


async def _subscribe(socket: Socket, op_id: str) -> None:
    await socket.ws.send(
        json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": INBOX}})
    )


async def _pushed_title(socket: Socket, op_id: str) -> str:
    message = await socket.message()
    assert message["id"] == op_id and message["type"] == "next", message
    title: str = message["payload"]["data"]["inboxChanged"]["item"]["title"]
    return title


async def test_a_handed_over_stream_keeps_the_protocol(
    ws_url, hub, gql, services, tenant, demo_templates
):
    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        await _subscribe(socket, "inbox")
        await wait_subscribed(hub, 1)
        await wait_for(lambda: not hub.running_tasks(), timeout=TIMEOUT)
        await submit(services, tenant, "change-approval", "one")
        assert await _pushed_title(socket, "inbox") == "one"

        # The client completes it: the stream is gone and nothing more is pushed for it ...
        await socket.ws.send(json.dumps({"id": "inbox", "type": "complete"}))
        await wait_for(lambda: hub.subscriber_count == 0, timeout=TIMEOUT)
        await submit(services, tenant, "change-approval", "unseen")
        # ... and its id is free: a new subscription with it is served (a taken id would close
        # the socket with 4409), from the newest event on.
        await _subscribe(socket, "inbox")
        await wait_subscribed(hub, 1)
        await submit(services, tenant, "change-approval", "two")
        assert await _pushed_title(socket, "inbox") == "two"

        # The server ends the stream (its hub stops): the operation is completed.
        await hub.stop()
        assert await socket.message() == {"id": "inbox", "type": "complete"}
        assert hub.subscriber_count == 0
        await wait_for(lambda: not hub.running_tasks(), timeout=TIMEOUT)


async def test_a_live_stream_writes_its_frames_straight_to_the_connection(
    ws_url, hub, gql, services, tenant, demo_templates
):
    """On the API's own websocket server (`WEBSOCKET_OPTIONS`) every stream's frames bypass
    the connection's ASGI send; what the clients read is the same messages."""
    async with (
        Socket(ws_url, gql.token("bob", "change-approver")) as bob,
        Socket(ws_url, gql.token("carol", "change-approver")) as carol,
    ):
        await _subscribe(bob, "same")
        await _subscribe(carol, "same")
        await wait_subscribed(hub, 2)
        fanout = hub.consumer(tenant, CONSUMER, lambda: pytest.fail("no fan-out"))
        assert len(fanout.streams) == 2 and all(s.writer.direct for s in fanout.streams)
        await wait_for(lambda: all(s.live for s in fanout.streams), timeout=TIMEOUT)
        # A live stream on an uncongested socket keeps no queue: neither the catch-up's held
        # batches nor its writer's frames (made only when needed).
        assert all(s.held is None and s.writer._queue is None for s in fanout.streams)
        await submit(services, tenant, "change-approval", "one")
        assert await _pushed_title(bob, "same") == await _pushed_title(carol, "same") == "one"


async def test_handed_over_streams_count_towards_the_subscription_cap(
    ws_url, hub, gql, settings, demo_templates
):
    cap = settings.ws_max_subscriptions
    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        for n in range(cap):
            await _subscribe(socket, f"s{n}")
        await wait_subscribed(hub, cap)
        await wait_for(lambda: not hub.running_tasks(), timeout=TIMEOUT)
        await _subscribe(socket, "over")
        refused = await socket.message()
        assert (refused["id"], refused["type"]) == ("over", "error")
        # completing one frees a seat
        await socket.ws.send(json.dumps({"id": "s0", "type": "complete"}))
        await wait_for(lambda: hub.subscriber_count == cap - 1, timeout=TIMEOUT)
        await _subscribe(socket, "again")
        await wait_subscribed(hub, cap)


async def test_item_events_end_with_complete_when_the_caller_may_no_longer_read_the_item(
    ws_url, hub, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    step = next(s for s in view.steps if s.state == "active")
    variables = {"itemId": global_id("WorkflowItem", view.id)}
    async with (
        Socket(ws_url, gql.token("bob", "change-approver")) as bob,
        Socket(ws_url, gql.token("trent")) as trent,
    ):
        bob_op = await bob.subscribe(ITEM_EVENTS, variables)
        await wait_subscribed(hub, 1)
        # the step moves from bob's role to trent: bob may no longer read the item
        await actions.reassign_step(
            actor(tenant, "admin", "admin"),
            services,
            actions.ReassignInput(step_id=step.id, users=("trent",), reason="cover"),
        )
        # nothing of it is pushed to bob: his operation is completed
        assert await bob.message() == {"id": bob_op, "type": "complete"}
        await wait_for(lambda: hub.subscriber_count == 0, timeout=TIMEOUT)
        # trent, who may read it now, follows its events from here on
        trent_op = await trent.subscribe(ITEM_EVENTS, variables)
        await wait_subscribed(hub, 1)
        await actions.claim_step(actor(tenant, "trent"), services, step.id, actions.Guards())
        message = await trent.message()
        assert message["id"] == trent_op
        assert message["payload"]["data"]["itemEvents"]["action"] == "step.claim"
