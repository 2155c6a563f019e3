"""A live stream follows its socket's token: after a refresh (a `ping` carrying a new token,
`api/ws_sessions.py`) the roles and groups of the new token decide what is pushed next, as
docs/realtime.md says, for a stream judged in a cohort with others and alone."""

from __future__ import annotations

import json
from typing import Any

from tests.realtime.conftest import INBOX, Socket, submit, wait_subscribed


async def _title(socket: Socket) -> str:
    title: str = (await socket.next())["inboxChanged"]["item"]["title"]
    return title


async def _refresh(socket: Socket, token: str) -> None:
    await socket.ws.send(
        json.dumps({"type": "ping", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert (await socket.message())["type"] == "pong"


async def test_a_refreshed_tokens_roles_decide_what_is_pushed_next(
    ws_url: str, hub: Any, gql: Any, services: Any, tenant: str, demo_templates: Any
) -> None:
    async with (
        Socket(ws_url, gql.token("bob", "change-approver")) as bob,
        Socket(ws_url, gql.token("carol", "change-approver")) as carol,
        Socket(ws_url, gql.token("erin")) as erin,
    ):
        for socket in (bob, carol, erin):
            await socket.subscribe(INBOX)
        await wait_subscribed(hub, 3)
        await submit(services, tenant, "change-approval", "one")
        assert await _title(bob) == await _title(carol) == "one"

        # bob loses the role, erin gains it: from the next event on, their inboxes follow
        await _refresh(bob, gql.token("bob"))
        await _refresh(erin, gql.token("erin", "change-approver"))
        await submit(services, tenant, "change-approval", "two")
        assert await _title(carol) == await _title(erin) == "two"
        # the next thing bob is pushed is an item that names him by user, not "two"
        await submit(services, tenant, "exception-request", "three")
        assert await _title(bob) == "three"
