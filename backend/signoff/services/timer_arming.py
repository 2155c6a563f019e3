"""Arming and disarming a step's timers, inside the transaction that changes the step.

A step's time rules are frozen onto it (`escalation_plan`) the first time it activates, so a
later template edit never changes a running escalation. Each arming gets a fresh token: a job
carrying an older token finds nothing to do.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from signoff.db import timers as timer_repo
from signoff.domain.calendar import WALL_CLOCK, Clockwork
from signoff.domain.records import Step, Timer
from signoff.domain.timers import EscalationPlan, TimerKind, TimerSpec
from signoff.services.uow import UnitOfWork


async def tenant_calendar(tenant_id: str) -> Clockwork:
    """The tenant's business calendar, or plain wall-clock arithmetic when it has none."""
    calendar = await timer_repo.calendar_of(tenant_id)
    return WALL_CLOCK if calendar is None else calendar


async def arm_step_timers(
    uow: UnitOfWork, step: Step, plan_source: EscalationPlan
) -> tuple[EscalationPlan, datetime | None]:
    """Arm the step's timers from now and schedule them after commit. Returns the plan to
    freeze onto the step (its own when it has one, else `plan_source`) and its SLA deadline."""
    now = uow.ctx.clock.now()
    plan = step.escalation_plan or plan_source
    calendar = await tenant_calendar(step.tenant_id)
    specs = plan.timers(now, calendar)
    armed = await timer_repo.insert_timers(
        step, [(spec, secrets.token_hex(8)) for spec in specs], now
    )
    schedule_after_commit(uow, armed)
    return plan, next((s.due_at for s in specs if s.kind == TimerKind.SLA), None)


async def disarm_step_timers(uow: UnitOfWork, step: Step) -> list[Timer]:
    """Cancel a step's armed timers (it was decided, cancelled, or left review)."""
    return await timer_repo.cancel_for_step(step.id)


async def rearm_remaining(uow: UnitOfWork, step: Step) -> None:
    """Void the tokens of a step's pending timers and arm them again at the same times
    (after a reassignment: jobs scheduled before it must not act)."""
    cancelled = await timer_repo.cancel_for_step(step.id)
    now = uow.ctx.clock.now()
    armed = await timer_repo.insert_timers(
        step,
        [
            (TimerSpec(t.kind, t.due_at, t.level, dict(t.payload)), secrets.token_hex(8))
            for t in cancelled
        ],
        now,
    )
    schedule_after_commit(uow, armed)


def schedule_after_commit(uow: UnitOfWork, timers: list[Timer]) -> None:
    """Hand the stored timers to the job queue once they are committed (never before)."""
    scheduler = uow.ctx.scheduler
    if scheduler is None or not timers:
        return
    ids = [(str(t.id), t.token, t.due_at) for t in timers]

    async def schedule() -> None:
        await scheduler.schedule_timers(ids)

    uow.after_commit(schedule)
