"""Timer jobs on arq: scheduling after commit, firing in batches, and the sweeper.

A job does not carry timers: it fires whatever is due when it runs (the database holds the
truth). Jobs are keyed by due slot (`{prefix}:timers:{slot in ms}`), so however many timers
fall in one slot, the queue holds one job for them; they are written to Redis in one pipelined
transaction per hand-over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from signoff import tracing
from signoff.domain.clock import Clock
from signoff.jobs.notifications import enqueue_planning
from signoff.jobs.queue import enqueue_once
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings


class ArqScheduler:
    """Hands stored timers to arq: one job per due slot within the horizon, deferred to the
    slot's end; a slot already past is the current one.

    Timers beyond the horizon are left to the sweeper. A job id is its slot, so handing a slot
    over again while its job waits changes nothing; the database decides what fires.
    """

    def __init__(self, settings: Settings, clock: Clock, pool: ArqRedis | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._pool = pool
        self._owns_pool = pool is None

    async def pool(self) -> ArqRedis:
        """The arq connection, opened on first use."""
        if self._pool is None:
            self._pool = await create_pool(RedisSettings.from_dsn(self._settings.redis_url))
        return self._pool

    async def schedule_timers(self, due_times: Sequence[datetime]) -> None:
        """Make sure a firing job waits for every slot of `due_times` within the horizon."""
        now = self._clock.now()
        horizon = now + timedelta(seconds=self._settings.timer_horizon_seconds)
        slots = {slot_of(due, now) for due in due_times if due <= horizon}
        await self._enqueue({self._job_id(slot): (slot - now).total_seconds() for slot in slots})

    async def fire_again_now(self) -> None:
        """Queue a firing job to run at once (a run that stopped at its limit continues)."""
        await self._enqueue({f"{self._job_id(self._clock.now())}:more:{time.time_ns()}": 0.0})

    def _job_id(self, slot: datetime) -> str:
        return f"{self._settings.redis_prefix}:timers:{round(slot.timestamp() * 1000)}"

    def _mark(self) -> str:
        return f"{self._settings.redis_prefix}:timers:handed-over"

    async def lost_jobs(self) -> bool:
        """Whether Redis has lost what was handed to it (a `FLUSHALL`, a restart without
        persistence): the mark every hand-over writes beside its jobs is gone."""
        pool = await self.pool()
        return not await pool.exists(self._mark())

    async def _enqueue(self, jobs: dict[str, float]) -> None:
        """Queue a firing job under each id of `jobs` (id -> seconds to wait), leaving one
        already queued or running alone (`enqueue_once`); the hand-over's mark is written in
        the same transaction."""
        pool = await self.pool()
        if not jobs:
            await pool.set(self._mark(), b"1")
            return
        await enqueue_once(
            pool, self._settings.job_queue_name, "fire_due_timers_job", jobs, marks=[self._mark()]
        )

    async def plan_notifications(self, tenant_id: str) -> None:
        """Ask a worker to turn the tenant's new audit events into notifications."""
        await enqueue_planning(await self.pool(), self._settings, tenant_id)

    async def run_audit_export(self, tenant_id: str, export_id: str, attempt: int) -> None:
        """Ask a worker to run an audit export (one job per attempt; the row decides)."""
        pool = await self.pool()
        await pool.enqueue_job(
            "run_audit_export_job",
            tenant_id,
            export_id,
            _job_id=f"{self._settings.redis_prefix}:audit-export:{export_id}:{attempt}",
            _queue_name=self._settings.job_queue_name,
            **tracing.job_kwargs(),
        )

    async def close(self) -> None:
        """Close the connection if this scheduler opened it."""
        if self._pool is not None and self._owns_pool:
            await self._pool.aclose()
            self._pool = None


def slot_of(due_at: datetime, now: datetime) -> datetime:
    """The end of the slot `due_at` falls in; a slot already past is the current one."""
    width = timer_services.TIMER_SLOT_SECONDS
    slot = math.ceil(max(due_at, now).timestamp() / width) * width
    return datetime.fromtimestamp(slot, UTC)


async def fire_due_timers_job(ctx: dict[str, Any]) -> dict[str, int]:
    """arq entry point: fire every due timer, in batches; queue a follow-up when the run
    stopped at its limit, and hand every timer over again at once when Redis lost the jobs
    (rather than leave them to the next sweep: a firing job still running when Redis was
    flushed is what notices first)."""
    services: ServiceContext = ctx["services"]
    firing = await timer_services.fire_due(services)
    swept = 0
    if isinstance(services.scheduler, ArqScheduler):
        if firing.more:
            await services.scheduler.fire_again_now()
        if await services.scheduler.lost_jobs():
            horizon = timedelta(seconds=services.settings.timer_horizon_seconds)
            swept = await timer_services.sweep(services, horizon)
    return {"fired": firing.fired, "void": firing.void, "batches": firing.batches, "swept": swept}


async def fire_timer_job(ctx: dict[str, Any], timer_id: str, token: str) -> str:
    """arq entry point: fire one timer (jobs queued per timer by earlier releases)."""
    services: ServiceContext = ctx["services"]
    result = await timer_services.fire_timer(services, UUID(timer_id), token)
    return result.outcome


async def sweep_timers_job(ctx: dict[str, Any]) -> int:
    """arq cron entry point: hand due timers that have no job to the queue again."""
    services: ServiceContext = ctx["services"]
    horizon = timedelta(seconds=services.settings.timer_horizon_seconds)
    return await timer_services.sweep(services, horizon)
