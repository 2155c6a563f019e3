"""Live subscriptions over a real websocket: who gets what, replay after a reconnect."""

from __future__ import annotations

import pytest

from signoff.api.event_cursors import encode_cursor
from signoff.services import actions
from tests.conftest import actor, wait_for
from tests.realtime.conftest import (
    INBOX,
    ITEM_EVENTS,
    RECONNECT_TEST_BOUND,
    TIMEOUT,
    Socket,
    approve,
    global_id,
    submit,
    wait_subscribed,
)

INBOX_QUERY = "{ inbox { totalCount edges { node { id } } } }"


async def test_an_assignment_is_pushed_to_the_assignee_and_nobody_else(
    ws_url, hub, gql, services, tenant, demo_templates
):
    bob = Socket(ws_url, gql.token("bob", "change-approver"))
    eve = Socket(ws_url, gql.token("eve", "manager"))
    async with bob, eve:
        await bob.subscribe(INBOX)
        await eve.subscribe(INBOX)
        await wait_subscribed(hub, 2)

        change = await submit(services, tenant, "change-approval", "Deploy payments")
        pushed = (await bob.next())["inboxChanged"]
        assert pushed["kind"] == "ENTERED"
        assert pushed["reason"] == "ASSIGNED"
        assert pushed["action"] == "step.activate"
        assert pushed["itemId"] == global_id("WorkflowItem", change.id)
        assert pushed["item"]["title"] == "Deploy payments"
        assert pushed["item"]["steps"] == [{"key": "review", "stepState": "ACTIVE"}]

        # Eve is no change approver: the first thing she receives is her own assignment, which
        # was committed after bob's, so she never received bob's.
        partner = await submit(services, tenant, "partner-approval", "Acme")
        first_for_eve = (await eve.next())["inboxChanged"]
        assert first_for_eve["itemId"] == global_id("WorkflowItem", partner.id)
        assert first_for_eve["kind"] == "ENTERED"
        assert first_for_eve["seq"] > pushed["seq"]


async def test_a_decision_removes_the_item_from_every_other_quorum_members_inbox(
    ws_url, hub, gql, services, tenant, demo_templates
):
    # exception-request: alice, bob and carol; two of three must approve.
    sockets = {u: Socket(ws_url, gql.token(u)) for u in ("alice", "bob", "carol")}
    for socket in sockets.values():
        await socket.open()
    try:
        for socket in sockets.values():
            await socket.subscribe(INBOX)
        await wait_subscribed(hub, 3)
        view = await submit(services, tenant, "exception-request", "MFA exception")
        item_id = global_id("WorkflowItem", view.id)
        for socket in sockets.values():
            entered = (await socket.next())["inboxChanged"]
            assert (entered["kind"], entered["itemId"]) == ("ENTERED", item_id)

        view = await approve(services, tenant, view, "alice")
        # alice has filled her seat: the item leaves her inbox; the others see a vote.
        left = (await sockets["alice"].next())["inboxChanged"]
        assert (left["kind"], left["reason"], left["action"]) == ("LEFT", "DECIDED", "step.vote")
        for user in ("bob", "carol"):
            updated = (await sockets[user].next())["inboxChanged"]
            assert (updated["kind"], updated["reason"]) == ("UPDATED", "DECIDED")

        await approve(services, tenant, view, "bob")
        for user in ("bob", "carol"):
            gone = (await sockets[user].next())["inboxChanged"]
            assert (gone["kind"], gone["reason"], gone["action"]) == (
                "LEFT",
                "DECIDED",
                "step.approve",
            )
            assert gone["item"]["state"] == "APPROVED"

        # One LEFT per member (step and item both closed in that transaction); the next
        # thing carol hears about is a new item.
        second = await submit(services, tenant, "exception-request", "Second exception")
        nxt = (await sockets["carol"].next())["inboxChanged"]
        assert nxt["itemId"] == global_id("WorkflowItem", second.id)
        # And the inbox query agrees with what was pushed.
        for user in ("alice", "bob", "carol"):
            data = await gql.data(INBOX_QUERY, as_user=user)
            assert [e["node"]["id"] for e in data["inbox"]["edges"]] == [
                global_id("WorkflowItem", second.id)
            ]
    finally:
        for socket in sockets.values():
            await socket.close()


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_inbox_changes_missed_while_disconnected_are_replayed_in_order_then_live(
    ws_url, hub, gql, services, tenant, demo_templates
):
    token = gql.token("bob", "change-approver")
    async with Socket(ws_url, token) as socket:
        await socket.subscribe(INBOX)
        await wait_subscribed(hub, 1)
        first = await submit(services, tenant, "change-approval", "one")
        seen = (await socket.next())["inboxChanged"]
        assert seen["itemId"] == global_id("WorkflowItem", first.id)
    await hub_quiet(hub)

    missed = [await submit(services, tenant, "change-approval", f"missed {n}") for n in range(3)]

    async with Socket(ws_url, token) as socket:
        await socket.subscribe(INBOX, {"after": seen["cursor"]})
        replayed = [(await socket.next())["inboxChanged"] for _ in missed]
        assert [r["itemId"] for r in replayed] == [global_id("WorkflowItem", v.id) for v in missed]
        assert [r["seq"] for r in replayed] == sorted(r["seq"] for r in replayed)
        live = await submit(services, tenant, "change-approval", "live")
        pushed = (await socket.next())["inboxChanged"]
        assert pushed["itemId"] == global_id("WorkflowItem", live.id)


async def hub_quiet(hub):
    """Wait until the hub has let go of every subscription (its tasks ended)."""
    await wait_for(lambda: hub.subscriber_count == 0 and not hub.running_tasks(), timeout=TIMEOUT)


@pytest.mark.timeout(RECONNECT_TEST_BOUND)
async def test_item_events_resume_from_a_cursor_without_gaps(
    ws_url, hub, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    step_id = view.steps[0].id
    token = gql.token("bob", "change-approver")
    variables = {"itemId": global_id("WorkflowItem", view.id)}
    async with Socket(ws_url, token) as socket:
        await socket.subscribe(ITEM_EVENTS, variables)
        await wait_subscribed(hub, 1)
        await actions.claim_step(
            actor(tenant, "bob", "change-approver"), services, step_id, actions.Guards()
        )
        claimed = (await socket.next())["itemEvents"]
        assert claimed["action"] == "step.claim"
        assert claimed["stepId"] == global_id("Step", step_id)
    await hub_quiet(hub)

    await approve(services, tenant, view, "bob", "change-approver")

    async with Socket(ws_url, token) as socket:
        await socket.subscribe(ITEM_EVENTS, {**variables, "after": claimed["cursor"]})
        events = [(await socket.next())["itemEvents"] for _ in range(2)]
        assert [e["action"] for e in events] == ["step.approve", "item.approve"]
        assert [e["seq"] for e in events] == [claimed["seq"] + 1, claimed["seq"] + 2]


async def test_item_events_of_an_item_the_caller_cannot_read_are_refused(
    ws_url, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    async with Socket(ws_url, gql.token("eve", "manager")) as socket:
        op = await socket.subscribe(ITEM_EVENTS, {"itemId": global_id("WorkflowItem", view.id)})
        message = await socket.message()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_cursor_of_another_tenant_is_refused(ws_url, gql, settings, demo_templates):
    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        op = await socket.subscribe(INBOX, {"after": encode_cursor("someone-else", 5)})
        message = await socket.message()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
