"""Timer jobs on arq: scheduling after commit, firing in batches, and the sweeper.

A job does not carry timers: it fires whatever is due when it runs (the database holds the
truth). Jobs are keyed by due slot (`{prefix}:timers:{slot in ms}`), so however many timers
fall in one slot, the queue holds one job for them; they are written to Redis in one pipelined
transaction per hand-over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from signoff import tracing
from signoff.domain.clock import Clock
from signoff.jobs.notifications import PlanningRequests, enqueue_planning, planning_slot
from signoff.jobs.queue import enqueue_once
from signoff.services import scopes
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings

log = logging.getLogger("signoff.timers")

LOSS_CHECK_SECONDS = 0.25
"""How often a running worker looks for the hand-over's mark (one `EXISTS`): Redis losing
its jobs (`FLUSHALL`, a restart without persistence) is noticed within this, not at the
next sweep."""

LOOK_AGAIN_AFTER_FAILURE_SECONDS = 5.0
"""After a look that failed (Redis or the database away), the watcher waits this long: one
logged failure every few seconds, not four a second."""


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
        self._planning = PlanningRequests()

    async def pool(self) -> ArqRedis:
        """The arq connection, opened on first use."""
        if self._pool is None:
            self._pool = await create_pool(RedisSettings.from_dsn(self._settings.redis_url))
        return self._pool

    async def schedule_timers(self, due_times: Sequence[datetime], *, whole: bool = False) -> None:
        """Make sure a firing job waits for every slot of `due_times` within the horizon; what
        is already due gets a job that runs at once (`…:timers:due:{slot}`), not at its slot's
        end. `whole` says that `due_times` are every armed timer's (a sweep): only such a
        hand-over writes the mark whose absence tells that Redis lost the jobs."""
        now = self._clock.now()
        horizon = now + timedelta(seconds=self._settings.timer_horizon_seconds)
        slots = {slot_of(due, now) for due in due_times if now < due <= horizon}
        jobs = {self._job_id(slot): (slot - now).total_seconds() for slot in slots}
        if any(due <= now for due in due_times):
            jobs[self._job_id(slot_of(now, now), "due:")] = 0.0
        await self._enqueue(jobs, marks=[self._mark()] if whole else [])

    async def fire_again_now(self) -> None:
        """Queue a firing job to run at once (a run that stopped at its limit continues)."""
        await self._enqueue({f"{self._job_id(self._clock.now())}:more:{time.time_ns()}": 0.0})

    def _job_id(self, slot: datetime, kind: str = "") -> str:
        return f"{self._settings.redis_prefix}:timers:{kind}{round(slot.timestamp() * 1000)}"

    def _mark(self) -> str:
        return f"{self._settings.redis_prefix}:timers:handed-over"

    async def lost_jobs(self) -> bool:
        """Whether Redis has lost what was handed to it (a `FLUSHALL`, a restart without
        persistence): the mark every sweep writes beside its jobs is gone."""
        pool = await self.pool()
        return not await pool.exists(self._mark())

    async def _enqueue(self, jobs: dict[str, float], marks: Sequence[str] = ()) -> None:
        """Queue a firing job under each id of `jobs` (id -> seconds to wait), leaving one
        already queued or running alone (`enqueue_once`); `marks` are written in the same
        transaction."""
        pool = await self.pool()
        if not jobs:
            for mark in marks:
                await pool.set(mark, b"1")
            return
        await enqueue_once(
            pool, self._settings.job_queue_name, "fire_due_timers_job", jobs, marks=marks
        )

    async def plan_notifications(self, tenant_id: str) -> None:
        """Ask a worker to turn the tenant's new audit events into notifications: the slot's
        job, unless this scheduler has queued it already (`PlanningRequests`)."""
        now = time.time()
        slot = planning_slot(now)
        if self._planning.queued(tenant_id, slot):
            return
        await enqueue_planning(await self.pool(), self._settings, tenant_id, now=now)
        self._planning.remember(tenant_id, slot)

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


@dataclass
class FiringTurn:
    """Whether a firing job of this worker is running, and whether another asked it to go
    round once more."""

    running: bool = False
    again: bool = False


async def fire_due_timers_job(ctx: dict[str, Any]) -> dict[str, int]:
    """arq entry point: fire every due timer, in batches; queue a follow-up when the run
    stopped at its limit, and hand every timer over again at once when Redis lost the jobs
    (rather than leave them to the next sweep: a firing job still running when Redis was
    flushed is what notices first).

    One firing job of a worker fires at a time: a slot's job that starts while another runs
    asks that one to go round once more and returns (`joined`), instead of claiming timers
    and items beside it, which made both skip what the other held and fire out of order."""
    services: ServiceContext = ctx["services"]
    turn: FiringTurn = ctx.setdefault("timer_firing", FiringTurn())
    if turn.running:
        turn.again = True
        return {"fired": 0, "void": 0, "batches": 0, "swept": 0, "joined": 1}
    turn.running = True
    try:
        fired = void = batches = 0
        while True:
            turn.again = False
            firing = await timer_services.fire_due(services)
            fired, void = fired + firing.fired, void + firing.void
            batches += firing.batches
            if firing.more or not turn.again:
                break
    finally:
        turn.running = False
    if firing.more and isinstance(services.scheduler, ArqScheduler):
        await services.scheduler.fire_again_now()
    swept = await recover_lost_jobs(services) or 0
    return {"fired": fired, "void": void, "batches": batches, "swept": swept, "joined": 0}


async def recover_lost_jobs(services: ServiceContext) -> int | None:
    """When Redis has lost the hand-over's mark, hand every timer within the horizon over again
    (what is already due to a job that starts at once): the number handed over, or None when
    nothing was lost."""
    scheduler = services.scheduler
    if not isinstance(scheduler, ArqScheduler) or not await scheduler.lost_jobs():
        return None
    horizon = timedelta(seconds=services.settings.timer_horizon_seconds)
    with scopes.no_tenant():
        return await timer_services.sweep(services, horizon)


async def watch_for_lost_jobs(services: ServiceContext, every: float = LOSS_CHECK_SECONDS) -> None:
    """Until cancelled, `recover_lost_jobs` every `every` seconds. A worker runs this beside
    its jobs; a failed look (Redis restarting) is logged and tried again after
    `LOOK_AGAIN_AFTER_FAILURE_SECONDS`, not four times a second."""
    while True:
        wait = every
        try:
            swept = await recover_lost_jobs(services)
            if swept is not None:
                log.warning(
                    "timers: Redis lost the queued jobs; %s timers handed over again", swept
                )
        except Exception:
            log.exception("timers: looking for lost jobs failed; trying again")
            wait = max(every, LOOK_AGAIN_AFTER_FAILURE_SECONDS)
        await asyncio.sleep(wait)


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
