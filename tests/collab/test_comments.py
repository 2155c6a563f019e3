"""Comments on real PostgreSQL: threads, revisions, tombstones, who may do what, history."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db.collab_tables import COLLAB_TABLES
from signoff.domain.comments import body_digest, parse_mentions
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import comments as comment_services
from tests.collab.conftest import comment
from tests.conftest import actor
from tests.realtime.conftest import submit

Edit = comment_services.EditCommentInput
Delete = comment_services.DeleteCommentInput


async def code_of(call) -> ErrorCode:
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value.code


# --------------------------------------------------------------------------- pure rules


def test_mentions_are_found_once_each_in_order_and_never_inside_addresses():
    text = "@bob see this, @alice. Mail carol@example.com; cc @bob and @dave-ops: @x_1!"
    assert parse_mentions(text) == ["bob", "alice", "dave-ops", "x_1"]
    assert parse_mentions("ask @alice@example.com please") == ["alice@example.com"]
    assert parse_mentions("no mention @ all, email@host, @@") == []


@given(
    st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,20}", fullmatch=True), max_size=8),
    st.text(alphabet=" ,;:!?\n", min_size=1, max_size=3),
)
def test_every_written_mention_is_parsed_back(names, separator):
    body = separator.join(f"@{n}" for n in names)
    assert parse_mentions(body) == list(dict.fromkeys(names))


# --------------------------------------------------------------------------- threads


async def test_a_thread_on_an_item_and_on_a_step_with_replies(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    step_id = view.steps[0].id
    root = await comment(services, tenant, "dave", "Rollback tested?", item_id=view.id)
    on_step = await comment(
        services, tenant, "bob", "Looking at it", "change-approver", step_id=step_id
    )
    reply = await comment(services, tenant, "bob", "Yes", "change-approver", reply_to_id=root.id)
    deeper = await comment(services, tenant, "dave", "Thanks", reply_to_id=reply.id)

    assert (root.thread_id, root.reply_to_id, root.step_id) == (root.id, None, None)
    assert (on_step.step_id, on_step.thread_id) == (step_id, on_step.id)
    # A reply to a reply stays in the thread of its root and names what it answers.
    assert (reply.thread_id, reply.reply_to_id) == (root.id, root.id)
    assert (deeper.thread_id, deeper.reply_to_id) == (root.id, reply.id)

    reader = actor(tenant, "dave")
    listed = await comment_services.list_comments(reader, services, view.id)
    assert [c.id for c in listed] == [root.id, on_step.id, reply.id, deeper.id]
    only_step = await comment_services.list_comments(reader, services, view.id, step_id=step_id)
    assert [c.id for c in only_step] == [on_step.id]
    page = await comment_services.list_comments(
        reader, services, view.id, after_seq=listed[1].seq, limit=1
    )
    assert [c.id for c in page] == [reply.id]


async def test_only_readers_of_the_item_may_comment_or_read(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    first = await comment(services, tenant, "dave", "hello", item_id=view.id)
    outsider = actor(tenant, "eve", "manager")
    for call in (
        comment_services.list_comments(outsider, services, view.id),
        comment_services.get_comment(outsider, services, first.id),
        comment(services, tenant, "eve", "let me in", "manager", item_id=view.id),
        comment(services, tenant, "eve", "let me in", "manager", reply_to_id=first.id),
        comment(services, tenant, "eve", "x", "manager", step_id=view.steps[0].id),
    ):
        assert await code_of(call) == ErrorCode.NOT_FOUND
    # Another tenant's people see nothing either, admins included.
    stranger = actor("another-tenant", "admin", "admin")
    assert await code_of(comment_services.get_comment(stranger, services, first.id)) == (
        ErrorCode.NOT_FOUND
    )
    # An admin of the tenant reads every item.
    admin = actor(tenant, "root", "admin")
    assert [c.id for c in await comment_services.list_comments(admin, services, view.id)] == [
        first.id
    ]


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ("   ", "item"),
        ("x" * 10001, "item"),
        (" ".join(f"@u{i}" for i in range(21)), "item"),
        ("fine", "none"),
        ("fine", "both"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    services, tenant, demo_templates, body, target
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    targets = {
        "item": {"item_id": view.id},
        "none": {},
        "both": {"item_id": view.id, "step_id": view.steps[0].id},
    }[target]
    before = len(await audit_repo.events_for_item(tenant, view.id))
    assert await code_of(comment(services, tenant, "dave", body, **targets)) == (
        ErrorCode.INVALID_INPUT
    )
    assert len(await audit_repo.events_for_item(tenant, view.id)) == before
    assert await comment_services.list_comments(actor(tenant, "dave"), services, view.id) == []


# --------------------------------------------------------------------------- revisions


async def test_an_edited_comment_keeps_its_original(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")
    original = await comment(services, tenant, "dave", "Deploy at 10:00", item_id=view.id)
    edited = await comment_services.edit_comment(
        dave, services, Edit(original.id, "Deploy at 11:00", reason="moved", expected_version=1)
    )
    assert (edited.body, edited.revision, edited.version, edited.edited) == (
        "Deploy at 11:00",
        2,
        2,
        True,
    )
    revisions = await comment_services.comment_revisions(dave, services, original.id)
    assert [(r.revision, r.body, r.editor_id, r.reason) for r in revisions] == [
        (1, "Deploy at 10:00", "dave", None),
        (2, "Deploy at 11:00", "dave", "moved"),
    ]
    assert [r.body_sha256 for r in revisions] == [
        body_digest("Deploy at 10:00"),
        body_digest("Deploy at 11:00"),
    ]
    # The same text again is no new revision and no event.
    again = await comment_services.edit_comment(
        dave, services, Edit(original.id, "Deploy at 11:00")
    )
    assert again.version == 2
    actions = [e["action"] for e in await audit_repo.events_for_item(tenant, view.id)]
    assert actions.count("comment.edited") == 1


@hsettings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bodies=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6))
async def test_every_revision_stays_readable_in_order(services, tenant, demo_templates, bodies):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")
    written = await comment(services, tenant, "dave", "first", item_id=view.id)
    expected = ["first"]
    for body in bodies:
        try:
            await comment_services.edit_comment(dave, services, Edit(written.id, body))
        except DomainError as exc:
            # Blank text or control characters: refused as input, nothing written.
            assert exc.code == ErrorCode.INVALID_INPUT
            assert not body.strip() or any(
                ord(c) < 32 and c not in "\t\n\r" or c == "\x7f" for c in body
            )
            continue
        if body.strip() != expected[-1]:
            expected.append(body.strip())
    revisions = await comment_services.comment_revisions(dave, services, written.id)
    assert [r.body for r in revisions] == expected
    assert [r.revision for r in revisions] == list(range(1, len(expected) + 1))
    current = await comment_services.get_comment(dave, services, written.id)
    assert (current.body, current.revision) == (expected[-1], len(expected))
    edits = [
        e
        for e in await audit_repo.events_for_item(tenant, view.id)
        if e["action"] == "comment.edited"
    ]
    # One audit event per revision, each with the digest (never the text) of its body.
    assert [e["data"]["body_sha256"] for e in edits] == [body_digest(b) for b in expected[1:]]
    assert all("body" not in e["data"] for e in edits)


async def test_only_the_author_or_an_admin_with_a_reason_changes_a_comment(
    services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    written = await comment(services, tenant, "dave", "mine", item_id=view.id)
    bob = actor(tenant, "bob", "change-approver")  # may read the item, is not the author
    admin = actor(tenant, "root", "admin")
    assert await code_of(comment_services.edit_comment(bob, services, Edit(written.id, "x"))) == (
        ErrorCode.FORBIDDEN
    )
    assert await code_of(comment_services.delete_comment(bob, services, Delete(written.id))) == (
        ErrorCode.FORBIDDEN
    )
    assert (
        await code_of(comment_services.delete_comment(admin, services, Delete(written.id)))
        == ErrorCode.JUSTIFICATION_REQUIRED
    )
    moderated = await comment_services.edit_comment(
        admin, services, Edit(written.id, "[removed personal data]", reason="contained a phone no")
    )
    assert moderated.author_id == "dave"
    event = (await audit_repo.events_for_item(tenant, view.id))[-1]
    assert (event["action"], event["actor_id"], event["reason"]) == (
        "comment.edited",
        "root",
        "contained a phone no",
    )
    assert (event["data"]["moderated"], event["data"]["author_id"]) == (True, "dave")


async def test_a_deleted_comment_is_a_tombstone_with_its_thread_intact(
    services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave, admin = actor(tenant, "dave"), actor(tenant, "root", "admin")
    root = await comment(services, tenant, "dave", "secret plan", item_id=view.id)
    reply = await comment(services, tenant, "root", "ok", "admin", reply_to_id=root.id)
    gone = await comment_services.delete_comment(
        dave, services, Delete(root.id, expected_version=1)
    )
    assert gone.deleted and gone.deleted_by == "dave" and gone.version == 2
    assert comment_services.visible_body(gone) is None
    listed = await comment_services.list_comments(dave, services, view.id)
    assert [(c.id, c.deleted) for c in listed] == [(root.id, True), (reply.id, False)]
    # Its text is kept (for admins and retention), not shown to readers.
    assert await comment_services.comment_revisions(dave, services, root.id) == []
    kept = await comment_services.comment_revisions(admin, services, root.id)
    assert [r.body for r in kept] == ["secret plan"]
    for call in (
        comment_services.edit_comment(dave, services, Edit(root.id, "again")),
        comment_services.delete_comment(dave, services, Delete(root.id)),
    ):
        assert await code_of(call) == ErrorCode.ILLEGAL_TRANSITION
    # Replying in the thread of a deleted comment still works.
    late = await comment(services, tenant, "dave", "still here", reply_to_id=root.id)
    assert late.thread_id == root.id


async def test_comment_changes_are_part_of_the_items_history(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")
    written = await comment(services, tenant, "dave", "hi @bob", item_id=view.id)
    await comment_services.edit_comment(dave, services, Edit(written.id, "hi @bob and @carol"))
    await comment_services.delete_comment(dave, services, Delete(written.id))
    events = [
        e
        for e in await audit_repo.events_for_item(tenant, view.id)
        if e["action"].startswith("comment.")
    ]
    assert [e["action"] for e in events] == ["comment.created", "comment.edited", "comment.deleted"]
    assert {e["data"]["comment_id"] for e in events} == {str(written.id)}
    assert [e["data"]["mentioned"] for e in events] == [["bob"], ["carol"], []]
    assert [e["data"]["version"] for e in events] == [1, 2, 3]


async def test_a_stale_version_is_refused(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")
    written = await comment(services, tenant, "dave", "v1", item_id=view.id)
    await comment_services.edit_comment(dave, services, Edit(written.id, "v2", expected_version=1))
    with pytest.raises(DomainError) as caught:
        await comment_services.edit_comment(
            dave, services, Edit(written.id, "v3", expected_version=1)
        )
    assert caught.value.code == ErrorCode.VERSION_CONFLICT
    assert caught.value.details == {"current_version": 2}


async def test_concurrent_edits_of_one_version_have_exactly_one_winner(
    services, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")
    written = await comment(services, tenant, "dave", "v1", item_id=view.id)
    results = await asyncio.gather(
        *[
            comment_services.edit_comment(
                dave, services, Edit(written.id, f"edit {i}", expected_version=1)
            )
            for i in range(8)
        ],
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(e, DomainError) and e.code == ErrorCode.VERSION_CONFLICT for e in losers)
    revisions = await comment_services.comment_revisions(dave, services, written.id)
    assert [r.body for r in revisions] == ["v1", winners[0].body]


async def test_a_replayed_key_returns_the_first_comment_once(services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    inp = comment_services.AddCommentInput(body="once", item_id=view.id, idempotency_key="k1")
    dave = actor(tenant, "dave")
    first, second = await asyncio.gather(
        comment_services.add_comment(dave, services, inp),
        comment_services.add_comment(dave, services, inp),
    )
    assert first.id == second.id
    assert len(await comment_services.list_comments(dave, services, view.id)) == 1
    other = comment_services.AddCommentInput(body="other", item_id=view.id, idempotency_key="k1")
    assert await code_of(comment_services.add_comment(dave, services, other)) == (
        ErrorCode.IDEMPOTENCY_KEY_REUSED
    )


@pytest.mark.parametrize("table", COLLAB_TABLES, ids=lambda t: t._meta.tablename)
async def test_collaboration_table_classes_match_the_database(database_url, table):
    rows = await sql.fetch(
        """SELECT column_name, is_nullable = 'YES' AS nullable FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1""",
        table._meta.tablename,
    )
    in_database = {r["column_name"]: r["nullable"] for r in rows}
    in_class = {c._meta.db_column_name: c._meta.null for c in table._meta.columns}
    assert in_class == in_database
