"""The push path under row-level security, as production runs it: two tenants, the same user
names in both, every subscription, and no event of one tenant reaching a subscriber of the other.

The suite's own code sees every tenant (tests/conftest.py::test_scope), and an application
started from a test inherits that scope in every task it starts: its realtime readers, its
connections, its subscriptions. Here the application is built and served from no tenant scope,
so each of those tasks sees only what it binds itself (the tenant of the socket's token, the
tenant a reader works for), as the suite's role, which row-level security binds. A push whose
reads forgot to bind the tenant would come with no item (or not at all) and fail these tests as
surely as one that crossed tenants.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signoff.api.event_cursors import decode_cursor
from signoff.app import create_app
from signoff.db import scope as tenant_scope
from signoff.domain.actors import is_tenant_id
from signoff.services import comments as comment_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.templates import load_templates
from signoff.settings import Settings
from tests.conftest import DEMO_TEMPLATES, GraphQLClient, actor, running_app
from tests.realtime.conftest import (
    INBOX,
    ITEM_EVENTS,
    TIMEOUT,
    Socket,
    approve,
    global_id,
    serve,
    submit,
    wait_subscribed,
)
from tests.realtime.test_items_changed import ITEMS_CHANGED

ITEMS = 3  # submitted by dave in each tenant, the first of them approved by bob


@pytest.fixture
async def unscoped(settings: Settings, clock: Any) -> AsyncIterator[tuple[str, Any]]:
    """The API built, started and served from a task of no tenant scope; yields its websocket
    URL and its realtime hub."""
    with tenant_scope.unbound():
        assert tenant_scope.current() == tenant_scope.Scope()
        application = create_app(settings, clock=clock)
        lifespan = running_app(application)
        await lifespan.__aenter__()
        server, task, port = await serve(application)
    try:
        yield f"ws://127.0.0.1:{port}/graphql", application.state.realtime
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        await lifespan.__aexit__(None, None, None)


class Tenant:
    """One tenant of the two: its subscribers (bob's inbox, dave's requests, dave's events of
    the tenant's first item) and everything each has been pushed."""

    def __init__(self, name: str, url: str, gql: GraphQLClient) -> None:
        self.name = name
        self.gql = GraphQLClient(gql.http, gql.settings, name)
        self.inbox = Socket(url, self.gql.token("bob", "change-approver"))
        self.requests = Socket(url, self.gql.token("dave"))
        self.events = Socket(url, self.gql.token("dave"))
        self.items: list[ItemView] = []
        self.pushed: dict[str, list[dict[str, Any]]] = {"inbox": [], "requests": [], "events": []}

    @property
    def sockets(self) -> dict[str, Socket]:
        return {"inbox": self.inbox, "requests": self.requests, "events": self.events}

    def item_ids(self) -> set[str]:
        return {global_id("WorkflowItem", view.id) for view in self.items}

    async def read_until(self, name: str, done: Callable[[dict[str, Any]], bool]) -> None:
        """Collect what socket `name` is pushed until a message `done` accepts."""
        field = {"inbox": "inboxChanged", "requests": "itemsChanged", "events": "itemEvents"}
        while True:
            message = (await self.sockets[name].next())[field[name]]
            self.pushed[name].append(message)
            if done(message):
                return


def pushed_about(item_id: str, kind: str | None = None, state: str | None = None) -> Any:
    def done(message: dict[str, Any]) -> bool:
        return (
            message.get("itemId") == item_id
            and (kind is None or message.get("kind") == kind)
            and (state is None or (message.get("item") or {}).get("state") == state)
        )

    return done


@pytest.mark.timeout(600)
async def test_every_push_stays_in_its_tenant_under_row_level_security(
    unscoped, gql, services: ServiceContext, tenant: str
):
    url, hub = unscoped
    other = f"t{uuid.uuid4().hex[:12]}"
    assert is_tenant_id(other)
    two = [Tenant(tenant, url, gql), Tenant(other, url, gql)]
    for t in two:
        await load_templates(actor(t.name, "admin", "admin"), services, DEMO_TEMPLATES)
        t.items.append(await submit(services, t.name, "change-approval", f"{t.name} first"))
    for t in two:
        for socket in t.sockets.values():
            await socket.open()
    try:
        for t in two:
            first = global_id("WorkflowItem", t.items[0].id)
            await t.inbox.subscribe(INBOX)
            await t.requests.subscribe(ITEMS_CHANGED, {"scope": "REQUESTED"})
            await t.events.subscribe(ITEM_EVENTS, {"itemId": first})
        await wait_subscribed(hub, 6)

        # the same users act in both tenants, their changes interleaved
        for n in range(1, ITEMS):
            for t in two:
                t.items.append(await submit(services, t.name, "change-approval", f"{t.name} {n}"))

        # Each tenant in turn ends its streams with a change of its own, once every stream of
        # the tenant before has been pushed that tenant's last change: whatever of the first
        # tenant could reach a stream of the second has been handed out by then, and a stream
        # hands out in order, so it would be pushed before the second tenant's own last change.
        async def settle(t: Tenant, approving: bool, comment: str) -> None:
            first = global_id("WorkflowItem", t.items[0].id)
            if approving:
                await approve(services, t.name, t.items[0], "bob", "change-approver")
                await t.read_until("inbox", pushed_about(first, kind="LEFT"))
                await t.read_until("requests", pushed_about(first, state="APPROVED"))
            else:
                latest = await submit(services, t.name, "change-approval", f"{t.name} latest")
                t.items.append(latest)
                latest_id = global_id("WorkflowItem", latest.id)
                await t.read_until("inbox", pushed_about(latest_id, kind="ENTERED"))
                await t.read_until("requests", pushed_about(latest_id, kind="ENTERED"))
            await comment_services.add_comment(
                actor(t.name, "dave"),
                services,
                comment_services.AddCommentInput(body=comment, item_id=t.items[0].id),
            )
            await t.read_until("events", lambda m: m["action"].startswith("comment."))

        a, b = two
        await settle(a, True, "a: approved")
        await settle(b, True, "b: approved")
        await settle(a, False, "a: after b")
    finally:
        for t in two:
            for socket in t.sockets.values():
                await socket.close()

    for t in two:
        mine = t.item_ids()
        for name, messages in t.pushed.items():
            assert messages, (t.name, name)
            for message in messages:
                assert message["itemId"] in mine, (t.name, name, message)
                assert decode_cursor(message["cursor"], t.name) == message["seq"]
                if name != "events" and (message["kind"] != "LEFT" or message["item"]):
                    # read under the tenant's own scope, as the subscriber: the item is there
                    assert message["item"]["title"].startswith(t.name), (t.name, name, message)
        entered = {m["itemId"] for m in t.pushed["inbox"] if m["kind"] == "ENTERED"}
        assert entered == mine - {global_id("WorkflowItem", t.items[0].id)}


async def test_an_item_or_a_cursor_of_another_tenant_is_refused_under_row_level_security(
    unscoped, gql, services: ServiceContext, tenant: str
):
    url, _ = unscoped
    other = f"t{uuid.uuid4().hex[:12]}"
    await load_templates(actor(other, "admin", "admin"), services, DEMO_TEMPLATES)
    theirs = await submit(services, other, "change-approval", "theirs")
    their_cursor = (
        await GraphQLClient(gql.http, gql.settings, other).data(
            "query($id: ID!) { item(id: $id) { ... on WorkflowItem { eventCursor } } }",
            {"id": global_id("WorkflowItem", theirs.id)},
            as_user="dave",
        )
    )["item"]["eventCursor"]
    async with Socket(url, gql.token("dave")) as socket:
        for query, variables, code in (
            (ITEM_EVENTS, {"itemId": global_id("WorkflowItem", theirs.id)}, "NOT_FOUND"),
            (INBOX, {"after": their_cursor}, "INVALID_INPUT"),
            (ITEMS_CHANGED, {"scope": "REQUESTED", "after": their_cursor}, "INVALID_INPUT"),
        ):
            op = await socket.subscribe(query, variables)
            message = await socket.message()
            while message["type"] == "complete" and message["id"] != op:
                message = await socket.message()  # the end of the refusal before
            assert message["id"] == op
            payload = message["payload"]
            errors = payload if message["type"] == "error" else payload["errors"]
            assert errors[0]["extensions"]["code"] == code, message
