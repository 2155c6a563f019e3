"""arq worker settings: the functions a worker runs and its start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from arq import cron as arq_cron
from arq.connections import RedisSettings
from arq.worker import Function, Worker, func

from signoff import tracing
from signoff.db.engine import ENGINE, close_pool, configure_engine, start_pool
from signoff.domain.clock import Clock, SystemClock
from signoff.jobs.alerts import evaluate_alert_rules_job
from signoff.jobs.audit_check import sequence_audit_events, verify_audit_chains
from signoff.jobs.audit_exports import run_audit_export_job, sweep_audit_exports
from signoff.jobs.evidence import sweep_evidence_uploads
from signoff.jobs.notifications import (
    deliver_batch_job,
    deliver_due_job,
    deliver_job,
    notification_sweeper,
    plan_notifications_job,
    prepare_notifications,
)
from signoff.jobs.retention import apply_retention_job
from signoff.jobs.timers import (
    ArqScheduler,
    fire_due_timers_job,
    fire_timer_job,
    sweep_timers_job,
    watch_for_lost_jobs,
)
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.settings import Settings, get_settings

FUNCTIONS: list[Any] = [verify_audit_chains, fire_due_timers_job, fire_timer_job, sweep_timers_job]
FUNCTIONS += [plan_notifications_job, deliver_batch_job, deliver_job, notification_sweeper]
# A delivery job stops after a bounded number of batches, but slow receivers make each long.
FUNCTIONS += [func(deliver_due_job, timeout=900)]
FUNCTIONS += [sweep_evidence_uploads, apply_retention_job, evaluate_alert_rules_job]
# An export of millions of events outlasts arq's default 300 s job timeout.
FUNCTIONS += [func(run_audit_export_job, timeout=3600, max_tries=1), sweep_audit_exports]


def cron_jobs(settings: Settings) -> list[Any]:
    """Periodic jobs: the timer sweeper, the audit chain check, the sweep of staged audit
    events (every `SEQUENCE_SWEEP_SECONDS`), the notification and upload sweepers, retention
    (hourly) and the alert evaluator (every `alert_evaluation_seconds`)."""
    every = max(1, settings.timer_sweep_seconds)
    alert_minutes, alert_seconds = alert_schedule(settings)

    def cron(coroutine: Any, **options: Any) -> Any:
        # arq names a tick's job `{name}:{time}` and keeps one job of an id in the whole Redis
        # (`arq:job:{id}`): named under the key prefix, deployments that share a Redis each run
        # every tick of their own, and a stopped worker's queued tick is under its prefix too
        return arq_cron(
            coroutine, name=f"cron:{settings.redis_prefix}:{coroutine.__name__}", **options
        )

    return [
        cron(
            sweep_timers_job,
            second=set(range(0, 60, every)),
            run_at_startup=True,
            unique=True,
            timeout=60,
        ),
        cron(verify_audit_chains, minute={7}, second={30}, unique=True),
        cron(
            sequence_audit_events,
            second=set(range(3, 60, SEQUENCE_SWEEP_SECONDS)),
            run_at_startup=True,
            unique=True,
            timeout=60,
        ),
        cron(
            notification_sweeper,
            second={0, 15, 30, 45},
            run_at_startup=True,
            unique=True,
            timeout=120,
        ),
        cron(sweep_evidence_uploads, second={20}, unique=True, timeout=120),
        cron(sweep_audit_exports, second={40}, unique=True, timeout=60),
        cron(apply_retention_job, minute={41}, second={10}, unique=True, timeout=3600),
        cron(
            evaluate_alert_rules_job,
            minute=alert_minutes,
            second=alert_seconds,
            unique=True,
            timeout=120,
        ),
    ]


SEQUENCE_SWEEP_SECONDS = 5
"""How often a worker numbers audit events that a crash between a commit and its sequencing
left staged (the next commit of their tenant numbers them sooner)."""

ALERT_SECOND = 50
"""The second of the minute alert rounds start at: away from the sweepers at second 0."""


def alert_schedule(settings: Settings) -> tuple[set[int] | None, set[int]]:
    """The minutes (None: every one) and seconds at which arq's cron runs the alert evaluator:
    every `alert_evaluation_seconds` (a validated setting: it divides a minute, or is whole
    minutes dividing an hour)."""
    every = settings.alert_evaluation_seconds
    if every <= 60:
        return None, {(ALERT_SECOND + s) % 60 for s in range(0, 60, every)}
    return set(range(0, 60, every // 60)), {ALERT_SECOND}


def unbound(job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`job`, started bound to no tenant whatever the process around it: a job binds the
    tenant it works for, or declares that it spans tenants, itself (services/scopes.py). It
    runs in a span continuing the trace its enqueuer passed, when tracing is on (tracing.py)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        carrier = kwargs.pop(tracing.CARRIER_KEY, None)
        with scopes.no_tenant(), tracing.job_span(job.__name__, carrier):
            return await job(ctx, *args, **kwargs)

    return run


def _unbound_function(function: Any) -> Any:
    # an arq `func(...)` keeps its name and options; its coroutine is wrapped
    if isinstance(function, Function):
        wrapped: Any = unbound(function.coroutine)
        return dataclasses.replace(function, coroutine=wrapped)
    return unbound(function)


def build_worker(
    settings: Settings | None = None, *, clock: Clock | None = None, **overrides: Any
) -> Worker:
    """An arq worker for `settings`; tests pass `burst=True`, `handle_signals=False` and a clock."""
    settings = settings or get_settings()
    clock = clock or SystemClock()
    configure_engine(settings.database_url)
    tracing.configure(settings, "signoff-worker")

    async def startup(ctx: dict[str, Any]) -> None:
        # A pool already running in this process (`signoff dev`, tests) is shared.
        ctx["owns_pool"] = ENGINE.pool is None
        if ctx["owns_pool"]:
            await start_pool(1, max(2, settings.db_pool_max // 2))
        await scopes.check_database_role(settings)
        ctx["settings"] = settings
        ctx["services"] = ServiceContext(
            settings=settings, clock=clock, scheduler=ArqScheduler(settings, clock, ctx["redis"])
        )
        prepare_notifications(ctx, settings)
        if not overrides.get("burst"):
            # a burst worker (tests) stops when its queue is empty: nothing to watch for
            ctx["watch_timers"] = asyncio.create_task(watch_for_lost_jobs(ctx["services"]))

    async def shutdown(ctx: dict[str, Any]) -> None:
        watch = ctx.pop("watch_timers", None)
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if ctx.get("owns_pool"):
            await close_pool()
        tracing.flush()

    crons = cron_jobs(settings)
    for job in crons:
        job.coroutine = unbound(job.coroutine)
    options: dict[str, Any] = {
        "functions": [_unbound_function(function) for function in FUNCTIONS],
        "cron_jobs": crons,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.job_queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "allow_abort_jobs": True,
        "keep_result": 0,
        # a deferred job is noticed within one poll: this bounds a timer's lateness
        "poll_delay": 0.25,
    }
    options.update(overrides)
    return Worker(**options)
