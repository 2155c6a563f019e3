"""Streams of one selection share one executor, which holds no socket's context: each pushed
result is still run in the context of a stream it is pushed to, so what a field resolves for
the caller (a payload redacted for their roles) is theirs, whoever subscribed first or left."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from signoff.api.live_fanout import CONSUMER
from signoff.services import redaction as redaction_services
from tests.conftest import actor, wait_for
from tests.realtime.conftest import TIMEOUT, Socket, submit, wait_subscribed

SECRET = "redeploy"  # the demo payload's `rollback_plan` (tests.realtime.conftest.PAYLOADS)
INBOX_PAYLOAD = """
subscription($after: String) {
  inboxChanged(after: $after) {
    ... on InboxChange { seq item { title payload } }
    ... on ResyncRequired { cursor }
  }
}"""


async def _pushed(socket: Socket) -> dict[str, Any]:
    item: dict[str, Any] = (await socket.next())["inboxChanged"]["item"]
    return item


async def test_one_executor_per_selection_and_each_stream_its_own_result(
    ws_url, hub, gql, services, tenant, demo_templates
):
    await redaction_services.set_rule(
        actor(tenant, "ada", "admin"),
        services,
        redaction_services.SetRuleInput(
            path="rollback_plan", visible_to=("auditor",), template_key="change-approval"
        ),
    )
    # The one who may see the field subscribes first: the shared executor is made from hers.
    cara = Socket(ws_url, gql.token("cara", "change-approver", "auditor"))
    bob = Socket(ws_url, gql.token("bob", "change-approver"))
    erin = Socket(ws_url, gql.token("erin", "change-approver", "auditor"))
    try:
        await cara.open()
        await cara.subscribe(INBOX_PAYLOAD)
        await wait_subscribed(hub, 1)
        await bob.open()
        await bob.subscribe(INBOX_PAYLOAD, {"after": None})
        await wait_subscribed(hub, 2)
        fanout = hub.consumer(tenant, CONSUMER, lambda: pytest.fail("no fan-out"))
        [shared] = {id(s.executor) for s in fanout.streams}
        assert len(fanout.executors) == 1
        executor = next(iter(fanout.streams)).executor
        assert id(executor) == shared
        # It holds no socket: no context, no hand-over, helpers bound to itself.
        assert executor.context_value is None and executor.root_value is None
        assert executor.async_helpers.gather.__self__ is executor
        assert all(s.context is not None for s in fanout.streams)

        await submit(services, tenant, "change-approval", "one")
        seen_by_cara, seen_by_bob = await _pushed(cara), await _pushed(bob)
        assert seen_by_cara["payload"]["rollback_plan"] == SECRET
        assert "rollback_plan" not in seen_by_bob["payload"]
        assert seen_by_bob["title"] == seen_by_cara["title"] == "one"

        # The first subscriber leaves; the others are still served in their own contexts.
        await cara.close()
        await wait_for(lambda: hub.subscriber_count == 1, timeout=TIMEOUT)
        await erin.open()
        await erin.subscribe(INBOX_PAYLOAD)
        await wait_subscribed(hub, 2)
        assert len({id(s.executor) for s in fanout.streams}) == 1
        await submit(services, tenant, "change-approval", "two")
        seen_by_bob, seen_by_erin = await _pushed(bob), await _pushed(erin)
        assert "rollback_plan" not in seen_by_bob["payload"]
        assert seen_by_erin["payload"]["rollback_plan"] == SECRET
    finally:
        for socket in (cara, bob, erin):
            await socket.close()
    await wait_for(lambda: hub.subscriber_count == 0, timeout=TIMEOUT)
    del executor
    gc.collect()
    assert not fanout.executors  # let go with the last stream of the selection
