"""The reviewer inbox: filters, sorting, stable cursors, facets, node(id), tenant isolation, and
a constant number of statements per page."""

from __future__ import annotations

from datetime import timedelta

import pytest

from signoff.api import ids
from signoff.db import sql
from signoff.services import actions
from signoff.services import items as item_services
from tests.conftest import GraphQLClient, actor

PAYLOADS = {
    "change-approval": {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"},
    "exception-request": {"policy": "mfa", "justification": "legacy", "expires_on": "2027-01-01"},
    "partner-approval": {"partner": "Acme", "value_eur": 1000},
}

INBOX = """
query($filter: InboxFilter, $sort: InboxSort, $first: Int, $after: String) {
  inbox(filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount
    edges { cursor dueAt overdue claim node { id title priority risk kind } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""

FACETS = """
query($filter: InboxFilter) {
  inbox(filter: $filter) {
    totalCount
    facets {
      states { value count } kinds { value count } risks { value count }
      overdue { value count } claim { value count }
    }
  }
}"""

BOB = {"as_user": "bob", "roles": ("change-approver",)}


async def submit(services, tenant, template, title, priority=0):
    return await item_services.submit_item(
        actor(tenant, "dave"),
        services,
        item_services.SubmitItemInput(
            template_key=template, title=title, payload=dict(PAYLOADS[template]), priority=priority
        ),
    )


def gid(view) -> str:
    return ids.encode("WorkflowItem", view.id)


async def titles(gql, variables=None, **who) -> list[str]:
    data = await gql.data(INBOX, variables or {}, **(who or BOB))
    return [e["node"]["title"] for e in data["inbox"]["edges"]]


@pytest.fixture
async def inbox_items(services, tenant, demo_templates):
    """Bob (a change approver, and a named security approver) has four items; a partner
    agreement for managers is not his."""
    return await submit_inbox_items(services, tenant)


async def submit_inbox_items(services, tenant):
    """Dave's five requests of the inbox tests, by key."""
    return {
        "deploy": await submit(services, tenant, "change-approval", "Deploy payments", 1),
        "schema": await submit(services, tenant, "change-approval", "Migrate schema", 5),
        "dns": await submit(services, tenant, "change-approval", "Switch DNS", 3),
        "mfa": await submit(services, tenant, "exception-request", "MFA exception", 2),
        "acme": await submit(services, tenant, "partner-approval", "Acme agreement", 9),
    }


def facet(data, name) -> dict[str, int]:
    return {f["value"]: f["count"] for f in data["inbox"]["facets"][name]}


async def test_the_inbox_holds_what_the_caller_can_act_on(gql, inbox_items):
    assert sorted(await titles(gql)) == [
        "Deploy payments",
        "MFA exception",
        "Migrate schema",
        "Switch DNS",
    ]
    # Through a group, a role, or by name: each sees only their own.
    assert await titles(gql, as_user="mona", roles=("manager",)) == ["Acme agreement"]
    assert await titles(gql, as_user="carol") == ["MFA exception"]
    assert await titles(gql, as_user="eve", roles=("auditor",)) == []


async def test_filters(gql, inbox_items, clock):
    assert await titles(gql, {"filter": {"kinds": ["EXCEPTION_REQUEST"]}}) == ["MFA exception"]
    assert await titles(gql, {"filter": {"risks": ["HIGH"]}}) == ["MFA exception"]
    assert sorted(await titles(gql, {"filter": {"priorityMin": 3}})) == [
        "Migrate schema",
        "Switch DNS",
    ]
    assert await titles(gql, {"filter": {"text": "dns"}}) == ["Switch DNS"]
    assert await titles(gql, {"filter": {"text": "%"}}) == []  # a literal, not a wildcard
    assert await titles(gql, {"filter": {"templateKeys": ["exception-request"]}}) == [
        "MFA exception"
    ]
    assert len(await titles(gql, {"filter": {"states": ["PENDING"]}})) == 4
    assert await titles(gql, {"filter": {"states": ["APPROVED"]}}) == []

    # The change approvals are due in 8 hours, the exception in 2 days.
    soon = (clock.now() + timedelta(hours=9)).isoformat()
    assert len(await titles(gql, {"filter": {"dueBefore": soon}})) == 3
    assert await titles(gql, {"filter": {"dueAfter": soon}}) == ["MFA exception"]
    assert await titles(gql, {"filter": {"overdue": True}}) == []
    clock.advance(timedelta(hours=9))
    assert len(await titles(gql, {"filter": {"overdue": True}})) == 3
    assert await titles(gql, {"filter": {"overdue": False}}) == ["MFA exception"]


async def test_claim_filter_and_facets(gql, services, tenant, inbox_items, clock):
    step = inbox_items["dns"].steps[0].id
    await actions.claim_step(
        actor(tenant, "bob", "change-approver"), services, step, actions.Guards()
    )
    assert await titles(gql, {"filter": {"claim": "MINE"}}) == ["Switch DNS"]
    assert len(await titles(gql, {"filter": {"claim": "UNCLAIMED"}})) == 3
    # Another change approver sees it claimed by someone else.
    other = {"as_user": "olga", "roles": ("change-approver",)}
    assert await titles(gql, {"filter": {"claim": "OTHERS"}}, **other) == ["Switch DNS"]

    clock.advance(timedelta(hours=9))
    data = await gql.data(FACETS, **BOB)
    assert data["inbox"]["totalCount"] == 4
    assert facet(data, "states") == {"PENDING": 4}
    assert facet(data, "kinds") == {"APPROVAL": 3, "EXCEPTION_REQUEST": 1}
    assert facet(data, "risks") == {"MEDIUM": 3, "HIGH": 1}
    assert facet(data, "overdue") == {"true": 3, "false": 1}
    assert facet(data, "claim") == {"MINE": 1, "UNCLAIMED": 3}
    # Facets count what the filter selects.
    data = await gql.data(FACETS, {"filter": {"kinds": ["APPROVAL"]}}, **BOB)
    assert data["inbox"]["totalCount"] == 3
    assert facet(data, "risks") == {"MEDIUM": 3}


async def test_sorting(gql, inbox_items):
    by_priority = await titles(gql, {"sort": {"field": "PRIORITY"}})
    assert by_priority == ["Migrate schema", "Switch DNS", "MFA exception", "Deploy payments"]
    ascending = await titles(gql, {"sort": {"field": "PRIORITY", "direction": "ASC"}})
    assert ascending == list(reversed(by_priority))
    assert (await titles(gql, {"sort": {"field": "RISK"}}))[0] == "MFA exception"
    # Default: soonest SLA first; the exception (2 days) after the changes (8 hours).
    assert (await titles(gql))[-1] == "MFA exception"
    data = await gql.data(INBOX, {}, **BOB)
    dues = [e["dueAt"] for e in data["inbox"]["edges"]]
    assert dues == sorted(dues)


async def test_cursor_pages_are_stable_across_inserts(gql, services, tenant, demo_templates):
    for priority in range(10, 0, -1):
        await submit(services, tenant, "change-approval", f"p{priority}", priority)
    sort = {"field": "PRIORITY"}
    first = (await gql.data(INBOX, {"sort": sort, "first": 4}, **BOB))["inbox"]
    assert [e["node"]["title"] for e in first["edges"]] == ["p10", "p9", "p8", "p7"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False

    # New items land before and after the cursor; the next page starts where the last ended.
    await submit(services, tenant, "change-approval", "p20", 20)
    await submit(services, tenant, "change-approval", "p6.5", 6)
    after = first["pageInfo"]["endCursor"]
    second = (await gql.data(INBOX, {"sort": sort, "first": 4, "after": after}, **BOB))["inbox"]
    got = [e["node"]["title"] for e in second["edges"]]
    assert got[0] in ("p6", "p6.5") and set(got[:2]) == {"p6", "p6.5"}
    assert got[2:] == ["p5", "p4"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    third = (
        await gql.data(
            INBOX, {"sort": sort, "first": 10, "after": second["pageInfo"]["endCursor"]}, **BOB
        )
    )["inbox"]
    assert [e["node"]["title"] for e in third["edges"]] == ["p3", "p2", "p1"]
    assert third["pageInfo"]["hasNextPage"] is False
    assert third["totalCount"] == 12


async def test_page_size_and_cursor_are_checked(gql, settings, inbox_items):
    too_many = await gql.run(
        INBOX, {"first": settings.max_page_size + 1}, token=gql.token("bob", "change-approver")
    )
    assert too_many.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    page = await gql.data(INBOX, {"first": 1}, **BOB)
    cursor = page["inbox"]["pageInfo"]["endCursor"]
    wrong_order = await gql.run(
        INBOX,
        {"first": 1, "after": cursor, "sort": {"field": "CREATED"}},
        token=gql.token("bob", "change-approver"),
    )
    assert wrong_order.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


NODE = """
query($id: ID!) {
  node(id: $id) {
    id
    __typename
    ... on WorkflowItem { title }
    ... on Step { key }
    ... on Template { key }
  }
}"""


async def test_node_resolves_global_ids_with_permissions(gql, inbox_items, demo_templates):
    deploy = inbox_items["deploy"]
    item = (await gql.data(NODE, {"id": gid(deploy)}, **BOB))["node"]
    assert item == {"id": gid(deploy), "__typename": "WorkflowItem", "title": "Deploy payments"}
    step_id = ids.encode("Step", deploy.steps[0].id)
    step = (await gql.data(NODE, {"id": step_id}, **BOB))["node"]
    assert step == {"id": step_id, "__typename": "Step", "key": "review"}
    template_id = ids.encode("Template", demo_templates[0].id)
    template = (await gql.data(NODE, {"id": template_id}, **BOB))["node"]
    assert template["__typename"] == "Template"
    # Not an assignee, nor the requester: nothing is revealed.
    for hidden in (gid(deploy), step_id):
        assert (await gql.data(NODE, {"id": hidden}, as_user="eve"))["node"] is None


async def test_nothing_crosses_a_tenant(gql, client, settings, inbox_items):
    other = GraphQLClient(client, settings, "another-tenant")
    assert await titles(other) == []
    assert (await other.data(NODE, {"id": gid(inbox_items["deploy"])}, **BOB))["node"] is None


PAGE = """
query($first: Int!) {
  inbox(first: $first) {
    totalCount
    facets { states { value count } claim { value count } }
    edges {
      node {
        id title
        lastDecision { actorId outcome }
        steps { key stepState assignees { users groups roles } decisions { actorId outcome } }
      }
    }
  }
}"""


async def test_a_page_costs_the_same_number_of_statements_whatever_its_size(
    gql, services, tenant, demo_templates, monkeypatch
):
    views = [
        await submit(services, tenant, "exception-request", f"exception {n}") for n in range(50)
    ]
    for view in views[::5]:  # some decisions to load: alice's votes keep them in bob's inbox
        step = view.steps[0].id
        await item_services.decide_step(
            actor(tenant, "alice"),
            services,
            item_services.DecideStepInput(
                step_id=step, outcome=item_services.Outcome.APPROVE, reason="fine by me"
            ),
        )

    statements: list[str] = []
    real_fetch = sql.fetch

    async def counting_fetch(statement, *args):
        statements.append(statement)
        return await real_fetch(statement, *args)

    monkeypatch.setattr(sql, "fetch", counting_fetch)

    async def cost(first: int) -> tuple[int, list]:
        statements.clear()
        data = await gql.data(PAGE, {"first": first}, as_user="bob")
        edges = data["inbox"]["edges"]
        assert len(edges) == first
        return len(statements), edges

    (small, _), (large, edges) = await cost(10), await cost(50)
    assert small == large
    assert large == 6  # event head, page, steps, templates, decisions, facets
    decided = [e["node"] for e in edges if e["node"]["lastDecision"] is not None]
    assert len(decided) == 10
    assert all(n["lastDecision"] == {"actorId": "alice", "outcome": "APPROVE"} for n in decided)
    assert all(
        n["steps"][0]["decisions"] == [{"actorId": "alice", "outcome": "APPROVE"}] for n in decided
    )
