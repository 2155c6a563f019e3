"""Real websockets against uvicorn on loopback, and helpers to submit and decide items."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from signoff.api import ids
from signoff.api.push import WEBSOCKET_OPTIONS
from signoff.services import actions
from signoff.services import items as item_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from tests.conftest import actor, wait_for

PROTOCOL = "graphql-transport-ws"
# How long a test waits for a push or a state before failing: a bound for a hang, not a speed
# claim; a test that passes never waits it out (every wait ends on the event or state it waits
# for). 10 s, then 30 s, were crossed by a reconnect and its replay on a machine loaded to 13
# on 2 cores.
TIMEOUT = 120.0
# The pytest timeout of the tests that reconnect: several waits of up to TIMEOUT each.
RECONNECT_TEST_BOUND = 900


async def serve(
    app: Any, listening: socket.socket | None = None, **options: Any
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Run `app` (lifespan already entered) under uvicorn on a free loopback port, or on the
    `listening` socket (`options`: more of uvicorn's settings)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            **{**WEBSOCKET_OPTIONS, **options},
        )
    )
    task = asyncio.create_task(server.serve([listening] if listening is not None else None))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not server.started:
        if task.done():
            task.result()
        assert loop.time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@pytest.fixture
async def ws_url(app: Any) -> AsyncIterator[str]:
    """The test app's websocket endpoint on a loopback port of its own."""
    server, task, port = await serve(app)
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await asyncio.wait_for(task, TIMEOUT)


@pytest.fixture
def hub(app: Any) -> Any:
    """The realtime hub of the test app."""
    return app.state.realtime


INBOX = """
subscription($after: String) {
  inboxChanged(after: $after) {
    ... on InboxChange {
      cursor seq kind reason action actorId itemId stepId
      item { id title state steps { key stepState } }
    }
    ... on ResyncRequired { __typename cursor seq }
  }
}"""

ITEM_EVENTS = """
subscription($itemId: ID!, $after: String) {
  itemEvents(itemId: $itemId, after: $after) {
    ... on ItemEvent { cursor seq action actorId itemId stepId data }
    ... on ResyncRequired { __typename cursor seq }
  }
}"""


class Socket:
    """One graphql-transport-ws connection, authenticated in `connection_init`."""

    _ids = itertools.count(1)

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.ws: Any = None

    async def __aenter__(self) -> Socket:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, subprotocols=[PROTOCOL])
        assert self.ws.subprotocol == PROTOCOL
        await self.ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}}
            )
        )
        assert (await self.message())["type"] == "connection_ack"

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a network failure)."""
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None

    async def message(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = str(next(self._ids))
        await self.ws.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )
        return op_id

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The data of the next `next` message (fails on anything else)."""
        message = await self.message(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


async def wait_subscribed(hub: Any, count: int) -> None:
    """Wait until `count` subscription streams are registered in the hub (so that a change
    made next is after their starting cursor)."""
    await wait_for(lambda: hub.subscriber_count >= count, timeout=TIMEOUT)


PAYLOADS = {
    "change-approval": {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"},
    "exception-request": {"policy": "mfa", "justification": "legacy", "expires_on": "2027-01-01"},
    "partner-approval": {"partner": "Acme", "value_eur": 1000},
}


async def submit(
    services: ServiceContext, tenant: str, template: str, title: str, user: str = "dave"
) -> ItemView:
    """Submit an item of a demo template as `user`."""
    return await item_services.submit_item(
        actor(tenant, user),
        services,
        item_services.SubmitItemInput(
            template_key=template, title=title, payload=dict(PAYLOADS[template])
        ),
    )


async def approve(
    services: ServiceContext, tenant: str, view: ItemView, user: str, *roles: str
) -> ItemView:
    """Approve the item's first active step as `user`."""
    step = next(s for s in view.steps if s.state == "active")
    return await item_services.decide_step(
        actor(tenant, user, *roles),
        services,
        item_services.DecideStepInput(
            step_id=step.id, outcome=item_services.Outcome.APPROVE, reason="looks right"
        ),
    )


async def resubmit_after_changes(
    services: ServiceContext,
    tenant: str,
    view: ItemView,
    payload: dict[str, Any],
    reason: str = "which window?",
) -> ItemView:
    """bob (a change approver) requests changes on the item's first step; its requester, dave,
    resubmits it with `payload`."""
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        item_services.DecideStepInput(
            view.steps[0].id, item_services.Outcome.REQUEST_CHANGES, reason=reason
        ),
    )
    return await actions.resubmit_item(
        actor(tenant, "dave"), services, actions.ResubmitInput(view.id, payload=payload)
    )


def global_id(type_name: str, raw: Any) -> str:
    """The global id of a row."""
    return ids.encode(type_name, raw)
