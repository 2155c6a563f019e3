"""Notification jobs on arq: planning, delivering what is due, and the sweeper.

Jobs carry no deliveries; the database rows decide what happens. A delivery job claims due
deliveries from the table in batches (`FOR UPDATE SKIP LOCKED`), so any number of jobs and
workers share the work without sending one twice, and a lost job only waits for the next
sweep.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arq import ArqRedis
from redis.asyncio import Redis

from signoff import metrics, tracing
from signoff.domain.clock import SystemClock
from signoff.jobs.queue import enqueue_once
from signoff.notify import NotifierRegistry
from signoff.services import notifications as notification_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings

log = logging.getLogger("signoff.notifications")

REGISTRY_KEY = "notifier_registry"


def channel_configs(settings: Settings) -> dict[str, Mapping[str, Any]]:
    """The `notify_channels` setting as {channel: config}; JSON text or `@path` to a file."""
    raw = settings.notify_channels.strip()
    if not raw:
        return {}
    if raw.startswith("@"):
        raw = Path(raw[1:]).read_text()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SIGNOFF_NOTIFY_CHANNELS is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError("SIGNOFF_NOTIFY_CHANNELS must be a JSON object of objects")
    return data


def build_registry(settings: Settings) -> NotifierRegistry:
    """Channel plugins from the `signoff.notifiers` entry points, configured from settings.

    A plugin that fails to load is logged and left out; an invalid channel configuration
    raises `ConfigError` (start-up stops, naming plugin, channel and field).
    """
    registry = NotifierRegistry(deliver_timeout=settings.notify_deliver_timeout_seconds)
    registry.load_entry_points()
    registry.configure(channel_configs(settings))
    return registry


def prepare_notifications(ctx: dict[str, Any], settings: Settings) -> None:
    """Worker start-up: build the registry unless one was injected (tests)."""
    if REGISTRY_KEY not in ctx:
        ctx[REGISTRY_KEY] = build_registry(settings)
    log.info("notification channels enabled: %s", ctx[REGISTRY_KEY].configured_channels())


def _registry(ctx: dict[str, Any]) -> NotifierRegistry:
    if REGISTRY_KEY not in ctx:
        prepare_notifications(ctx, ctx["settings"])
    registry: NotifierRegistry = ctx[REGISTRY_KEY]
    return registry


def _services(ctx: dict[str, Any]) -> ServiceContext:
    services = ctx.get("services")
    if isinstance(services, ServiceContext):
        return services
    return ServiceContext(settings=ctx["settings"], clock=ctx.get("clock") or SystemClock())


def _arq(redis: Redis) -> ArqRedis:
    if isinstance(redis, ArqRedis):
        return redis
    return ArqRedis(connection_pool=redis.connection_pool)


async def enqueue_delivering(
    redis: Redis, settings: Settings, request: str, tenant_id: str | None = None
) -> None:
    """Ask a worker to deliver whatever is due (`deliver_due_job`): of `tenant_id` only, or of
    every tenant. `request` names the ask: a job already queued or running under the same
    name is not queued again. Whoever plans deliveries that are due asks for a job of their
    tenant under a name of its own, so that they never wait for another job to finish, nor
    behind other tenants' backlog."""
    kwargs: dict[str, Any] = tracing.job_kwargs()
    if tenant_id is not None:
        kwargs["tenant_id"] = tenant_id
    await _arq(redis).enqueue_job(
        "deliver_due_job",
        _job_id=f"{settings.redis_prefix}:deliver-due:{request}",
        _queue_name=settings.job_queue_name,
        **kwargs,
    )


async def _deliver_planned(
    redis: Redis, settings: Settings, tenant_id: str, due: list[notification_services.Due]
) -> None:
    """After planning committed deliveries that are due: a delivery job for their tenant."""
    if due:
        newest = max(d.delivery_id for d in due)
        await enqueue_delivering(redis, settings, f"{tenant_id}:{newest}", tenant_id)


PLAN_SLOT_SECONDS = 0.2
"""How long planning requests of one tenant are gathered into one job."""


def planning_slot(now: float) -> int:
    """The slot of planning requests made at `now` (seconds since the epoch); its job runs
    at `slot * PLAN_SLOT_SECONDS`, when the slot ends."""
    return math.floor(now / PLAN_SLOT_SECONDS) + 1


class PlanningRequests:
    """The planning requests one process has queued, so that a change committed in a slot
    whose job this process has already queued sends nothing to Redis: the job waits for the
    slot's end and plans every event committed before it, ours included. The first request
    of a tenant's slot is sent (`enqueue_planning`); the others of that slot only check the
    table (the job then carries the trace of the slot's first change in this process, not
    its last). A request whose sending failed is not remembered, so the next one sends
    again; a job Redis loses after it was queued is what the sweeper plans."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._queued: dict[str, int] = {}

    def queued(self, tenant_id: str, slot: int) -> bool:
        """Whether this process has queued the job of `tenant_id`'s `slot`."""
        return self._queued.get(tenant_id) == slot

    def remember(self, tenant_id: str, slot: int) -> None:
        """`tenant_id`'s job for `slot` is queued (call once Redis has answered)."""
        if len(self._queued) >= self._limit and tenant_id not in self._queued:
            self._queued.clear()
        self._queued[tenant_id] = slot


async def enqueue_planning(
    redis: Redis, settings: Settings, tenant_id: str, *, now: float | None = None
) -> None:
    """After a commit: ask a worker to plan the tenant's notifications.

    Requests are gathered per tenant and time slot (`PLAN_SLOT_SECONDS`): the slot's job is
    queued once, in one round trip (`enqueue_once`), to run when the slot ends, so it plans
    every event committed before any request of its slot, and a busy tenant makes a few
    planning jobs a second instead of one per change. A request made while a slot's job runs
    belongs to a later slot, so a running planner never swallows it. The waiting job takes
    the latest request's arguments, so it continues the trace of the slot's last change.
    Planning is idempotent, so a lost or duplicate job is harmless (the sweeper plans what was
    missed).
    """
    now = time.time() if now is None else now
    slot = planning_slot(now)
    await enqueue_once(
        _arq(redis),
        settings.job_queue_name,
        "plan_notifications_job",
        {f"{settings.redis_prefix}:plan:{tenant_id}:{slot}": slot * PLAN_SLOT_SECONDS - now},
        (tenant_id,),
        tracing.job_kwargs(),
        replace=True,
    )


async def plan_notifications_job(ctx: dict[str, Any], tenant_id: str) -> int:
    """arq: plan a tenant's notifications; when some are due now, ask for a delivery job."""
    services = _services(ctx)
    registry = _registry(ctx)
    if not registry.configured_channels():
        return 0  # a worker without channels leaves the events to one that has them
    try:
        due = await notification_services.plan_notifications(
            services, tenant_id, channels=registry.configured_channels()
        )
    except Exception:
        # (arq logs the job's failure; the next sweep asks again)
        metrics.NOTIFICATION_FAILURES.labels("plan").inc()
        raise
    await _deliver_planned(ctx["redis"], services.settings, tenant_id, due)
    return len(due)


MAX_BATCHES_PER_LANE = 25
"""Batches one delivery job claims per lane before it hands the rest to a follow-up job (a
job stays well inside its timeout even when receivers are slow)."""


async def deliver_due_job(ctx: dict[str, Any], tenant_id: str | None = None) -> dict[str, int]:
    """arq: one attempt at every delivery that is due (of `tenant_id` only, when given),
    `notify_deliver_lanes` batches in flight; queues a follow-up when it stopped at its limit.
    Retries are scheduled in the rows and found due by a later job. Returns how many had each
    outcome."""
    services = _services(ctx)
    registry = _registry(ctx)
    if not registry.configured_channels():
        return {}  # a worker without channels would only suppress the deliveries
    lanes = services.settings.notify_deliver_lanes
    done = await notification_services.deliver_due(
        services,
        registry,
        lanes=lanes,
        max_batches=lanes * MAX_BATCHES_PER_LANE,
        tenant_id=tenant_id,
    )
    if done.more:
        await enqueue_delivering(
            ctx["redis"], services.settings, f"more:{time.time_ns()}", tenant_id
        )
    return {**done.outcomes, "batches": done.batches}


async def deliver_batch_job(ctx: dict[str, Any], delivery_ids: list[int]) -> dict[str, int]:
    """arq: one attempt at each of the deliveries (jobs queued per batch by earlier
    releases). Returns how many had each outcome."""
    outcomes = await notification_services.deliver_many(
        _services(ctx), _registry(ctx), delivery_ids
    )
    return dict(Counter(outcomes.values()))


async def deliver_job(ctx: dict[str, Any], delivery_id: int) -> str:
    """arq: one attempt at one delivery (jobs queued one per delivery by earlier releases)."""
    return await notification_services.deliver(_services(ctx), _registry(ctx), delivery_id)


async def enqueue_sweep_planning(redis: Redis, settings: Settings, tenant_id: str) -> None:
    """The sweeper's ask for a planning job of a tenant that is behind: under one id per
    tenant, so that while the job of an earlier sweep is queued or running (a long backlog)
    later sweeps queue no other."""
    await _arq(redis).enqueue_job(
        "plan_notifications_job",
        tenant_id,
        _job_id=f"{settings.redis_prefix}:plan-sweep:{tenant_id}",
        _queue_name=settings.job_queue_name,
        **tracing.job_kwargs(),
    )


async def notification_sweeper(ctx: dict[str, Any]) -> dict[str, int]:
    """arq cron: ask for a planning job of every tenant that is behind (one job per tenant:
    a backlog of many tenants spreads over jobs and workers, each job with a timeout of its
    own, instead of filling this one), fold digests, and ask for a delivery job: it delivers
    whatever else is due, retries and lost jobs' deliveries. With `timer_tenants` set, only
    those tenants' notifications, each in a delivery job of its own.

    A delivery job is named after this sweep: one of an earlier sweep that is still running
    (slow receivers) does not stop it from being queued."""
    services = _services(ctx)
    settings = services.settings
    if not _registry(ctx).configured_channels():
        # Planning would consume the events without anyone to send them to.
        return {"behind": 0, "digests": 0}
    behind = await notification_services.tenants_behind(services)
    for tenant_id in behind:
        await enqueue_sweep_planning(ctx["redis"], settings, tenant_id)
    digests = await notification_services.flush_digests(services)
    sweep = time.time_ns()
    if settings.timer_tenants:
        for tenant_id in settings.timer_tenants:
            await enqueue_delivering(
                ctx["redis"], settings, f"sweep:{sweep}:{tenant_id}", tenant_id
            )
    else:
        await enqueue_delivering(ctx["redis"], settings, f"sweep:{sweep}")
    return {"behind": len(behind), "digests": len(digests)}
