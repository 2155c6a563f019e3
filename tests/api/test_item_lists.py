"""`items`: the caller's requests and decision history with the inbox's filters, sort, cursors
and facets; only the caller's own items, inside their tenant."""

from __future__ import annotations

import pytest

from signoff.services import items as item_services
from tests.api.test_inbox import submit_inbox_items
from tests.conftest import GraphQLClient, actor

ITEMS = """
query($scope: ItemScope!, $filter: ItemFilter, $sort: InboxSort, $first: Int, $after: String) {
  items(scope: $scope, filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount countsExact
    facets { states { value count } kinds { value count } risks { value count }
             overdue { value count } }
    edges { cursor dueAt overdue node { id title state } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


@pytest.fixture
async def inbox_items(services, tenant, demo_templates):
    """Dave's five requests: four for bob (a change approver), one for managers."""
    return await submit_inbox_items(services, tenant)


async def listed(gql, scope, variables=None, **who):
    data = await gql.data(ITEMS, {"scope": scope, **(variables or {})}, **who)
    return data["items"]


def titles(connection) -> list[str]:
    return [e["node"]["title"] for e in connection["edges"]]


async def test_my_requests_hold_what_i_submitted_in_every_state(gql, services, tenant, inbox_items):
    mine = await listed(gql, "REQUESTED", {"sort": {"field": "PRIORITY"}}, as_user="dave")
    assert titles(mine) == [
        "Acme agreement",
        "Migrate schema",
        "Switch DNS",
        "MFA exception",
        "Deploy payments",
    ]
    assert mine["totalCount"] == 5 and mine["countsExact"]
    # a decided or cancelled item stays among the requests, in its new state
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        item_services.DecideStepInput(
            step_id=inbox_items["dns"].steps[0].id, outcome=item_services.Outcome.APPROVE
        ),
    )
    approved = await listed(gql, "REQUESTED", {"filter": {"states": ["APPROVED"]}}, as_user="dave")
    assert titles(approved) == ["Switch DNS"]
    facets = (await listed(gql, "REQUESTED", as_user="dave"))["facets"]
    assert {f["value"]: f["count"] for f in facets["states"]} == {"APPROVED": 1, "PENDING": 4}
    # nobody else's requests
    assert titles(await listed(gql, "REQUESTED", as_user="bob", roles=("change-approver",))) == []


async def test_history_holds_what_i_decided(gql, services, tenant, inbox_items):
    bob = actor(tenant, "bob", "change-approver")
    for key in ("dns", "schema"):
        await item_services.decide_step(
            bob,
            services,
            item_services.DecideStepInput(
                step_id=inbox_items[key].steps[0].id,
                outcome=item_services.Outcome.REJECT,
                reason="not now",
            ),
        )
    history = await listed(gql, "DECIDED", {"sort": {"field": "PRIORITY"}}, as_user="bob")
    assert titles(history) == ["Migrate schema", "Switch DNS"]
    assert [e["node"]["state"] for e in history["edges"]] == ["REJECTED", "REJECTED"]
    assert titles(await listed(gql, "DECIDED", {"filter": {"text": "dns"}}, as_user="bob")) == [
        "Switch DNS"
    ]
    assert titles(await listed(gql, "DECIDED", as_user="dave")) == []


async def test_pages_follow_cursors(gql, inbox_items):
    first = await listed(
        gql, "REQUESTED", {"first": 2, "sort": {"field": "PRIORITY"}}, as_user="dave"
    )
    assert titles(first) == ["Acme agreement", "Migrate schema"]
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    rest = await listed(
        gql,
        "REQUESTED",
        {"first": 10, "sort": {"field": "PRIORITY"}, "after": first["pageInfo"]["endCursor"]},
        as_user="dave",
    )
    assert titles(rest) == ["Switch DNS", "MFA exception", "Deploy payments"]
    assert not rest["pageInfo"]["hasNextPage"] and rest["pageInfo"]["hasPreviousPage"]


async def test_nothing_crosses_a_tenant(client, settings, inbox_items):
    other = GraphQLClient(client, settings, "another-tenant")
    assert titles(await listed(other, "REQUESTED", as_user="dave")) == []


async def test_a_cursor_of_another_order_is_refused(gql, inbox_items):
    first = await listed(gql, "REQUESTED", {"first": 1}, as_user="dave")
    refused = await gql.run(
        ITEMS,
        {"scope": "REQUESTED", "after": first["pageInfo"]["endCursor"], "sort": {"field": "RISK"}},
        token=gql.token("dave"),
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
