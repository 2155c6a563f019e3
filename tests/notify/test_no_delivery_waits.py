"""A due delivery never waits for another delivery job to finish: whoever plans it (a planning
job or the sweeper) asks for a delivery job of its tenant under a name of its own.

The sweeper used to ask for one job under a fixed name, which arq refuses to queue while a job
of that name runs: an event the sweeper planned while an earlier sweep's job was held by a
slow receiver (up to the job's 900 s timeout) was not sent until that job ended, whatever the
worker did meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq import create_pool
from arq.connections import RedisSettings
from prometheus_client import REGISTRY

from signoff.db import scope, sql
from signoff.jobs.notifications import REGISTRY_KEY, build_registry
from signoff.services import notifications as notification_services
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer
from signoff.worker import build_worker
from tests.conftest import DEMO_TEMPLATES, actor, wait_for
from tests.notify.conftest import add_webhook_approvers, deliveries, submit_change

SECRET = "webhook-secret-0123456789"
HANG = 60.0  # only catches a hang: the worker polls every 50 ms
HELD = 600.0  # the slow receiver's deadline, far beyond the test's


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """A real arq worker on the test's queue, running until the block ends; no cron jobs (the
    test queues the sweeper itself)."""
    worker = build_worker(
        settings,
        handle_signals=False,
        poll_delay=0.05,
        cron_jobs=[],
        ctx={REGISTRY_KEY: build_registry(settings)},
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        task.cancel()
        # the worker's own tasks end cancelled: that is how it stops (as `signoff dev` does)
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_sweeper_delivers_what_it_plans_while_an_earlier_delivery_job_is_held(
    tenant, demo_templates, nsvc
):
    settings = dataclasses.replace(
        nsvc.settings,
        notify_channels=json.dumps({"webhook": {"secrets": [SECRET], "timeout_seconds": HELD}}),
        notify_deliver_timeout_seconds=HELD,
    )
    other = f"t{uuid.uuid4().hex[:12]}"
    # the worker's timers: only these tenants' (not other tests')
    settings = dataclasses.replace(settings, timer_tenants=(tenant, other))
    services = dataclasses.replace(nsvc, settings=settings)  # no scheduler: no planning jobs
    await load_templates(actor(other, "admin", "admin"), ServiceContext(settings), DEMO_TEMPLATES)
    release = asyncio.Event()

    async def slow(request: ReceivedRequest) -> HTTPReply:
        await release.wait()
        return HTTPReply(200, {"ok": True})

    async with (
        RecordingHTTPServer(slow) as slow_hook,
        RecordingHTTPServer() as hook,
        running_worker(settings),
    ):
        queue = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        try:
            # the first sweep plans a delivery to a receiver that holds it: its delivery job
            # keeps running
            await add_webhook_approvers(tenant, services, slow_hook.url, 1)
            await submit_change(tenant, services)
            await queue.enqueue_job("notification_sweeper", _queue_name=settings.job_queue_name)
            await slow_hook.wait_for_requests(1, timeout=HANG)

            # the next sweep plans another tenant's event: it is sent while the first is held
            await add_webhook_approvers(other, services, hook.url, 1)
            await submit_change(other, services)
            await queue.enqueue_job("notification_sweeper", _queue_name=settings.job_queue_name)
            await hook.wait_for_requests(1, timeout=HANG)
            assert not release.is_set()
            # (sets of event ids, not counts: in the suite, timers of these items may fire too)
            held = {d["idempotency_key"] for d in await deliveries(tenant)}
            sent = {d["idempotency_key"] for d in await deliveries(other)}
            assert {r.headers["signoff-event-id"] for r in slow_hook.requests} <= held
            assert {r.headers["signoff-event-id"] for r in hook.requests} <= sent
            # the worker records the attempt once the receiver has answered: polled
            async with asyncio.timeout(HANG):
                while "delivered" not in {d["status"] for d in await deliveries(other)}:
                    await asyncio.sleep(0.05)
        finally:
            release.set()
            await queue.aclose()


DEAD_LETTERS = """{ deadLetters(first: 10) { nodes { id deliveryStatus attemptCount lastError
  attempts { attemptNo status error } } } }"""


async def test_a_delivery_that_cannot_be_read_is_dead_lettered_and_the_other_lanes_go_on(
    tenant, demo_templates, nsvc, gql
):
    """A delivery row whose stored event cannot be read back is dead-lettered with the reason,
    its attempt stored, its audit event written and its outcome counted, while another lane
    keeps sending: it used to fail the lane that claimed it, cancel the other lanes, and do
    so again in every job that claimed it once its claim ran out."""
    settings = dataclasses.replace(
        nsvc.settings,
        notify_channels=json.dumps({"webhook": {"secrets": [SECRET], "timeout_seconds": HELD}}),
        notify_deliver_timeout_seconds=HELD,
        notify_deliver_batch=1,
    )
    services = dataclasses.replace(nsvc, settings=settings)
    release = asyncio.Event()

    async def slow(request: ReceivedRequest) -> HTTPReply:
        await release.wait()
        return HTTPReply(200, {"ok": True})

    dead_before = _dead_counted()
    async with RecordingHTTPServer(slow) as hook:
        await add_webhook_approvers(tenant, services, hook.url, 2)
        await submit_change(tenant, services)
        due = await notification_services.plan_notifications(services, tenant)
        assert len(due) == 2
        # one delivery's stored event cannot be read back
        bad, good = due[1].delivery_id, due[0].delivery_id
        with scope.tenant(tenant):
            await sql.execute(
                """UPDATE notification_delivery
                SET payload = jsonb_set(payload, '{occurred_at}', '"not a time"')
                WHERE id = $1""",
                bad,
            )

        async def bad_is_dead() -> bool:
            return {r["id"]: r["status"] for r in await deliveries(tenant)}[bad] == "dead"

        delivering = asyncio.create_task(
            notification_services.deliver_due(
                services, build_registry(settings), lanes=2, tenant_id=tenant
            )
        )
        try:
            # the good one is held by its receiver while the bad one is settled beside it
            await hook.wait_for_requests(1, timeout=HANG)
            await wait_for(bad_is_dead, timeout=HANG)
            assert not delivering.done()
        finally:
            release.set()
        async with asyncio.timeout(HANG):
            done = await delivering
    assert dict(done.outcomes) == {"delivered": 1, "dead": 1}
    assert [r.headers["signoff-event-id"] for r in hook.requests] == [
        row["idempotency_key"] for row in await deliveries(tenant) if row["id"] == good
    ]
    rows = {r["id"]: r for r in await deliveries(tenant)}
    assert (rows[good]["status"], rows[good]["attempts"]) == ("delivered", 1)
    assert (rows[bad]["status"], rows[bad]["attempts"]) == ("dead", 1)
    assert rows[bad]["next_attempt_at"] is None
    assert _dead_counted() == dead_before + 1

    data = await gql.data(DEAD_LETTERS, as_user="ops", roles=("admin",))
    (dead,) = data["deadLetters"]["nodes"]
    assert dead["deliveryStatus"] == "DEAD" and dead["attemptCount"] == 1
    assert "cannot be read" in dead["lastError"] and "not a time" in dead["lastError"]
    assert dead["attempts"] == [
        {"attemptNo": 1, "status": "FAILED_PERMANENT", "error": dead["lastError"]}
    ]
    audit = await sql.fetch(
        """SELECT reason, data FROM audit_event WHERE tenant_id = $1
        AND action = 'notification.dead_lettered'""",
        tenant,
    )
    assert [(r["reason"], json.loads(r["data"])["delivery_id"]) for r in audit] == [
        (dead["lastError"], bad)
    ]


def _dead_counted() -> float:
    return (
        REGISTRY.get_sample_value(
            "signoff_notification_deliveries_total", {"channel": "webhook", "outcome": "dead"}
        )
        or 0.0
    )
