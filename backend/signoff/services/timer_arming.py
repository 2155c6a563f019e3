"""Arming and disarming a step's timers, inside the transaction that changes the step.

A step's time rules are frozen onto it (`escalation_plan`) the first time it activates, so a
later template edit never changes a running escalation. Each arming gets a fresh token: a job
carrying an older token finds nothing to do.
"""

from __future__ import annotations

import secrets
from datetime import time
from typing import Any

from signoff.db import items as items_repo
from signoff.db import timers as timer_repo
from signoff.domain.calendar import WALL_CLOCK, BusinessCalendar, Clockwork
from signoff.domain.timers import EscalationPlan, TimerKind
from signoff.services.uow import UnitOfWork


async def tenant_calendar(tenant_id: str) -> Clockwork:
    """The tenant's business calendar, or plain wall-clock arithmetic when it has none."""
    row = await timer_repo.calendar_of(tenant_id)
    if row is None:
        return WALL_CLOCK
    return BusinessCalendar(
        timezone=row["timezone"],
        workdays=frozenset(row["workdays"]),
        start=row["day_start"] if isinstance(row["day_start"], time) else time(9),
        end=row["day_end"] if isinstance(row["day_end"], time) else time(17),
        holidays=frozenset(row["holidays"] or ()),
    )


async def arm_step_timers(
    uow: UnitOfWork, item: dict[str, Any], step: dict[str, Any], plan_source: EscalationPlan
) -> list[dict[str, Any]]:
    """Freeze the plan onto the step (first time only), arm its timers from now, set the SLA
    deadline, and schedule the timers after commit."""
    now = uow.ctx.clock.now()
    snapshot = step.get("escalation_plan")
    plan = EscalationPlan.from_dict(snapshot) if snapshot else plan_source
    calendar = await tenant_calendar(item["tenant_id"])
    specs = plan.timers(now, calendar)
    rows = await timer_repo.insert_timers(
        [
            {
                "tenant_id": item["tenant_id"],
                "item_id": item["id"],
                "step_id": step["id"],
                "kind": spec.kind.value,
                "level": spec.level,
                "due_at": spec.due_at,
                "token": secrets.token_hex(8),
                "payload": spec.payload,
                "now": now,
            }
            for spec in specs
        ]
    )
    due = next((s.due_at for s in specs if s.kind == TimerKind.SLA), None)
    changes: dict[str, Any] = {"due_at": due}
    if not snapshot:
        changes["escalation_plan"] = plan.to_dict()
    await items_repo.update_step(step["id"], changes, now)
    step.update(changes)
    step["version"] += 1
    schedule_after_commit(uow, rows)
    return rows


async def disarm_step_timers(uow: UnitOfWork, step: dict[str, Any]) -> list[dict[str, Any]]:
    """Cancel a step's armed timers (it was decided, cancelled, or left review)."""
    cancelled = await timer_repo.cancel_for_step(step["id"])
    return cancelled


async def rearm_remaining(uow: UnitOfWork, item: dict[str, Any], step: dict[str, Any]) -> None:
    """Void the tokens of a step's pending timers and arm them again at the same times
    (after a reassignment: jobs scheduled before it must not act)."""
    cancelled = await timer_repo.cancel_for_step(step["id"])
    now = uow.ctx.clock.now()
    rows = await timer_repo.insert_timers(
        [{**t, "token": secrets.token_hex(8), "now": now} for t in cancelled]
    )
    schedule_after_commit(uow, rows)


def schedule_after_commit(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """Hand the stored timers to the job queue once they are committed (never before)."""
    scheduler = uow.ctx.scheduler
    if scheduler is None or not rows:
        return
    ids = [(str(r["id"]), r["token"], r["due_at"]) for r in rows]

    async def schedule() -> None:
        await scheduler.schedule_timers(ids)

    uow.after_commit(schedule)
