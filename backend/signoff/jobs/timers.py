"""Timer jobs on arq: scheduling after commit, firing, and the sweeper."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from signoff.domain.clock import Clock
from signoff.jobs.notifications import enqueue_planning
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings


class ArqScheduler:
    """Hands stored timers to arq: one job per (timer, token), deferred to its due time.

    Timers beyond the horizon are left to the sweeper. The job id makes re-scheduling
    idempotent while a job is queued; the database row decides whether it acts.
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

    async def schedule_timers(self, timers: list[tuple[str, str, datetime]]) -> None:
        """Enqueue each timer due within the horizon, deferred by its remaining time."""
        now = self._clock.now()
        horizon = timedelta(seconds=self._settings.timer_horizon_seconds)
        pool = await self.pool()
        for timer_id, token, due_at in timers:
            if due_at - now > horizon:
                continue
            await pool.enqueue_job(
                "fire_timer_job",
                timer_id,
                token,
                _job_id=f"{self._settings.redis_prefix}:timer:{timer_id}:{token}",
                _defer_by=max(0.0, (due_at - now).total_seconds()),
                _queue_name=self._settings.job_queue_name,
            )

    async def plan_notifications(self, tenant_id: str, up_to_seq: int) -> None:
        """Ask a worker to turn the tenant's new audit events into notifications."""
        await enqueue_planning(await self.pool(), self._settings, tenant_id, up_to_seq)

    async def close(self) -> None:
        """Close the connection if this scheduler opened it."""
        if self._pool is not None and self._owns_pool:
            await self._pool.aclose()
            self._pool = None


async def fire_timer_job(ctx: dict[str, Any], timer_id: str, token: str) -> str:
    """arq entry point: fire one timer."""
    services: ServiceContext = ctx["services"]
    result = await timer_services.fire_timer(services, UUID(timer_id), token)
    return result.outcome


async def sweep_timers_job(ctx: dict[str, Any]) -> int:
    """arq cron entry point: re-arm due timers that have no job."""
    services: ServiceContext = ctx["services"]
    horizon = timedelta(seconds=services.settings.timer_horizon_seconds)
    return await timer_services.sweep(services, horizon)
