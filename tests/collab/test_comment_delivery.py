"""Comments reach people: a mention through the notification pipeline (real arq worker, fake
channel), and every change live over a real websocket (itemEvents, inboxChanged)."""

from __future__ import annotations

from signoff.notify import NotifierRegistry
from signoff.services import comments as comment_services
from signoff.testing import FakeChannel
from tests.collab.conftest import comment
from tests.conftest import actor
from tests.notify.conftest import add_profile, run_worker
from tests.realtime.conftest import INBOX, ITEM_EVENTS, Socket, global_id, submit, wait_subscribed


def fake_registry() -> tuple[NotifierRegistry, FakeChannel]:
    registry = NotifierRegistry(deliver_timeout=1.0)
    fake = FakeChannel("fake")
    registry.register(fake, "fake")
    registry.configure({"fake": {}})
    return registry, fake


def mentions_sent(fake: FakeChannel) -> list[tuple[str, str]]:
    return sorted(
        (m.recipient.user_id, m.message.text)
        for m in fake.sent
        if m.message.subject.startswith("mention:")
    )


async def test_a_mention_notifies_the_mentioned_reader_and_nobody_else(
    tenant, demo_templates, nsvc, clock
):
    await add_profile(tenant, nsvc, "bob", {"fake": "bob@x"}, roles=("change-approver",))
    await add_profile(tenant, nsvc, "carol", {"fake": "carol@x"}, roles=("change-approver",))
    # Eve has an address but may not read the item: a mention must not reveal it to her.
    await add_profile(tenant, nsvc, "eve", {"fake": "eve@x"}, roles=("manager",))
    await add_profile(tenant, nsvc, "dave", {"fake": "dave@x"})
    registry, fake = fake_registry()
    view = await submit(nsvc, tenant, "change-approval", "Deploy payments")
    await run_worker(nsvc.settings, clock, registry)  # the assignment notifications go first
    fake.sent.clear()

    written = await comment(
        nsvc, tenant, "dave", "@bob @eve can you check? (cc @dave)", item_id=view.id
    )
    await run_worker(nsvc.settings, clock, registry)

    assert mentions_sent(fake) == [("bob", "Hello Bob: dave mentioned you in a comment.")]
    sent = next(m for m in fake.sent if m.recipient.user_id == "bob")
    assert sent.message.subject == "mention: Deploy payments"
    assert sent.message.link and sent.message.link.endswith(f"/items/{view.id}")

    # An edit notifies only who it newly mentions: carol, not bob again.
    fake.sent.clear()
    await comment_services.edit_comment(
        actor(tenant, "dave"),
        nsvc,
        comment_services.EditCommentInput(written.id, "@bob @carol @eve can you check?"),
    )
    await run_worker(nsvc.settings, clock, registry)
    assert [u for u, _ in mentions_sent(fake)] == ["carol"]

    # A comment without mentions notifies nobody.
    fake.sent.clear()
    await comment(nsvc, tenant, "bob", "looks fine", "change-approver", item_id=view.id)
    await run_worker(nsvc.settings, clock, registry)
    assert fake.sent == []


async def test_comment_changes_are_pushed_live(ws_url, hub, gql, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    requester = Socket(ws_url, gql.token("dave"))
    reviewer = Socket(ws_url, gql.token("bob", "change-approver"))
    outsider = Socket(ws_url, gql.token("eve", "manager"))
    async with requester, reviewer, outsider:
        await requester.subscribe(ITEM_EVENTS, {"itemId": item_id})
        await reviewer.subscribe(INBOX)
        await outsider.subscribe(INBOX)
        await wait_subscribed(hub, 3)

        written = await comment(services, tenant, "dave", "rollback tested?", item_id=view.id)
        await comment_services.edit_comment(
            actor(tenant, "dave"),
            services,
            comment_services.EditCommentInput(written.id, "rollback tested on staging?"),
        )
        await comment_services.delete_comment(
            actor(tenant, "dave"), services, comment_services.DeleteCommentInput(written.id)
        )

        events = [(await requester.next())["itemEvents"] for _ in range(3)]
        assert [e["action"] for e in events] == [
            "comment.created",
            "comment.edited",
            "comment.deleted",
        ]
        assert {e["data"]["comment_id"] for e in events} == {str(written.id)}
        assert all(e["itemId"] == item_id for e in events)

        changes = [(await reviewer.next())["inboxChanged"] for _ in range(3)]
        assert [(c["kind"], c["reason"]) for c in changes] == [("UPDATED", "COMMENTED")] * 3
        assert [c["action"] for c in changes] == [e["action"] for e in events]

        # Eve is nowhere near the item: the next thing she receives is her own assignment,
        # committed after the comments, so she never received those.
        partner = await submit(services, tenant, "partner-approval", "Acme")
        first = (await outsider.next())["inboxChanged"]
        assert first["itemId"] == global_id("WorkflowItem", partner.id)
        assert first["seq"] > events[-1]["seq"]
