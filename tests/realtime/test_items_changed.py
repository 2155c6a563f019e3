"""`itemsChanged(scope:, after:)`: a person's requests and history, live after the page's
event cursor. Load `items(scope:) { eventCursor }`, subscribe after it: every item of the
list is on the page or pushed (never both, never neither), others' items are never pushed,
and a change to an item in the list arrives as UPDATED with the item as it is now."""

from __future__ import annotations

import asyncio

from signoff.services import items as item_services
from tests.conftest import actor
from tests.realtime.conftest import Socket, approve, global_id, submit

ITEMS_PAGE = """query($scope: ItemScope!) { items(scope: $scope, first: 100) {
  eventCursor nodes { id } } }"""
ITEMS_CHANGED = """
subscription($scope: ItemScope!, $after: String) {
  itemsChanged(scope: $scope, after: $after) {
    __typename
    ... on ItemListChange { cursor seq kind action actorId itemId item { id title state } }
    ... on ResyncRequired { cursor seq }
  }
}"""


async def test_requests_load_then_subscribe_lose_nothing_and_show_no_one_elses(
    ws_url, gql, services, tenant, demo_templates
):
    """Items submitted while the page is read are on the page or pushed after its cursor,
    exactly once; another requester's items never reach the stream."""
    count = 10

    async def submitter() -> list[str]:
        made = []
        for n in range(count):
            view = await submit(services, tenant, "change-approval", f"mine {n}", user="dave")
            await submit(services, tenant, "change-approval", f"erin's {n}", user="erin")
            made.append(global_id("WorkflowItem", view.id))
            await asyncio.sleep(0)
        return made

    async def reader() -> dict:
        await asyncio.sleep(0)
        return (await gql.data(ITEMS_PAGE, {"scope": "REQUESTED"}, as_user="dave"))["items"]

    submitted, page = await asyncio.gather(submitter(), reader())
    on_page = {n["id"] for n in page["nodes"]}
    sentinel = global_id(
        "WorkflowItem", (await submit(services, tenant, "change-approval", "sentinel")).id
    )

    async with Socket(ws_url, gql.token("dave")) as socket:
        await socket.subscribe(ITEMS_CHANGED, {"scope": "REQUESTED", "after": page["eventCursor"]})
        entered: list[str] = []
        while True:
            change = (await socket.next())["itemsChanged"]
            assert change["__typename"] == "ItemListChange", change
            assert change["item"]["title"].startswith(("mine", "sentinel")), change
            if change["itemId"] == sentinel:
                assert change["kind"] == "ENTERED"
                break
            if change["kind"] == "ENTERED":
                entered.append(change["itemId"])

    assert len(entered) == len(set(entered)), "an item was pushed twice"
    assert not on_page & set(entered), "an item on the page was pushed again"
    assert on_page | set(entered) == set(submitted), "an item was lost"


async def test_a_decision_updates_the_request_and_enters_the_deciders_history(
    ws_url, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy ledger")
    item_id = global_id("WorkflowItem", view.id)
    requested = (await gql.data(ITEMS_PAGE, {"scope": "REQUESTED"}, as_user="dave"))["items"]
    history = (
        await gql.data(ITEMS_PAGE, {"scope": "DECIDED"}, as_user="bob", roles=("change-approver",))
    )["items"]
    assert [n["id"] for n in requested["nodes"]] == [item_id]
    assert history["nodes"] == []
    other = await submit(services, tenant, "change-approval", "Not decided by bob")

    async with (
        Socket(ws_url, gql.token("dave")) as dave,
        Socket(ws_url, gql.token("bob", "change-approver")) as bob,
    ):
        await dave.subscribe(
            ITEMS_CHANGED, {"scope": "REQUESTED", "after": requested["eventCursor"]}
        )
        await bob.subscribe(ITEMS_CHANGED, {"scope": "DECIDED", "after": history["eventCursor"]})
        await approve(services, tenant, view, "bob", "change-approver")
        # carol decides the other item: it never enters bob's history
        await item_services.decide_step(
            actor(tenant, "carol", "change-approver"),
            services,
            item_services.DecideStepInput(other.steps[0].id, item_services.Outcome.REJECT, "no"),
        )
        sentinel = await submit(services, tenant, "change-approval", "sentinel")
        await approve(services, tenant, sentinel, "bob", "change-approver")

        # dave: his other request entered, then his first request changed to APPROVED
        seen: dict[str, list[tuple[str, str]]] = {}
        while True:
            change = (await dave.next())["itemsChanged"]
            seen.setdefault(change["itemId"], []).append((change["kind"], change["item"]["state"]))
            if change["itemId"] == global_id("WorkflowItem", sentinel.id) and (
                change["item"]["state"] == "APPROVED"
            ):
                break
        assert ("UPDATED", "APPROVED") in seen[item_id]
        assert all(kind == "UPDATED" for kind, _ in seen[item_id])
        assert seen[global_id("WorkflowItem", other.id)][0][0] == "ENTERED"

        # bob: the item he approved entered his history, carol's decision did not reach him
        entered = []
        while True:
            change = (await bob.next())["itemsChanged"]
            assert change["itemId"] != global_id("WorkflowItem", other.id), change
            if change["kind"] == "ENTERED":
                entered.append(change["itemId"])
            if change["itemId"] == global_id("WorkflowItem", sentinel.id):
                break
        assert entered[0] == item_id
