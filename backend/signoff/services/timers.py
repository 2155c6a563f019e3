"""Firing timers and sweeping for lost ones. A timer acts through the same transitions as a
person, so its effect is audited and published like any other change.

At least once, at most once: a timer may be handed to workers several times (after a crash, a
flushed Redis, a race); the item's and the timer's row locks, the timer's status and the step's
state make only one act. Due timers are fired in batches: one transaction per batch of a
tenant's due timers, one audit append for all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from signoff import metrics
from signoff.db import items as items_repo
from signoff.db import timers as timer_repo
from signoff.db.paging import Window
from signoff.domain.actors import Actor
from signoff.domain.calendar import WALL_CLOCK, BusinessCalendar
from signoff.domain.events import TimerFired
from signoff.domain.permissions import Permission
from signoff.domain.progression import Context, progress
from signoff.domain.records import OverdueStep, Step, Timer, TimerStatus
from signoff.domain.timers import TimerSpec
from signoff.services import permissions, scopes
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, apply, context_for, item_definition, lock_view
from signoff.services.uow import Guards, UnitOfWork, run_once, unit_of_work

Mark = tuple[UUID, str, datetime | None]

log = logging.getLogger("signoff.timers")


TIMER_SLOT_SECONDS = 0.5
"""Timers are handed to the job queue by due time rounded up to this: one job per slot fires
every timer due by then, however many there are."""


BUCKETS_PER_LANE = 2
"""Buckets of items per lane of a firing job: lanes take free buckets as they go, so a lane
done with its bucket helps with another instead of idling beside a backlog. More buckets
share work more evenly but make each batch smaller when little is due."""


KEEP_TENANT_BATCHES = 4
"""Full batches a lane fires for one tenant and bucket before it looks again for those of the
earliest due timer: a backlog saves that look-up on most batches, and still no tenant's
backlog holds the others' due timers back for long."""


@dataclass(frozen=True)
class FireResult:
    """What a timer job found: `fired`, or why it did nothing."""

    outcome: str
    timer_id: str


@dataclass(frozen=True)
class Firing:
    """What one round of `fire_due` did: timers fired, timers found void, and whether timers
    may still be due (the round stopped at its limit)."""

    fired: int = 0
    void: int = 0
    batches: int = 0
    more: bool = False


async def _fire(
    uow: UnitOfWork, view: ItemView, context: Context, timer: Timer, marks: list[Mark]
) -> tuple[str, ItemView, bool]:
    """Act on one locked, armed, due timer of the locked `view`: (outcome, the view after,
    whether the item's timers changed). Its mark is appended to `marks`; when its effect voids
    or re-arms timers it is written at once, before the effect, so that the timer is not
    re-armed as if it were still pending."""
    uow.act_as(Actor.system(timer.tenant_id, request_id=f"timer:{timer.id}"))
    step = view.step(timer.step_id)
    event = TimerFired(step.key, timer.kind, timer.due_at, timer.level, str(timer.id))
    result = progress(view.snapshot, view.definition, event, context)
    if not result.entries:
        marks.append((timer.id, "cancelled", None))
        return "step_not_active", view, False
    mark = (timer.id, "fired", context.now)
    uow.after_commit(_count_lateness(timer.kind.value, (context.now - timer.due_at)))
    if result.timers:
        await timer_repo.mark([mark])
    else:
        marks.append(mark)
    return "fired", await apply(uow, view, result), bool(result.timers)


def _count_lateness(kind: str, late: timedelta) -> Callable[[], Awaitable[None]]:
    async def count() -> None:
        metrics.TIMER_LATENESS.labels(kind).observe(max(late.total_seconds(), 0.0))

    return count


async def fire_timer(ctx: ServiceContext, timer_id: UUID, token: str) -> FireResult:
    """Act on one due timer if it is still armed with `token`: the progression decides what it
    does (nothing, when its step left the state it was armed for: the timer is then void)."""
    with scopes.across_tenants("a timer job names only its timer"):
        probe = await timer_repo.get(timer_id)
    if probe is None:
        return FireResult("missing", str(timer_id))
    actor = Actor.system(probe.tenant_id, request_id=f"timer:{timer_id}")
    async with unit_of_work(actor, ctx) as uow:
        view, context = await lock_view(actor, ctx, item_id=probe.item_id)
        timer = await timer_repo.lock_for_firing(timer_id)
        if timer is None:
            return FireResult("missing", str(timer_id))
        if timer.status != TimerStatus.ARMED or timer.token != token:
            return FireResult("stale", str(timer_id))
        if timer.due_at > context.now:
            return FireResult("early", str(timer_id))
        marks: list[Mark] = []
        outcome, _, _ = await _fire(uow, view, context, timer, marks)
        await timer_repo.mark(marks)
        return FireResult(outcome, str(timer_id))


async def fire_batch(
    ctx: ServiceContext, tenant_id: str, limit: int, lane: timer_repo.Lane = (0, 1)
) -> Firing:
    """Fire up to `limit` of the tenant's due timers (of `lane`) in one transaction.

    The earliest due timers no other worker holds are claimed (row locks), then their items
    (an item another transaction holds is left, with its timers, for a later round: neither
    lock ever waits, so a batch cannot deadlock with a person's change, which locks the item
    first). Each timer acts through the progression like a person would, and every mark,
    change and audit event commits together. A timer whose effect changes its item's timers
    ends that item's turn: the item's other due timers are read again in the next batch.
    """
    actor = Actor.system(tenant_id, request_id="timers")
    async with unit_of_work(actor, ctx) as uow:
        now = ctx.clock.now()
        timers = await timer_repo.claim_due(tenant_id, now, limit, lane)
        if not timers:
            return Firing()
        items, calendar = await items_repo.lock_items(
            tenant_id, sorted({t.item_id for t in timers})
        )
        if not items:
            return Firing(batches=1)
        steps: dict[UUID, list[Step]] = {i.id: [] for i in items}
        for step in await items_repo.steps_of_items(tenant_id, list(steps)):
            steps[step.item_id].append(step)
        context = await context_for(ctx, tenant_id, calendar or WALL_CLOCK)
        pending: dict[UUID, list[Timer]] = {}
        for timer in sorted(timers, key=firing_order):
            if timer.item_id in steps:
                pending.setdefault(timer.item_id, []).append(timer)
        marks: list[Mark] = []
        fired = void = 0
        for item in items:
            view = ItemView(item, tuple(steps[item.id]), await item_definition(item, ctx))
            for timer in pending.get(item.id, []):
                outcome, view, timers_changed = await _fire(uow, view, context, timer, marks)
                fired += outcome == "fired"
                void += outcome != "fired"
                if timers_changed:
                    break
        await timer_repo.mark(marks)
    return Firing(fired=fired, void=void, batches=1)


async def fire_due(
    ctx: ServiceContext,
    *,
    batch: int | None = None,
    max_batches: int = 100,
    lanes: int | None = None,
) -> Firing:
    """Fire every armed timer due now (of `timer_tenants` when set), in batches of
    `timer_batch_size`, `timer_lanes` batches at once. The timers are split into
    `BUCKETS_PER_LANE` buckets a lane by a hash of their item; a lane takes the bucket of the
    earliest due timer that no other lane of this call is firing, so lanes never find their
    items held by each other, and a lane whose bucket is done takes over another's work
    instead of idling beside a backlog. Several workers may run this at once: each batch
    skips the timers and items another holds. Stops after `max_batches` with `more` set,
    for a follow-up job."""
    size = batch or ctx.settings.timer_batch_size
    count = max(1, lanes or ctx.settings.timer_lanes)
    buckets = count * BUCKETS_PER_LANE if count > 1 else 1
    busy: set[int] = set()
    total = Firing()

    async def take(skip: list[tuple[str, int]]) -> tuple[str, int] | None:
        """The next (tenant, bucket) for a lane, marked busy until the lane lets it go."""
        while True:
            with scopes.across_tenants("finding the next tenant with due timers"):
                found = await timer_repo.next_due(
                    ctx.clock.now(), ctx.settings.timer_tenants, skip, buckets, sorted(busy)
                )
            if found is None or found[1] not in busy:  # another lane may have taken it meanwhile
                if found is not None:
                    busy.add(found[1])
                return found

    async def lane() -> None:
        nonlocal total
        skip: list[tuple[str, int]] = []
        work: tuple[str, int] | None = None
        kept = 0
        try:
            while total.batches < max_batches:
                if work is None or kept >= KEEP_TENANT_BATCHES:
                    if work is not None:
                        busy.discard(work[1])
                    work = await take(skip)
                    kept = 0
                if work is None:
                    return
                total = dataclasses.replace(total, batches=total.batches + 1)
                done = await fire_batch(ctx, work[0], size, (work[1], buckets))
                total = dataclasses.replace(
                    total, fired=total.fired + done.fired, void=total.void + done.void
                )
                kept += 1
                if not done.fired and not done.void:
                    skip.append(
                        work
                    )  # its due items are all held elsewhere: a later run takes them
                if done.fired + done.void < size:
                    busy.discard(work[1])
                    work = None  # it may have nothing due left: look again
        finally:
            if work is not None:
                busy.discard(work[1])

    # A lane that fails cancels the others: when this returns or raises, no lane is still
    # firing. With gather the others went on behind the failed job: one of them took the
    # failed lane's bucket once it was let go and fired the very timers whose firing had
    # just been rolled back, while the job was reported failed.
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(lane())
    return dataclasses.replace(total, more=total.batches >= max_batches)


async def sweep(ctx: ServiceContext, horizon: timedelta) -> int:
    """Hand every armed timer due within `horizon` to the job queue again (one job per due
    slot, keyed by the slot, so slots still queued are not duplicated and lost ones come
    back; what is already due to a job that runs at once); only those of `timer_tenants`
    when that setting names any. Returns how many timers were handed over."""
    if ctx.scheduler is None:
        raise RuntimeError("sweeping needs a job scheduler")
    now = ctx.clock.now()
    with scopes.across_tenants("the timer sweeper re-arms every tenant's timers"):
        slots = await timer_repo.due_slots(
            now, now + horizon, TIMER_SLOT_SECONDS, ctx.settings.timer_tenants
        )
    await ctx.scheduler.schedule_timers([slot for slot, _ in slots], whole=True)
    return sum(count for _, count in slots)


def firing_order(timer: Timer) -> tuple[datetime, int, int]:
    """Due time, then the kind's order at one instant, then level (as the plan sorts them)."""
    return TimerSpec(timer.kind, timer.due_at, timer.level).sort_key


async def set_business_calendar(
    actor: Actor, ctx: ServiceContext, calendar: BusinessCalendar, guards: Guards = Guards()
) -> BusinessCalendar:
    """Set the tenant's working hours for SLA arithmetic (admins). Steps already in review keep
    the deadlines they were armed with."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_TIMERS, "setting the business calendar"
    )
    data = {
        "timezone": calendar.timezone,
        "workdays": sorted(calendar.workdays),
        "start": calendar.start.isoformat(),
        "end": calendar.end.isoformat(),
        "holidays": [d.isoformat() for d in sorted(calendar.holidays)],
    }
    async with unit_of_work(actor, ctx) as uow:

        async def change() -> BusinessCalendar:
            await timer_repo.save_calendar(actor.tenant_id, calendar, ctx.clock.now())
            uow.record("tenant.calendar_set", data=data)
            return calendar

        async def replay(kept: dict[str, Any]) -> BusinessCalendar:
            return calendar  # the same request: the same calendar

        return await run_once(
            uow,
            guards.idempotency_key,
            "setBusinessCalendar",
            data,
            change,
            keep=lambda _: {},
            replay=replay,
        )


async def overdue_steps(actor: Actor, ctx: ServiceContext, window: Window) -> list[OverdueStep]:
    """A page of the steps past their SLA or with timers that should have fired, earliest
    deadline first (operators and admins)."""
    await permissions.require(actor, ctx, Permission.ADMINISTER_TIMERS, "listing overdue steps")
    return await timer_repo.overdue_steps(actor.tenant_id, ctx.clock.now(), window)


async def step_timers(actor: Actor, ctx: ServiceContext, step_id: UUID) -> list[Timer]:
    """Every timer of one step of the actor's tenant (operators and admins)."""
    await permissions.require(actor, ctx, Permission.ADMINISTER_TIMERS, "listing timers")
    return [t for t in await timer_repo.for_step(step_id) if t.tenant_id == actor.tenant_id]
