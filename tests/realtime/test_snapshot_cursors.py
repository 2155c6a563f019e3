"""Nothing is lost between loading a page and subscribing: every rendered list returns the event
cursor of the snapshot it was read from, and subscribing after it delivers exactly the rest."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from signoff.api.event_cursors import decode_cursor
from signoff.db import feed, sql
from signoff.db.engine import ENGINE
from signoff.services import comments as comment_services
from tests.conftest import actor
from tests.realtime.conftest import (
    INBOX,
    ITEM_EVENTS,
    Socket,
    global_id,
    submit,
)

INBOX_PAGE = "{ inbox(first: 100) { eventCursor edges { node { id } } } }"
ITEM = "query($id: ID!) { item(id: $id) { id eventCursor } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on WorkflowItem { eventCursor } } }"
COMMENTS = "query($id: ID!) { comments(itemId: $id) { eventCursor edges { node { body } } } }"


async def test_an_item_submitted_between_page_load_and_subscribe_is_pushed(
    ws_url, gql, services, tenant, demo_templates
):
    before = await submit(services, tenant, "change-approval", "before the page")
    page = (await gql.data(INBOX_PAGE, as_user="bob", roles=("change-approver",)))["inbox"]
    assert [e["node"]["id"] for e in page["edges"]] == [global_id("WorkflowItem", before.id)]

    between = await submit(services, tenant, "change-approval", "between page and subscribe")

    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        await socket.subscribe(INBOX, {"after": page["eventCursor"]})
        pushed = (await socket.next())["inboxChanged"]
        assert (pushed["kind"], pushed["itemId"]) == (
            "ENTERED",
            global_id("WorkflowItem", between.id),
        )
        assert pushed["item"]["title"] == "between page and subscribe"


async def test_a_page_read_during_submissions_and_the_replay_after_its_cursor_partition_them(
    ws_url, gql, services, tenant, demo_templates
):
    """Items committed while the page is read are either on the page or pushed after its
    cursor, never both and never neither: the cursor is the page's own snapshot."""
    count = 12

    async def submitter() -> list[str]:
        made = []
        for n in range(count):
            view = await submit(services, tenant, "change-approval", f"racing {n}")
            made.append(global_id("WorkflowItem", view.id))
            await asyncio.sleep(0)
        return made

    async def reader() -> dict:
        await asyncio.sleep(0)
        data = await gql.data(INBOX_PAGE, as_user="bob", roles=("change-approver",))
        return data["inbox"]

    submitted, page = await asyncio.gather(submitter(), reader())
    on_page = {e["node"]["id"] for e in page["edges"]}
    sentinel = await submit(services, tenant, "change-approval", "sentinel")
    sentinel_id = global_id("WorkflowItem", sentinel.id)

    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        await socket.subscribe(INBOX, {"after": page["eventCursor"]})
        entered: list[str] = []
        while True:
            change = (await socket.next())["inboxChanged"]
            if change["itemId"] == sentinel_id:
                break
            assert change["kind"] == "ENTERED", change
            entered.append(change["itemId"])

    assert len(entered) == len(set(entered)), "an item was pushed twice"
    assert not on_page & set(entered), "an item on the page was pushed again"
    assert on_page | set(entered) == set(submitted), "an item was lost"


async def test_a_commit_between_reading_the_cursor_and_the_page_is_pushed_not_listed(
    ws_url, gql, services, tenant, demo_templates, monkeypatch
):
    """The narrowest race, made to happen: an item commits right after the page's cursor is
    read and before its rows are. It must not be on the page (else replay pushes it twice) and
    must be pushed after the cursor (else it is lost)."""
    read_head = feed.tenant_head
    committed: list[str] = []

    async def head_then_commit(tenant_id: str) -> int:
        head = await read_head(tenant_id)
        if not committed:
            # Another connection, outside the reader's transaction (a fresh context).
            made = asyncio.create_task(
                submit(services, tenant, "change-approval", "committed mid-read"),
                context=contextvars.Context(),
            )
            committed.append(global_id("WorkflowItem", (await made).id))
        return head

    monkeypatch.setattr(feed, "tenant_head", head_then_commit)
    page = (await gql.data(INBOX_PAGE, as_user="bob", roles=("change-approver",)))["inbox"]
    monkeypatch.setattr(feed, "tenant_head", read_head)
    assert committed
    assert page["edges"] == []

    async with Socket(ws_url, gql.token("bob", "change-approver")) as socket:
        await socket.subscribe(INBOX, {"after": page["eventCursor"]})
        pushed = (await socket.next())["inboxChanged"]
        assert (pushed["kind"], pushed["itemId"]) == ("ENTERED", committed[0])


async def test_the_page_cursor_is_the_head_of_the_events_it_reflects(
    gql, services, tenant, demo_templates
):
    await submit(services, tenant, "change-approval", "one")
    page = (await gql.data(INBOX_PAGE, as_user="bob", roles=("change-approver",)))["inbox"]
    assert decode_cursor(page["eventCursor"], tenant) == await feed.tenant_head(tenant)


async def test_an_item_and_its_comments_carry_the_cursor_to_resume_its_events(
    ws_url, gql, services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "commented")
    item_id = global_id("WorkflowItem", view.id)
    item = (await gql.data(ITEM, {"id": item_id}, as_user="dave"))["item"]
    node = (await gql.data(NODE, {"id": item_id}, as_user="dave"))["node"]
    comments = (await gql.data(COMMENTS, {"id": item_id}, as_user="dave"))["comments"]
    assert item["eventCursor"] == node["eventCursor"] == comments["eventCursor"]
    assert decode_cursor(node["eventCursor"], tenant) == await feed.tenant_head(tenant)
    assert comments["edges"] == []

    await comment_services.add_comment(
        actor(tenant, "dave"),
        services,
        comment_services.AddCommentInput(body="written after the read", item_id=view.id),
    )

    async with Socket(ws_url, gql.token("dave")) as socket:
        await socket.subscribe(ITEM_EVENTS, {"itemId": item_id, "after": item["eventCursor"]})
        pushed = (await socket.next())["itemEvents"]
        assert pushed["action"].startswith("comment.")
        assert pushed["itemId"] == item_id


async def test_a_snapshot_read_refuses_to_run_inside_a_transaction(tenant):
    async with ENGINE.transaction():
        with pytest.raises(RuntimeError):
            async with feed.snapshot_read(tenant):
                pass


async def test_a_snapshot_read_cancelled_at_any_point_gives_its_connection_back(tenant):
    """Sibling query fields are cancelled when one fails: wherever the cancellation lands,
    the transaction ends and its connection returns to the pool."""

    async def reader() -> None:
        async with feed.snapshot_read(tenant):
            await feed.tenant_head(tenant)
            await asyncio.Event().wait()

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        for steps in range(12):
            task = asyncio.create_task(reader())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # the shielded end finishes on its own: wait until every connection is back
        async with asyncio.timeout(30):
            while ENGINE.pool.get_idle_size() != ENGINE.pool.get_size():
                await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(previous)
    # nothing for the event loop to report as an error (asyncpg reports a connection given
    # back inside a transaction: an ERROR line in the server's log for each such request)
    assert reported == []
    open_transactions = await sql.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    )
    assert open_transactions == []
    assert ENGINE.pool.get_idle_size() == ENGINE.pool.get_size()
