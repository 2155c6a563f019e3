"""A pushed inbox change carries the claim state of the caller's steps, the same as the inbox
query's `InboxEdge.claim` read right after it: a live row and a loaded row say the same thing.

bob and carol hold the step by role only (no user names them), so the fan-out would judge
them alike if a claim did not name its claimer."""

from __future__ import annotations

from typing import Any

from signoff.services import actions
from signoff.services.uow import Guards
from tests.conftest import actor
from tests.realtime.conftest import Socket, global_id, submit, wait_subscribed

INBOX_CLAIMS = """
subscription($after: String) {
  inboxChanged(after: $after) {
    ... on InboxChange { kind reason itemId claim }
    ... on ResyncRequired { __typename cursor seq }
  }
}"""
EDGES = "{ inbox { edges { claim node { id } } } }"
APPROVERS = ("bob", "carol")


async def test_a_pushed_change_carries_each_callers_claim_as_the_inbox_reads_it(
    ws_url: str, hub: Any, gql: Any, services: Any, tenant: str, demo_templates: Any
) -> None:
    sockets = {u: Socket(ws_url, gql.token(u, "change-approver")) for u in APPROVERS}
    for socket in sockets.values():
        await socket.open()
    try:
        for socket in sockets.values():
            await socket.subscribe(INBOX_CLAIMS)
        await wait_subscribed(hub, len(sockets))
        view = await submit(services, tenant, "change-approval", "Deploy payments")
        item_id = global_id("WorkflowItem", view.id)
        step_id = next(s.id for s in view.steps if s.state == "active")

        async def pushed_and_read(kind: str, reason: str) -> dict[str, str]:
            """Each approver's pushed claim, checked against their inbox read after it."""
            claims = {}
            for user, socket in sockets.items():
                change = (await socket.next())["inboxChanged"]
                assert (change["kind"], change["reason"], change["itemId"]) == (
                    kind,
                    reason,
                    item_id,
                )
                edges = (await gql.data(EDGES, as_user=user, roles=("change-approver",)))["inbox"]
                read = {e["node"]["id"]: e["claim"] for e in edges["edges"]}
                assert change["claim"] == read[item_id], user
                claims[user] = change["claim"]
            return claims

        assert await pushed_and_read("ENTERED", "ASSIGNED") == {
            "bob": "UNCLAIMED",
            "carol": "UNCLAIMED",
        }
        bob = actor(tenant, "bob", "change-approver")
        await actions.claim_step(bob, services, step_id, Guards())
        assert await pushed_and_read("UPDATED", "CLAIMED") == {"bob": "MINE", "carol": "OTHERS"}
        await actions.unclaim_step(bob, services, step_id, Guards())
        assert await pushed_and_read("UPDATED", "UNCLAIMED") == {
            "bob": "UNCLAIMED",
            "carol": "UNCLAIMED",
        }

        # an item that leaves the inbox has no claim there
        await actions.cancel_item(actor(tenant, "dave"), services, view.id, "not needed", Guards())
        for socket in sockets.values():
            change = (await socket.next())["inboxChanged"]
            assert (change["kind"], change["claim"]) == ("LEFT", None)
    finally:
        for socket in sockets.values():
            await socket.close()
