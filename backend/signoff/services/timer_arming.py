"""Writing a change's timers, inside the transaction that changes the steps.

The progression says, per step, which timers to void, which to arm again at the same times,
and which to arm new (`TimerChange`); each arming gets a fresh token, so a job carrying an older
token finds nothing to do. Timers are handed to the job queue only after commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from signoff.db import timers as timer_repo
from signoff.domain.calendar import WALL_CLOCK, Clockwork
from signoff.domain.records import Step, Timer
from signoff.domain.snapshot import TimerChange
from signoff.domain.timers import TimerSpec
from signoff.services.uow import UnitOfWork


async def tenant_calendar(tenant_id: str) -> Clockwork:
    """The tenant's business calendar, or plain wall-clock arithmetic when it has none."""
    calendar = await timer_repo.calendar_of(tenant_id)
    return WALL_CLOCK if calendar is None else calendar


async def apply_timer_changes(
    uow: UnitOfWork, steps: Mapping[str, Step], changes: Sequence[TimerChange]
) -> None:
    """Void, re-arm and arm the steps' timers as `changes` say (two statements at most), and
    schedule what was armed after commit."""
    if not changes:
        return
    voided = [steps[c.step].id for c in changes if c.cancel or c.keep]
    cancelled = await timer_repo.cancel_for_steps(voided)
    kept = {steps[c.step].id: steps[c.step] for c in changes if c.keep and not c.cancel}
    armed = [(steps[c.step], spec, secrets.token_hex(8)) for c in changes for spec in c.arm]
    armed += [
        (
            kept[t.step_id],
            TimerSpec(t.kind, t.due_at, t.level, dict(t.payload)),
            secrets.token_hex(8),
        )
        for t in cancelled
        if t.step_id in kept
    ]
    schedule_after_commit(uow, await timer_repo.insert_timers(armed, uow.ctx.clock.now()))


def schedule_after_commit(uow: UnitOfWork, timers: list[Timer]) -> None:
    """Hand the stored timers to the job queue once they are committed (never before)."""
    scheduler = uow.ctx.scheduler
    if scheduler is None or not timers:
        return
    due_times = [t.due_at for t in timers]

    async def schedule() -> None:
        await scheduler.schedule_timers(due_times)

    uow.after_commit(schedule)
