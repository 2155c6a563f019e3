"""Queries and mutations sent over the websocket are bounded like HTTP ones: the execution
timeout ends an operation that would run past it with a typed error (its transaction rolled
back), the cost limits refuse an over-priced one before it runs, and the socket and the
subscriptions on it live on. Every wait is for a frame or for a lock the test holds: nothing
depends on how fast the machine is, except that the second, unblocked mutation finishes within
the timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import defaultdict
from typing import Any

import asyncpg
import websockets

from signoff.api import ids
from signoff.app import create_app
from signoff.domain.actors import Actor, Principal
from signoff.services import items as item_services
from signoff.services import templates as template_services
from tests.conftest import running_app, served

PROTOCOL = "graphql-transport-ws"
WAIT = 30
TIMEOUT = 3.0  # the deployment's execution timeout in this test

APPROVE = """mutation($i: DecideStepInput!) { approveStep(input: $i) {
  item { state } errors { code } } }"""
EVENTS = """subscription($id: ID!, $after: String) { itemEvents(itemId: $id, after: $after) {
  ... on ItemEvent { action } } }"""


class Socket:
    """A graphql-transport-ws client that files every message under its operation id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async def start(self, op: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))

    async def next(self, op: str) -> dict[str, Any]:
        """The next message of operation `op` (reading and filing the others meanwhile)."""
        while not self.inbox[op]:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            self.inbox[message.get("id", "")].append(message)
        return self.inbox[op].pop(0)


def code_of(message: dict[str, Any]) -> str | None:
    """The error code of an operation's first message (`error`, or `next` with errors)."""
    if message["type"] == "error":
        return str(message["payload"][0]["extensions"]["code"])
    errors = message["payload"].get("errors")
    return str(errors[0]["extensions"]["code"]) if errors else None


async def test_websocket_operations_are_bounded_like_http_and_the_socket_lives_on(
    settings, clock, gql, tenant, services, owner_database_url
):
    admin = Actor(Principal("root", tenant, frozenset({"admin"})))
    await template_services.save_template(
        admin,
        services,
        {
            "key": "slow",
            "name": "slow",
            "kind": "approval",
            "steps": [{"key": "review", "assignees": {"users": ["bob"]}}],
        },
        publish=True,
    )
    view = await item_services.submit_item(
        Actor(Principal("rita", tenant)),
        services,
        item_services.SubmitItemInput(template_key="slow", title="t"),
    )
    step_id = ids.encode("Step", view.steps[0].id)
    item_id = ids.encode("WorkflowItem", view.id)
    application = create_app(
        dataclasses.replace(settings, query_timeout_seconds=TIMEOUT), clock=clock
    )
    async with (
        running_app(application),
        served(application) as address,
        websockets.connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws,
    ):
        token = gql.token("bob")
        init = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        socket = Socket(ws)
        assert (await socket.next(""))["type"] == "connection_ack"
        cursor = (
            await gql.data(
                "query($id: ID!) { item(id: $id) { eventCursor } }",
                {"id": item_id},
                as_user="bob",
            )
        )["item"]["eventCursor"]
        # a subscription opened first: it is long-lived and must outlive the timeout
        await socket.start("events", EVENTS, {"id": item_id, "after": cursor})

        # The item's row is locked by someone else: approving it waits on the lock,
        # longer than the timeout, which ends the operation.
        holder = await asyncpg.connect(owner_database_url)
        try:
            async with holder.transaction():
                await holder.execute(
                    "SELECT 1 FROM workflow_item WHERE id = $1 FOR UPDATE", view.id
                )
                await socket.start("slow", APPROVE, {"i": {"stepId": step_id}})
                refused = await socket.next("slow")
                assert code_of(refused) == "TIMEOUT", refused
                if refused["type"] == "next":
                    assert refused["payload"]["data"] is None
                    assert (await socket.next("slow"))["type"] == "complete"
        finally:
            await holder.close()
        # nothing of it was kept
        stored = await item_services.get_item(admin, services, view.id)
        assert stored.state.value == "pending"

        # the socket lives on: the same mutation, unblocked, now completes
        await socket.start("again", APPROVE, {"i": {"stepId": step_id}})
        done = await socket.next("again")
        assert done["type"] == "next", done
        assert done["payload"]["data"]["approveStep"] == {
            "item": {"state": "APPROVED"},
            "errors": [],
        }
        assert (await socket.next("again"))["type"] == "complete"
        # and the subscription opened before the timeout still delivers
        event = await socket.next("events")
        assert event["type"] == "next" and "action" in event["payload"]["data"]["itemEvents"]

        # cost limits apply over the socket too: refused before anything runs, typed
        pages = " ".join(f"p{i}: inbox(first: 100) {{ totalCount }}" for i in range(200))
        await socket.start("costly", f"{{ {pages} }}")
        costly = await socket.next("costly")
        assert code_of(costly) == "LIMIT_EXCEEDED", costly
        # and still the socket answers
        await socket.start("viewer", "{ viewer { userId } }")
        assert (await socket.next("viewer"))["payload"]["data"] == {"viewer": {"userId": "bob"}}
