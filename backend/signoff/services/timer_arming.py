"""Writing a change's timers, inside the transaction that changes the steps.

The progression says, per step, which timers to void, which to arm again at the same times,
and which to arm new (`TimerChange`); each arming gets a fresh token, so a job carrying an older
token finds nothing to do. Timers are handed to the job queue only after commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime

from signoff.db import sql
from signoff.db import timers as timer_repo
from signoff.domain.calendar import WALL_CLOCK, Clockwork
from signoff.domain.records import Step
from signoff.domain.snapshot import TimerChange
from signoff.domain.timers import TimerSpec
from signoff.services.uow import UnitOfWork


async def tenant_calendar(tenant_id: str) -> Clockwork:
    """The tenant's business calendar, or plain wall-clock arithmetic when it has none."""
    calendar = await timer_repo.calendar_of(tenant_id)
    return WALL_CLOCK if calendar is None else calendar


async def timer_writes(
    uow: UnitOfWork, steps: Mapping[str, Step], changes: Sequence[TimerChange]
) -> list[sql.Write]:
    """The statements that void, re-arm and arm the steps' timers as `changes` say, to be
    made with the change's other writes; schedules what they arm for after commit.

    Re-arming reads the timers it voids (their times are kept), so those are voided here at
    once; every other void and every arming is a write of the list."""
    if not changes:
        return []
    voided = [steps[c.step].id for c in changes if c.cancel or c.keep]
    kept = {steps[c.step].id: steps[c.step] for c in changes if c.keep and not c.cancel}
    writes: list[sql.Write | None] = []
    armed = [(steps[c.step], spec, secrets.token_hex(8)) for c in changes for spec in c.arm]
    if kept:
        armed += [
            (
                kept[t.step_id],
                TimerSpec(t.kind, t.due_at, t.level, dict(t.payload)),
                secrets.token_hex(8),
            )
            for t in await timer_repo.cancel_for_steps(voided)
            if t.step_id in kept
        ]
    else:
        writes.append(timer_repo.write_cancel(voided))
    writes.append(timer_repo.write_timers(armed, uow.ctx.clock.now()))
    schedule_after_commit(uow, [spec.due_at for _, spec, _ in armed])
    return [w for w in writes if w is not None]


def schedule_after_commit(uow: UnitOfWork, due_times: list[datetime]) -> None:
    """Hand timers due at `due_times` to the job queue once they are committed (never
    before)."""
    scheduler = uow.ctx.scheduler
    if scheduler is None or not due_times:
        return

    async def schedule() -> None:
        await scheduler.schedule_timers(due_times)

    uow.after_commit(schedule)
