"""Every cron job the worker schedules, run as the worker runs it, against two tenants.

The suite runs with every tenant in scope (tests/conftest.py::test_scope), so a job that forgot
to bind its tenant, or to declare that it spans tenants, would pass any test that calls it
from the suite's scope. Here each job is taken from the worker's own list (`build_worker`'s
`cron_jobs`: the same wrapped entry points arq calls), started from no tenant scope after
the worker's own start-up (its `ServiceContext`, scheduler and notification registry), as the
suite's role, a member of `signoff_app` that row-level security binds. Each job gets data in
two tenants and must do its work in both, each tenant's work only on that tenant's rows.

A cron job added to the worker without a scenario here fails
`test_every_cron_job_has_a_scenario`.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from signoff.db import audit as audit_repo
from signoff.db import roles, scope, sql
from signoff.db.engine import ENGINE
from signoff.domain.alerts import AlertRuleKind, AlertRuleSpec, Recipients
from signoff.domain.audit_export import ExportFilter, ExportFormat
from signoff.domain.clock import ManualClock
from signoff.services import alerts, evidence, notification_admin
from signoff.services import audit_exports as export_services
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.worker import build_worker
from tests.conftest import DEMO_TEMPLATES, actor
from tests.realtime.conftest import submit
from tests.retention.conftest import decided_item, set_policy

ADMIN = ("admin", "admin")
NOW = datetime(2026, 12, 10, 21, 0, tzinfo=UTC)


async def value(query: str, *args: Any) -> Any:
    """The first column of the first row (the test's own read: every tenant in scope)."""
    row = await sql.fetchrow(query, *args)
    assert row is not None
    return row[0]


@dataclass
class Two:
    """Two tenants, the worker's settings (a queue of this test's own, the timer and alert
    work limited to the two tenants, a webhook channel) and services for seeding."""

    a: str
    b: str
    settings: Settings
    clock: ManualClock
    services: ServiceContext

    @property
    def tenants(self) -> tuple[str, str]:
        return self.a, self.b

    async def run(self, name: str, *args: Any) -> tuple[Any, ArqRedis]:
        """Run the worker's cron job (or job) `name` once, as arq would: the worker's start-up
        builds its context, the job starts from no tenant scope; its result and the queue's
        Redis."""
        worker = build_worker(self.settings, clock=self.clock, handle_signals=False)
        (job,) = [c for c in worker.cron_jobs if c.coroutine.__name__ == name] or [
            worker.functions[name]
        ]
        redis = await create_pool(
            RedisSettings.from_dsn(self.settings.redis_url),
            default_queue_name=self.settings.job_queue_name,
        )
        ctx: dict[str, Any] = {"redis": redis}
        await worker.on_startup(ctx)
        try:
            with scope.unbound():
                return await job.coroutine(ctx, *args), redis
        finally:
            await worker.on_shutdown(ctx)

    async def queued(self, redis: ArqRedis) -> set[str]:
        """Ids of the jobs in this test's queue."""
        members = await redis.zrange(self.settings.job_queue_name, 0, -1)
        return {m.decode() for m in members}


async def _timers(w: Two) -> None:
    for tenant in w.tenants:
        await submit(w.services, tenant, "change-approval", f"timers of {tenant}")
    w.clock.advance(timedelta(days=3))  # reminders, escalations and the deadline are due
    horizon = w.clock.now() + timedelta(seconds=w.settings.timer_horizon_seconds)
    due = {
        tenant: await value(
            "SELECT count(*) FROM timer WHERE tenant_id = $1 AND status = 'armed' AND due_at <= $2",
            tenant,
            horizon,
        )
        for tenant in w.tenants
    }
    assert all(due.values()), due
    handed, redis = await w.run("sweep_timers_job")
    assert handed == sum(due.values())  # both tenants' timers, nobody else's
    assert await w.queued(redis)


async def _audit_check(w: Two) -> None:
    for tenant in w.tenants:
        await submit(w.services, tenant, "change-approval", f"audited in {tenant}")
    report, _ = await w.run("verify_audit_chains")
    assert {t: report.get(t, "not checked") for t in w.tenants} == {w.a: None, w.b: None}


async def _sequence_sweep(w: Two) -> None:
    # what a process that crashed between its commit and its sequencing leaves staged
    for tenant in w.tenants:
        with scope.tenant(tenant):
            async with ENGINE.transaction() as transaction:
                statement, _ = audit_repo.append_statement(
                    tenant, [{"action": "test.staged", "actor_id": "u", "occurred_at": NOW}]
                )
                await transaction.commit_with(statement)
    heads = {
        t: await value("SELECT count(*) FROM audit_event WHERE tenant_id = $1", t)
        for t in w.tenants
    }
    swept, _ = await w.run("sequence_audit_events")
    assert {t: swept.get(t) for t in w.tenants} == {w.a: 1, w.b: 1}
    for tenant in w.tenants:
        count = await value("SELECT count(*) FROM audit_event WHERE tenant_id = $1", tenant)
        assert count == heads[tenant] + 1
        assert await value("SELECT count(*) FROM audit_pending WHERE tenant_id = $1", tenant) == 0


async def _notifications(w: Two) -> None:
    for tenant in w.tenants:
        await notification_admin.upsert_user_profile(
            actor(tenant, *ADMIN),
            w.services,
            notification_admin.ProfileInput(
                user_id="bob",
                display_name="Bob",
                roles=("change-approver",),
                addresses={"webhook": f"https://hooks.example/{tenant}"},
            ),
        )
        await submit(w.services, tenant, "change-approval", f"assigned in {tenant}")
    # a tenant the worker is not for, behind too
    outsider = f"{w.a}-3"
    await load_templates(actor(outsider, *ADMIN), w.services, DEMO_TEMPLATES)
    await submit(w.services, outsider, "change-approval", "not this worker's")
    result, redis = await w.run("notification_sweeper")
    assert result["behind"] == 2  # the worker's two tenants, nobody else's
    queued = await w.queued(redis)
    assert not [job for job in queued if outsider in job]
    for tenant in w.tenants:
        # a planning job for each tenant behind, and a delivery job for each
        assert f"{w.settings.redis_prefix}:plan-sweep:{tenant}" in queued
        assert any(job.endswith(f":{tenant}") and ":deliver-due:sweep:" in job for job in queued)
    try:
        for tenant in w.tenants:
            planned, _ = await w.run("plan_notifications_job", tenant)
            assert planned >= 1
    finally:
        # nobody runs these deliveries: close them, or a later worker's sweeper would spend
        # its time trying them
        await sql.execute(
            "UPDATE notification_delivery SET status = 'suppressed', next_attempt_at = NULL"
            " WHERE tenant_id = ANY($1::text[]) AND status IN ('queued', 'retrying', 'digested')",
            list(w.tenants),
        )
    for tenant in w.tenants:
        rows = await sql.fetch(
            "SELECT address, status FROM notification_delivery WHERE tenant_id = $1"
            " AND recipient_id = 'bob' AND event_kind = 'assignment'",
            tenant,
        )
        assert [r["address"] for r in rows] == [f"https://hooks.example/{tenant}"]


async def _uploads(w: Two) -> None:
    uploads = {}
    for tenant in w.tenants:
        view = await submit(w.services, tenant, "change-approval", f"evidence in {tenant}")
        ticket = await evidence.request_upload(
            actor(tenant, "dave"),
            w.services,
            evidence.RequestUploadInput(
                file_name="plan.txt", content_type="text/plain", size=5, item_id=view.id
            ),
        )
        uploads[tenant] = ticket.upload_id
    w.clock.advance(timedelta(seconds=w.settings.evidence_upload_ttl_seconds + 60))
    expired, _ = await w.run("sweep_evidence_uploads")
    assert expired >= 2
    for tenant, upload in uploads.items():
        status = await value(
            "SELECT status FROM evidence_upload WHERE tenant_id = $1 AND id = $2", tenant, upload
        )
        assert status == "expired", tenant


async def _exports(w: Two) -> None:
    exports = {}
    for tenant in w.tenants:
        await submit(w.services, tenant, "change-approval", f"exported from {tenant}")
        export = await export_services.request_export(
            actor(tenant, "audrey", "auditor"), w.services, ExportFilter(), ExportFormat.NDJSON
        )
        exports[tenant] = export["id"]
    w.clock.advance(timedelta(minutes=5))  # their jobs were never queued: lost
    handed, redis = await w.run("sweep_audit_exports")
    assert handed >= 2
    queued = await w.queued(redis)
    for tenant, export in exports.items():
        assert any(f":audit-export:{export}:" in job for job in queued), (tenant, queued)


async def _retention(w: Two) -> None:
    items = {}
    for tenant in w.tenants:
        await set_policy(w.services, tenant, 7, "purge")
        items[tenant] = (await decided_item(w.services, tenant)).id
    w.clock.advance(timedelta(days=8))
    report, _ = await w.run("apply_retention_job")
    assert report["applied"] >= 2
    for tenant, item in items.items():
        payload = await value(
            "SELECT payload FROM workflow_item WHERE tenant_id = $1 AND id = $2", tenant, item
        )
        assert json.loads(payload) == {}, tenant
        applied = await value(
            "SELECT count(*) FROM audit_event WHERE tenant_id = $1 AND item_id = $2"
            " AND action = 'item.retention_applied'",
            tenant,
            item,
        )
        assert applied == 1, tenant


async def _alerts(w: Two) -> None:
    rules = {}
    for tenant in w.tenants:
        rule = await alerts.save_rule(
            actor(tenant, *ADMIN),
            w.services,
            alerts.SaveRuleInput(
                spec=AlertRuleSpec(
                    name="backlog",
                    kind=AlertRuleKind.BACKLOG,
                    threshold=0,
                    window=None,
                    notify=Recipients(roles=("ops",)),
                )
            ),
        )
        rules[tenant] = rule.id
        await submit(w.services, tenant, "change-approval", f"open in {tenant}")
    done, _ = await w.run("evaluate_alert_rules_job")
    assert (done["evaluated"], done["fired"]) == (2, 2)  # only the two tenants' rules
    for tenant, rule_id in rules.items():
        rows = await sql.fetch(
            "SELECT tenant_id, value FROM alert WHERE rule_id = $1", uuid.UUID(rule_id)
        )
        assert [(r["tenant_id"], r["value"]) for r in rows] == [(tenant, 1.0)]


SCENARIOS: dict[str, Callable[[Two], Awaitable[None]]] = {
    "sweep_timers_job": _timers,
    "verify_audit_chains": _audit_check,
    "sequence_audit_events": _sequence_sweep,
    "notification_sweeper": _notifications,
    "sweep_evidence_uploads": _uploads,
    "sweep_audit_exports": _exports,
    "apply_retention_job": _retention,
    "evaluate_alert_rules_job": _alerts,
}


def scheduled(settings: Settings) -> list[str]:
    """The names of the cron jobs the worker schedules, from the worker itself."""
    worker = build_worker(settings, handle_signals=False)
    return [c.coroutine.__name__ for c in worker.cron_jobs]


def test_every_cron_job_has_a_scenario(settings: Settings) -> None:
    assert sorted(scheduled(settings)) == sorted(SCENARIOS)


@pytest.fixture
async def two(settings: Settings, clock: ManualClock, tenant: str, tmp_path: Any) -> Any:
    other = f"{tenant}-2"
    prefix = f"{settings.redis_prefix}-c{uuid.uuid4().hex[:8]}"
    worker_settings = dataclasses.replace(
        settings,
        redis_prefix=prefix,
        timer_tenants=(tenant, other),
        notify_channels=json.dumps({"webhook": {"secrets": ["s" * 32], "timeout_seconds": 5}}),
        evidence_local_dir=str(tmp_path / "evidence"),
    )
    services = ServiceContext(settings=worker_settings, clock=clock)
    for t in (tenant, other):
        await load_templates(actor(t, *ADMIN), services, DEMO_TEMPLATES)
    yield Two(tenant, other, worker_settings, clock, services)
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        keys = [k async for k in redis.scan_iter(match=f"*{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_cron_job_does_its_work_in_every_tenant_under_row_level_security(
    two: Two, name: str
) -> None:
    assert await roles.row_security_bypasses() == []  # the suite's role is bound
    await SCENARIOS[name](two)


async def test_deployments_that_share_a_redis_each_run_every_tick_of_their_crons(
    settings: Settings, redis_url: str
) -> None:
    """Two deployments on one Redis (two key prefixes): each worker queues every tick of its
    own crons, under its own prefix. arq keeps one job of an id in the whole Redis and names a
    tick's job after its cron; under arq's default names the second deployment found the
    first's job of the tick and queued nothing, so only one of them swept."""
    tick = datetime(2026, 12, 1, 5, 0, 3, tzinfo=UTC)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        queued: dict[str, list[str]] = {}
        for deployment in ("a", "b"):
            prefix = f"{settings.redis_prefix}-cron-{deployment}"
            worker = build_worker(
                dataclasses.replace(settings, redis_prefix=prefix), handle_signals=False
            )
            worker._pool = pool  # what the worker's own start-up connects
            await worker.run_cron(tick, delay=0.5)
            ids = [job.decode() for job in await pool.zrange(worker.queue_name, 0, -1)]
            queued[prefix] = ids
            for job_id in ids:
                assert job_id.startswith(f"cron:{prefix}:"), job_id
                assert await pool.exists(f"arq:job:{job_id}")
        # the crons that run at start-up, each queued by both deployments for the same tick
        at_start = {"sweep_timers_job", "sequence_audit_events", "notification_sweeper"}
        for prefix, ids in queued.items():
            assert {job_id.split(":")[2] for job_id in ids} == at_start, (prefix, ids)
    finally:
        await pool.aclose()
