"""Firing timers and sweeping for lost ones. A timer acts through the same transitions as a
person, so its effect is audited and published like any other change.

At least once, at most once: a timer may be handed to workers several times (after a crash, a
flushed Redis, a race); the row lock, its token and the step's state make only one act.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from signoff.db import timers as timer_repo
from signoff.domain.actors import Actor
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.errors import forbidden
from signoff.domain.events import TimerFired
from signoff.domain.progression import progress
from signoff.domain.records import OverdueStep, Timer, TimerStatus
from signoff.services.context import ServiceContext
from signoff.services.engine import apply, lock_view
from signoff.services.uow import unit_of_work

log = logging.getLogger("signoff.timers")


@dataclass(frozen=True)
class FireResult:
    """What a timer job found: `fired`, or why it did nothing."""

    outcome: str
    timer_id: str


async def fire_timer(ctx: ServiceContext, timer_id: UUID, token: str) -> FireResult:
    """Act on one due timer if it is still armed with `token`: the progression decides what it
    does (nothing, when its step left the state it was armed for: the timer is then void)."""
    probe = await timer_repo.get(timer_id)
    if probe is None:
        return FireResult("missing", str(timer_id))
    actor = Actor.system(probe.tenant_id, request_id=f"timer:{timer_id}")
    async with unit_of_work(actor, ctx) as uow:
        timer = await timer_repo.lock_for_firing(timer_id)
        if timer is None:
            return FireResult("busy", str(timer_id))
        if timer.status != TimerStatus.ARMED or timer.token != token:
            return FireResult("stale", str(timer_id))
        now = ctx.clock.now()
        if timer.due_at > now:
            return FireResult("early", str(timer_id))
        view, context = await lock_view(actor, ctx, item_id=timer.item_id)
        step = view.step(timer.step_id)
        event = TimerFired(step.key, timer.kind, timer.due_at, timer.level, str(timer.id))
        result = progress(view.snapshot, view.definition, event, context)
        if not result.entries:
            await timer_repo.mark(timer_id, "cancelled", None)
            return FireResult("step_not_active", str(timer_id))
        await timer_repo.mark(timer_id, "fired", now)
        await apply(uow, view, result)
        return FireResult("fired", str(timer_id))


async def sweep(ctx: ServiceContext, horizon: timedelta, batch: int = 5000) -> int:
    """Hand every armed timer due within `horizon` to the job queue again. Jobs are keyed by
    timer and token, so timers still queued are not duplicated; lost ones come back. Only the
    timers of `timer_tenants` when that setting names any."""
    if ctx.scheduler is None:
        raise RuntimeError("sweeping needs a job scheduler")
    due = await timer_repo.due_armed(ctx.clock.now() + horizon, batch, ctx.settings.timer_tenants)
    await ctx.scheduler.schedule_timers([(str(t["id"]), t["token"], t["due_at"]) for t in due])
    return len(due)


async def set_business_calendar(
    actor: Actor, ctx: ServiceContext, calendar: BusinessCalendar
) -> BusinessCalendar:
    """Set the tenant's working hours for SLA arithmetic (admins). Steps already in review keep
    the deadlines they were armed with."""
    if not actor.principal.has_any_role(ctx.settings.admin_roles):
        raise forbidden("setting the business calendar needs an admin role")
    async with unit_of_work(actor, ctx) as uow:
        await timer_repo.save_calendar(actor.tenant_id, calendar, ctx.clock.now())
        uow.record(
            "tenant.calendar_set",
            data={
                "timezone": calendar.timezone,
                "workdays": sorted(calendar.workdays),
                "start": calendar.start.isoformat(),
                "end": calendar.end.isoformat(),
                "holidays": [d.isoformat() for d in sorted(calendar.holidays)],
            },
        )
    return calendar


async def overdue_steps(actor: Actor, ctx: ServiceContext, limit: int) -> list[OverdueStep]:
    """Steps past their SLA or with timers that should have fired (operators and admins)."""
    if not actor.principal.has_any_role(ctx.settings.admin_roles):
        raise forbidden("listing overdue steps needs an admin role")
    return await timer_repo.overdue_steps(actor.tenant_id, ctx.clock.now(), limit)


async def step_timers(actor: Actor, ctx: ServiceContext, step_id: UUID) -> list[Timer]:
    """Every timer of one step of the actor's tenant (operators and admins)."""
    if not actor.principal.has_any_role(ctx.settings.admin_roles):
        raise forbidden("listing timers needs an admin role")
    return [t for t in await timer_repo.for_step(step_id) if t.tenant_id == actor.tenant_id]
