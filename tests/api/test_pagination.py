"""Cursor connections page by keyset, forwards (`first`/`after`) and backwards
(`last`/`before`): over random data and random page sizes, every row comes exactly once, in
the list's order, whichever way and from wherever a client pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from signoff.db import audit as audit_repo
from signoff.db import notifications as notification_repo
from signoff.db import tenants as tenant_repo
from signoff.services import comments as comment_services
from signoff.services import items as item_services
from signoff.services.templates import load_templates
from tests.conftest import DEMO_TEMPLATES, GraphQLClient, actor

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
ARGS = "first: $first, after: $after, last: $last, before: $before"
VARS = "$first: Int, $after: String, $last: Int, $before: String"
DEAD_LETTERS = f"""query({VARS}) {{ deadLetters({ARGS}) {{
  edges {{ cursor node {{ id }} }} nodes {{ id }} {PAGE_INFO} }} }}"""
INBOX = f"""query({VARS}) {{ inbox(sort: {{field: PRIORITY}}, {ARGS}) {{
  edges {{ cursor node {{ id }} }} {PAGE_INFO} }} }}"""
ITEMS = f"""query({VARS}) {{ items(scope: REQUESTED, sort: {{field: PRIORITY}}, {ARGS}) {{
  edges {{ cursor node {{ id }} }} {PAGE_INFO} }} }}"""
PRECEDENT = f"""query($id: ID!, {VARS}) {{ precedent(itemId: $id, {ARGS}) {{
  edges {{ cursor node {{ item {{ id }} matchedBy }} }}
  nodes {{ item {{ id }} }} {PAGE_INFO} }} }}"""
AUDIT = f"""query($id: ID!, {VARS}) {{ item(id: $id) {{ auditEvents({ARGS}) {{
  edges {{ cursor node {{ seq action }} }} {PAGE_INFO} }} }} }}"""
ADMIN = {"as_user": "root", "roles": ("admin",)}
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


class Pager:
    """Walks one connection page by page, checking each page's information."""

    def __init__(
        self,
        gql: GraphQLClient,
        query: str,
        field: str,
        variables: dict[str, Any] | None = None,
        **who: Any,
    ) -> None:
        self.gql, self.query, self.field, self.who = gql, query, field, who
        self.variables = variables or {}

    @staticmethod
    def id_of(node: dict[str, Any]) -> str:
        if "item" in node:
            return str(node["item"]["id"])
        return str(node.get("id", node.get("seq")))

    async def page(self, **args: Any) -> dict[str, Any]:
        variables = {
            "first": None, "after": None, "last": None, "before": None, **self.variables, **args
        }  # fmt: skip
        data = await self.gql.data(self.query, variables, **self.who)
        found: dict[str, Any] = data
        for key in self.field.split("."):
            found = found[key]
        return found

    async def walk(
        self, sizes: list[int], *, backwards: bool = False, cursor: str | None = None
    ) -> list[tuple[str, str]]:
        """(cursor, id) of every row from `cursor` on (or back), in the list's order."""
        seen: list[tuple[str, str]] = []
        for turn in range(10_000):
            size = sizes[turn % len(sizes)]
            if backwards:
                page = await self.page(last=size, before=cursor)
            else:
                page = await self.page(first=size, after=cursor)
            rows = [(e["cursor"], self.id_of(e["node"])) for e in page["edges"]]
            info = page["pageInfo"]
            assert len(rows) <= size
            assert info["startCursor"] == (rows[0][0] if rows else None)
            assert info["endCursor"] == (rows[-1][0] if rows else None)
            if "nodes" in page:
                assert [self.id_of(n) for n in page["nodes"]] == [r[1] for r in rows]
            more = info["hasPreviousPage"] if backwards else info["hasNextPage"]
            # a page with more beyond it is full; one that says it was asked from a cursor
            # was asked from one
            assert not more or len(rows) == size
            assert (info["hasNextPage"] if backwards else info["hasPreviousPage"]) == (
                cursor is not None
            )
            seen = rows + seen if backwards else seen + rows
            if not more:
                return seen
            cursor = info["startCursor"] if backwards else info["endCursor"]
        raise AssertionError("paging did not end")


async def check_every_row_once_in_order(
    pager: Pager, expected: list[str], sizes: list[int], middle: int
) -> None:
    forwards = await pager.walk(sizes)
    assert [row_id for _, row_id in forwards] == expected
    backwards = await pager.walk(sizes[::-1], backwards=True)
    assert [row_id for _, row_id in backwards] == expected
    if expected:
        # from a cursor in the middle: back to the start, and on to the end
        k = middle % len(expected)
        cursor = forwards[k][0]
        before = await pager.walk(sizes, backwards=True, cursor=cursor)
        after = await pager.walk(sizes, cursor=cursor)
        assert [row_id for _, row_id in before] == expected[:k]
        assert [row_id for _, row_id in after] == expected[k + 1 :]


sizes = st.lists(st.integers(1, 7), min_size=1, max_size=4)
SETTINGS = hsettings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def insert_dead_letter(tenant: str, n: int, at: datetime, kind: str = "assignment") -> int:
    """A dead webhook delivery of a `kind` notification to user `u{n}`, last changed `at`."""
    row = await notification_repo.insert_delivery(
        {
            "tenant_id": tenant,
            "event_seq": 1,
            "event_kind": kind,
            "channel": "webhook",
            "recipient_id": f"u{n}",
            "address": "http://127.0.0.1:9/hook",
            "idempotency_key": f"{tenant}-{n}",
            "status": "dead",
            "priority": "normal",
            "max_attempts": 1,
            "next_attempt_at": at,
            "payload": {},
            "now": at,
        }
    )
    assert row is not None
    return int(row["id"])


@SETTINGS
@given(changed=st.lists(st.integers(0, 5), max_size=25), sizes=sizes, middle=st.integers(0, 100))
async def test_dead_letters_page_both_ways_over_ties(client, settings, changed, sizes, middle):
    tenant = f"p{uuid.uuid4().hex[:12]}"
    await tenant_repo.ensure_tenant(tenant)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for n, minutes in enumerate(changed):  # few distinct times: many ties on the first key
        at = start + timedelta(minutes=minutes)
        rows.append((at, await insert_dead_letter(tenant, n, at)))
    # most recently changed first, then the newer id
    expected = [ids.encode("NotificationDelivery", i) for _, i in sorted(rows, reverse=True)]
    gql = GraphQLClient(client, settings, tenant)
    pager = Pager(gql, DEAD_LETTERS, "deadLetters", **ADMIN)
    await check_every_row_once_in_order(pager, expected, sizes, middle)


@SETTINGS
@given(priorities=st.lists(st.integers(0, 3), max_size=15), sizes=sizes, middle=st.integers(0, 100))
async def test_inbox_and_items_page_both_ways_over_ties(
    client, settings, services, priorities, sizes, middle
):
    tenant = f"p{uuid.uuid4().hex[:12]}"
    await load_templates(actor(tenant, "admin", "admin"), services, DEMO_TEMPLATES)
    keyed = []
    for n, priority in enumerate(priorities):
        view = await item_services.submit_item(
            actor(tenant, "dave"),
            services,
            item_services.SubmitItemInput(
                template_key="change-approval", title=f"i{n}", payload=PAYLOAD, priority=priority
            ),
        )
        keyed.append((priority, view.id))
    # PRIORITY is highest first; ties by item id, the same direction
    expected = [ids.encode("WorkflowItem", i) for _, i in sorted(keyed, reverse=True)]
    gql = GraphQLClient(client, settings, tenant)
    inbox = Pager(gql, INBOX, "inbox", as_user="bob", roles=("change-approver",))
    await check_every_row_once_in_order(inbox, expected, sizes, middle)
    mine = Pager(gql, ITEMS, "items", as_user="dave")
    await check_every_row_once_in_order(mine, expected, sizes, middle)


@SETTINGS
@given(
    items=st.lists(st.tuples(st.integers(0, 1), st.booleans()), max_size=10),
    sizes=sizes,
    middle=st.integers(0, 100),
)
async def test_precedent_pages_both_ways_over_ties_skipping_what_the_reader_may_not_read(
    client, settings, services, clock, items, sizes, middle
):
    tenant = f"p{uuid.uuid4().hex[:12]}"
    await load_templates(actor(tenant, "admin", "admin"), services, DEMO_TEMPLATES)
    bob = actor(tenant, "bob", "change-approver")
    keyed = []
    for n, (minutes, mine) in enumerate(items):  # few distinct times: many ties
        clock.advance(timedelta(minutes=minutes))
        view = await item_services.submit_item(
            actor(tenant, "dave" if mine else "erin"),
            services,
            item_services.SubmitItemInput(
                template_key="change-approval", title=f"i{n}", payload=PAYLOAD
            ),
        )
        step = view.steps[0]
        await item_services.decide_step(
            bob, services, item_services.DecideStepInput(step.id, item_services.Outcome.APPROVE)
        )
        if mine:  # dave reads only his own items: erin's are skipped, not counted
            keyed.append((view.item.created_at, view.id))
    target = await item_services.submit_item(
        actor(tenant, "dave"),
        services,
        item_services.SubmitItemInput(template_key="change-approval", title="t", payload=PAYLOAD),
    )
    expected = [ids.encode("WorkflowItem", i) for _, i in sorted(keyed, reverse=True)]
    gql = GraphQLClient(client, settings, tenant)
    variables = {"id": ids.encode("WorkflowItem", target.id)}
    pager = Pager(gql, PRECEDENT, "precedent", variables, as_user="dave")
    await check_every_row_once_in_order(pager, expected, sizes, middle)


async def test_audit_events_page_both_ways(gql, services, tenant, demo_templates):
    view = await item_services.submit_item(
        actor(tenant, "dave"),
        services,
        item_services.SubmitItemInput(template_key="change-approval", title="t", payload=PAYLOAD),
    )
    for n in range(9):
        await comment_services.add_comment(
            actor(tenant, "dave"),
            services,
            comment_services.AddCommentInput(body=f"note {n}", item_id=view.id),
        )
    stored = [e["seq"] for e in await audit_repo.events_for_item(tenant, view.id)]
    assert len(stored) >= 10
    item_id = ids.encode("WorkflowItem", view.id)
    pager = Pager(gql, AUDIT, "item.auditEvents", {"id": item_id}, as_user="dave")
    expected = [str(seq) for seq in stored]
    await check_every_row_once_in_order(pager, expected, [3, 1, 4], middle=4)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"first": 2, "last": 2}, "last"),
        ({"after": "x", "before": "y"}, "last"),
        ({"first": 2, "before": "y"}, "last"),
    ],
)
async def test_one_direction_at_a_time(gql, args, field):
    variables = {"first": None, "after": None, "last": None, "before": None, **args}
    body = (await gql.run(DEAD_LETTERS, variables, token=gql.token("root", "admin"))).json()
    assert body["data"] is None
    extensions = body["errors"][0]["extensions"]
    assert (extensions["code"], extensions["field"]) == ("INVALID_INPUT", field)


async def test_a_cursor_of_another_list_is_invalid_input(gql, services, tenant, demo_templates):
    await item_services.submit_item(
        actor(tenant, "dave"),
        services,
        item_services.SubmitItemInput(template_key="change-approval", title="t", payload=PAYLOAD),
    )
    inbox = Pager(gql, INBOX, "inbox", as_user="bob", roles=("change-approver",))
    cursor = (await inbox.page(first=1))["pageInfo"]["endCursor"]
    for before in (cursor, "bm90IGEgY3Vyc29y", "WyJEZWFkTGV0dGVyIiwiMjAyNiIsLTFd"):
        variables = {"first": None, "after": None, "last": 2, "before": before}
        body = (await gql.run(DEAD_LETTERS, variables, token=gql.token("root", "admin"))).json()
        extensions = body["errors"][0]["extensions"]
        assert (extensions["code"], extensions["field"]) == ("INVALID_INPUT", "before")
