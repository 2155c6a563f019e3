"""A channel plugin sends with no database transaction of ours open: claim, commit, deliver,
record. Checked from inside a real webhook receiver, on PostgreSQL's own view of sessions (in a
database of the test's own, whose every session is the code under test); and a batch of
deliveries costs the same transactions as one."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg

from signoff.jobs.notifications import build_registry
from signoff.services import notifications as notification_services
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer
from tests.conftest import DEMO_TEMPLATES, actor
from tests.notify.conftest import (
    add_profile,
    deliveries,
    fake_registry,
    run_worker,
    submit_change,
)

SECRET = "webhook-secret-0123456789"
OPEN_TRANSACTIONS = """SELECT pid, state, left(query, 200) AS query FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND state IN ('idle in transaction', 'idle in transaction (aborted)')"""


def webhook_settings(base: Settings) -> Settings:
    channels = {"webhook": {"secrets": [SECRET], "timeout_seconds": 5}}
    return dataclasses.replace(base, notify_channels=json.dumps(channels))


async def open_transactions(database_url: str) -> list[dict[str, Any]]:
    """The sessions of the database that are inside a transaction and waiting on their client,
    seen from a connection of its own."""
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await conn.fetch(OPEN_TRANSACTIONS)]
    finally:
        await conn.close()


async def test_no_transaction_is_open_while_a_channel_delivers(
    tenant, database_of_its_own, nsvc, clock
):
    # PostgreSQL's view of the sessions must show the delivery's only: a database of its own
    # (no other test's sweeper or worker is in it), a worker that runs one job at a time and
    # a delivery job of one lane. Otherwise a look-up running beside the delivery (another
    # lane's or the sweeper's, a transaction of three round trips that declares its scope)
    # can show as idle in transaction while the delivery waits on the receiver: work beside
    # the plugin call, not a transaction around it.
    database_url = database_of_its_own
    own = dataclasses.replace(nsvc.settings, database_url=database_url, notify_deliver_lanes=1)
    nsvc = dataclasses.replace(nsvc, settings=own)
    await load_templates(actor(tenant, "admin", "admin"), nsvc, DEMO_TEMPLATES)
    seen: list[list[dict[str, Any]]] = []

    async def receiver(request: ReceivedRequest) -> HTTPReply:
        # While this request is held, the worker's delivery call is waiting on it.
        seen.append(await open_transactions(database_url))
        status = 500 if len(seen) == 1 else 200  # a retry goes through the same path
        return HTTPReply(status, {"ok": status == 200})

    async with RecordingHTTPServer(receiver) as hook:
        settings = webhook_settings(nsvc.settings)
        registry = build_registry(settings)
        await add_profile(
            tenant, nsvc, "alice", {"webhook": hook.url + "/in"}, roles=("change-approver",)
        )
        await submit_change(tenant, nsvc)
        await run_worker(settings, clock, registry, max_jobs=1)
        (row,) = await deliveries(tenant)
        assert row["status"] == "retrying" and row["attempts"] == 1
        clock.set(row["next_attempt_at"])
        await run_worker(settings, clock, registry, max_jobs=1)

    assert len(hook.requests) == 2
    assert seen == [[], []]
    (row,) = await deliveries(tenant)
    assert row["status"] == "delivered" and row["attempts"] == 2

    # the control: the same look sees a transaction left open in that database
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.fetchval("SELECT 1")
            held = await open_transactions(database_url)
        assert [r["pid"] for r in held] == [holder.get_server_pid()]
    finally:
        await holder.close()


async def test_a_batch_is_claimed_and_recorded_in_one_transaction_each_whatever_its_size(
    tenant, demo_templates, nsvc, statements
):
    registry, channel = fake_registry()
    for n in range(6):
        await add_profile(tenant, nsvc, f"user{n}", {"fake": f"u{n}"}, roles=("change-approver",))
    await submit_change(tenant, nsvc)
    due = await notification_services.plan_notifications(nsvc, tenant)
    assert len(due) == 6
    transactions, sent = [], []
    for batch in (due[:1], due[1:]):
        with statements:
            outcomes = await notification_services.deliver_many(
                nsvc, registry, [d.delivery_id for d in batch]
            )
        assert set(outcomes.values()) == {"delivered"}
        transactions.append(len(statements.matching("COMMIT")))
        sent.append(len(statements.statements))
        statements.statements.clear()
    assert transactions[0] == transactions[1]  # claim, record (and the tenant look-up)
    assert sent[0] == sent[1]  # and so many statements in them, not one per delivery
    assert len(channel.sent) == 6
    rows = await deliveries(tenant)
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}


async def test_planning_an_event_costs_the_same_statements_whatever_its_recipients(
    tenant, demo_templates, nsvc, statements
):
    for n in range(6):
        role = "change-approver" if n < 5 else "someone-else"
        await add_profile(tenant, nsvc, f"user{n}", {"fake": f"u{n}"}, roles=(role,))
    sent, planned = [], []
    for approvers in (1, 5):
        # the next change's assignment reaches `approvers` people
        for n in range(5):
            await add_profile(
                tenant,
                nsvc,
                f"user{n}",
                {"fake": f"u{n}"},
                roles=("change-approver",) if n < approvers else (),
            )
        await notification_services.plan_notifications(nsvc, tenant, channels=["fake"])
        await submit_change(tenant, nsvc)
        with statements:
            due = await notification_services.plan_notifications(nsvc, tenant, channels=["fake"])
        planned.append(len(due))
        sent.append(len(statements.statements))
        statements.statements.clear()
    assert planned == [1, 5]
    assert sent[0] == sent[1]
