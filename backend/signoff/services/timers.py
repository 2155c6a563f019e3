"""Firing timers and sweeping for lost ones. A timer acts through the same transitions as a
person, so its effect is audited and published like any other change.

At least once, at most once: a timer may be handed to workers several times (after a crash, a
flushed Redis, a race); the row lock, its token and the step's state make only one act.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from signoff.db import timers as timer_repo
from signoff.domain.actors import Actor
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.errors import forbidden
from signoff.domain.records import OverdueStep, Step, StepAssignees, Timer, TimerStatus
from signoff.domain.states import StepAction, StepState
from signoff.domain.template_model import Assignees
from signoff.domain.timers import TimerKind
from signoff.services.context import ServiceContext
from signoff.services.engine import (
    ItemView,
    advance,
    record_system_decision,
    save_item,
    transition_step,
)
from signoff.services.items import load_view
from signoff.services.uow import UnitOfWork, unit_of_work

log = logging.getLogger("signoff.timers")


@dataclass(frozen=True)
class FireResult:
    """What a timer job found: `fired`, or why it did nothing."""

    outcome: str
    timer_id: str


async def fire_timer(ctx: ServiceContext, timer_id: UUID, token: str) -> FireResult:
    """Act on one due timer if it is still armed with `token` and its step still in review."""
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
        view = await load_view(actor, ctx, timer.item_id, lock=True)
        step = view.step(timer.step_id)
        if step.state != StepState.ACTIVE:
            await timer_repo.mark(timer_id, "cancelled", None)
            return FireResult("step_not_active", str(timer_id))
        await timer_repo.mark(timer_id, "fired", now)
        await _act(uow, view, step, timer)
        await advance(uow, view)
        return FireResult("fired", str(timer_id))


async def _act(uow: UnitOfWork, view: ItemView, step: Step, timer: Timer) -> None:
    kind = timer.kind
    payload = timer.payload
    lateness = (uow.ctx.clock.now() - timer.due_at).total_seconds()
    base = {
        "step": step.key,
        "timer": str(timer.id),
        "due_at": timer.due_at.isoformat(),
        "lateness_seconds": lateness,
    }
    if kind == TimerKind.REMINDER:
        uow.record(
            "timer.reminder",
            item_id=view.id,
            step_id=step.id,
            data={**base, "assignees": step.assignees.to_dict()},
        )
    elif kind == TimerKind.DEADLINE_RISK:
        uow.record(
            "timer.deadline_risk",
            item_id=view.id,
            step_id=step.id,
            data={**base, "due": step.due_at.isoformat() if step.due_at else None},
        )
    elif kind == TimerKind.ESCALATION:
        await _escalate(uow, view, step, payload, level=timer.level, data=base)
    else:
        await _time_out(uow, view, step, payload["action"], base)


async def _escalate(
    uow: UnitOfWork,
    view: ItemView,
    step: Step,
    payload: Mapping[str, Any],
    *,
    level: int | None,
    data: dict[str, Any],
) -> None:
    action = payload.get("action", "notify")
    targets = Assignees.from_dict(payload.get("targets") or {})
    assignees = step.assignees
    if action == "add_assignees":
        assignees = assignees.merged(targets)
    elif action == "reassign":
        assignees = StepAssignees.of(targets)
    priority = view.item.priority
    if payload.get("priority") is not None:
        priority = max(priority, int(payload["priority"]))
    elif action == "raise_priority":
        priority += 1
    await transition_step(
        uow,
        view,
        step,
        StepAction.ESCALATE,
        changes={"assignees": assignees, "escalation_level": level or step.escalation_level + 1},
        data={
            **data,
            "by": "timer",
            "level": level,
            "action": action,
            "targets": targets.to_dict(),
            "before": step.assignees.to_dict() if assignees != step.assignees else None,
        },
    )
    if priority != view.item.priority:
        await save_item(uow, view, priority=priority)


async def _time_out(
    uow: UnitOfWork, view: ItemView, step: Step, action: str, data: dict[str, Any]
) -> None:
    """The end of the chain: the step's timeout action."""
    if action == "expire":
        await transition_step(uow, view, step, StepAction.EXPIRE, data={**data, "by": "sla"})
    elif action == "reject":
        await transition_step(
            uow, view, step, StepAction.REJECT, reason="SLA breached", data={**data, "by": "sla"}
        )
    elif action == "approve":
        # Only templates that explicitly allow it reach here (checked when the template is saved).
        await record_system_decision(uow, view, step, "timeout auto-approval")
        await transition_step(uow, view, step, StepAction.APPROVE, data={**data, "by": "sla"})
    else:
        override_roles = sorted(uow.ctx.settings.override_roles)
        assignees = step.assignees.merged(Assignees(roles=tuple(override_roles)))
        await transition_step(
            uow,
            view,
            step,
            StepAction.ESCALATE,
            changes={"assignees": assignees},
            data={**data, "by": "sla", "to_roles": override_roles},
        )


async def sweep(ctx: ServiceContext, horizon: timedelta, batch: int = 5000) -> int:
    """Hand every armed timer due within `horizon` to the job queue again. Jobs are keyed by
    timer and token, so timers still queued are not duplicated; lost ones come back."""
    if ctx.scheduler is None:
        raise RuntimeError("sweeping needs a job scheduler")
    due = await timer_repo.due_armed(ctx.clock.now() + horizon, batch)
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
