"""Delivery jobs take due deliveries from the table in batches: any number of jobs, lanes and
workers share them without sending one twice, a batch costs the same statements whatever its
size, and a worker process killed mid-batch loses nothing (its batch is sent again once the
claim runs out, with the same event id, for the receiver to de-duplicate)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arq import create_pool
from arq.connections import RedisSettings

from signoff.domain.clock import ManualClock
from signoff.jobs.notifications import build_registry, enqueue_delivering
from signoff.services import notifications as notification_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings
from signoff.testing import (
    HTTPReply,
    ReceivedRequest,
    RecordingHTTPServer,
    child_environment,
    free_port,
    signoff_processes,
)
from tests.conftest import RUN_ID, TEST_SECRET
from tests.notify.conftest import (
    add_profile,
    add_webhook_approvers,
    deliveries,
    fake_registry,
    run_worker,
    submit_change,
)

SECRET = "webhook-secret-0123456789"


def webhook_settings(base: Settings, **changes: object) -> Settings:
    channels = {"webhook": {"secrets": [SECRET], "timeout_seconds": 5}}
    return dataclasses.replace(base, notify_channels=json.dumps(channels), **changes)


async def planned(tenant: str, services: ServiceContext, people: int, items: int) -> int:
    """`items` changes, each assigned to `people` approvers with a fake address: their
    deliveries planned and due; how many."""
    for n in range(people):
        await add_profile(
            tenant, services, f"user{n}", {"fake": f"u{n}"}, roles=("change-approver",)
        )
    for n in range(items):
        await submit_change(tenant, services, f"Change {n}")
    due = await notification_services.plan_notifications(services, tenant, channels=["fake"])
    assert len(due) == people * items
    return len(due)


async def test_a_batch_of_due_deliveries_costs_the_same_statements_whatever_its_size(
    tenant, demo_templates, nsvc, statements
):
    registry, channel = fake_registry()
    await planned(tenant, nsvc, people=6, items=1)
    sent, outcomes = [], []
    for size in (1, 5):
        with statements:
            done = await notification_services.deliver_due_of_tenant(nsvc, registry, tenant, size)
        outcomes.append(Counter(done.values()))
        sent.append(len(statements.statements))
        statements.statements.clear()
    assert outcomes == [{"delivered": 1}, {"delivered": 5}]
    assert sent[0] == sent[1]  # claim (one statement), record: not one per delivery
    assert len(channel.sent) == 6
    with statements:
        assert await notification_services.deliver_due_of_tenant(nsvc, registry, tenant, 5) == {}
    rows = await deliveries(tenant)
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}


async def test_jobs_lanes_and_workers_share_due_deliveries_and_send_none_twice(
    tenant, demo_templates, nsvc, clock
):
    requests: list[ReceivedRequest] = []

    async def receiver(request: ReceivedRequest) -> HTTPReply:
        requests.append(request)
        await asyncio.sleep(0)  # let the other lanes and workers interleave with this one
        return HTTPReply(200, {"ok": True})

    settings = webhook_settings(
        nsvc.settings,
        notify_deliver_batch=3,
        notify_deliver_lanes=3,
        notify_digest_threshold=1000,  # four assignments to one person are sent one by one
    )
    nsvc = dataclasses.replace(nsvc, settings=settings)
    async with RecordingHTTPServer(receiver) as hook:
        await add_webhook_approvers(tenant, nsvc, hook.url, 8)
        for n in range(4):
            await submit_change(tenant, nsvc, f"Change {n}")
        due = await notification_services.plan_notifications(nsvc, tenant, channels=["webhook"])
        assert len(due) == 32
        pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        try:
            for n in range(4):  # as four plannings would: four jobs, all due at once
                await enqueue_delivering(pool, settings, f"test:{n}")
        finally:
            await pool.aclose()
        await asyncio.gather(*(run_worker(settings, clock, build_registry(settings)) for _ in "ab"))

    sent = Counter(r.headers["signoff-event-id"] for r in requests)
    rows = await deliveries(tenant)
    assert set(sent) == {r["idempotency_key"] for r in rows}
    assert set(sent.values()) == {1}
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}


async def test_a_worker_killed_mid_batch_loses_no_delivery(
    tenant, demo_templates, nsvc, database_url, redis_url, tmp_path: Path
):
    held = asyncio.Event()
    release = asyncio.Event()
    arrived: list[ReceivedRequest] = []

    async def receiver(request: ReceivedRequest) -> HTTPReply:
        arrived.append(request)
        if len(arrived) == 3:
            held.set()
        await release.wait()  # the killed worker's requests stay open until it is gone
        return HTTPReply(200, {"ok": True})

    async with RecordingHTTPServer(receiver) as hook:
        await add_webhook_approvers(tenant, nsvc, hook.url, 7)
        await submit_change(tenant, nsvc)
        assert len(await notification_services.plan_notifications(nsvc, tenant)) == 7

        port = free_port()
        env = child_environment(
            SIGNOFF_ENVIRONMENT="development",
            SIGNOFF_JWT_SECRET=TEST_SECRET,
            SIGNOFF_DATABASE_URL=database_url,
            SIGNOFF_REDIS_URL=redis_url,
            SIGNOFF_REDIS_PREFIX=f"signoff-test-{RUN_ID}-killed-{uuid.uuid4().hex[:8]}",
            SIGNOFF_TIMER_TENANTS=tenant,
            SIGNOFF_WORKER_METRICS_PORT=str(port),
            SIGNOFF_DB_POOL_MIN="1",
            SIGNOFF_DB_POOL_MAX="4",
            SIGNOFF_LOG_LEVEL="WARNING",
            SIGNOFF_OUTBOUND_ALLOW="127.0.0.1/32",
            SIGNOFF_NOTIFY_CHANNELS=json.dumps(
                {"webhook": {"secrets": [SECRET], "timeout_seconds": 5}}
            ),
            SIGNOFF_NOTIFY_DELIVER_BATCH="3",
            SIGNOFF_NOTIFY_DELIVER_LANES="1",
        )
        ready = [f"http://127.0.0.1:{port}/metrics"]
        async with signoff_processes({"worker": ["worker"]}, env, tmp_path, ready) as running:
            # its sweeper, run at start, asks for a delivery job: one batch is in flight
            await asyncio.wait_for(held.wait(), 60)
            worker = running.processes["worker"]
            worker.kill()
            worker.wait()
        killed_at = datetime.now(UTC)
        in_flight = {r.headers["signoff-event-id"] for r in arrived}
        assert len(in_flight) == 3
        rows = await deliveries(tenant)
        # nothing was recorded for the batch: it is still open, claimed for a while
        assert {r["status"] for r in rows} == {"queued"}
        assert all(r["attempts"] == 0 for r in rows)
        release.set()

        # another worker, once the claim has run out, sends what is open
        clock = ManualClock(killed_at + timedelta(minutes=2))
        settings = webhook_settings(nsvc.settings)
        await run_worker(settings, clock, build_registry(settings))

    sent = Counter(r.headers["signoff-event-id"] for r in arrived)
    rows = await deliveries(tenant)
    assert set(sent) == {r["idempotency_key"] for r in rows}  # none lost
    # the killed batch reached the receiver twice with the same id, the rest once
    assert {key for key, times in sent.items() if times == 2} == in_flight
    assert set(sent.values()) == {1, 2}
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
