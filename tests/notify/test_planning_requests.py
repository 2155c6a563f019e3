"""Planning requests of one tenant are gathered per time slot: one job per slot, waiting for
the slot's end, carrying the latest request's arguments; a later slot gets a job of its own. A
process sends its first request of a tenant's slot only."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from redis.exceptions import ConnectionError as RedisConnectionError

from signoff import tracing
from signoff.domain.clock import ManualClock
from signoff.jobs import notifications as notification_jobs
from signoff.jobs.notifications import PLAN_SLOT_SECONDS, enqueue_planning
from signoff.jobs.timers import ArqScheduler


async def _forget_jobs(pool: ArqRedis, own: Any) -> None:
    """Delete the planning jobs and the queue of the test's own prefix; close the pool."""
    keys = [k async for k in pool.scan_iter(f"{job_key_prefix}{own.redis_prefix}:plan:*")]
    if keys:
        await pool.delete(*keys)
    await pool.delete(own.job_queue_name)
    await pool.aclose()


async def test_requests_of_one_slot_make_one_job_that_waits_for_the_slot_end(settings, monkeypatch):
    own = dataclasses.replace(settings, redis_prefix=f"plan-test-{uuid.uuid4().hex}")
    pool = await create_pool(RedisSettings.from_dsn(own.redis_url))
    now = [1_000_000.05]
    monkeypatch.setattr(notification_jobs.time, "time", lambda: now[0])
    traces = iter([{"trace_context": {"n": "1"}}, {"trace_context": {"n": "2"}}, {}])
    monkeypatch.setattr(tracing, "job_kwargs", lambda: next(traces))
    try:
        await enqueue_planning(pool, own, "t-one")
        now[0] += PLAN_SLOT_SECONDS / 2  # the same slot
        await enqueue_planning(pool, own, "t-one")
        queued = await pool.zrange(own.job_queue_name, 0, -1, withscores=True)
        [(job_id, score)] = [(k.decode(), s) for k, s in queued]
        assert job_id.endswith(":plan:t-one:5000001")
        assert score == round(5_000_001 * PLAN_SLOT_SECONDS * 1000)  # the slot's end, in ms
        job: Any = deserialize_job(await pool.get(job_key_prefix + job_id))
        assert (job.function, job.args) == ("plan_notifications_job", ("t-one",))
        assert job.kwargs == {"trace_context": {"n": "2"}}  # the latest request's

        now[0] += PLAN_SLOT_SECONDS  # the next slot
        await enqueue_planning(pool, own, "t-one")
        assert await pool.zcard(own.job_queue_name) == 2
    finally:
        await _forget_jobs(pool, own)


async def test_a_process_sends_a_slot_s_planning_request_once(settings, monkeypatch):
    """The scheduler queues a tenant's slot job with its first request; the slot's later
    requests send nothing (the job keeps the first request's arguments), another tenant and
    the next slot are sent; a request whose sending failed is sent again by the next one."""
    own = dataclasses.replace(settings, redis_prefix=f"plan-test-{uuid.uuid4().hex}")
    pool = await create_pool(RedisSettings.from_dsn(own.redis_url))
    now = [2_000_000.01]
    monkeypatch.setattr(notification_jobs.time, "time", lambda: now[0])
    traces = iter([{"trace_context": {"n": str(n)}} for n in range(1, 10)])
    monkeypatch.setattr(tracing, "job_kwargs", lambda: next(traces))
    scheduler = ArqScheduler(own, ManualClock(), pool=pool)

    async def jobs() -> dict[str, Any]:
        queued = await pool.zrange(own.job_queue_name, 0, -1)
        out = {}
        for key in queued:
            job: Any = deserialize_job(await pool.get(job_key_prefix + key.decode()))
            out[key.decode().split(":plan:", 1)[1]] = job.kwargs["trace_context"]["n"]
        return out

    try:
        await scheduler.plan_notifications("t-a")
        now[0] += PLAN_SLOT_SECONDS / 2  # the same slot
        await scheduler.plan_notifications("t-a")
        await scheduler.plan_notifications("t-b")
        assert await jobs() == {"t-a:10000001": "1", "t-b:10000001": "2"}

        now[0] += PLAN_SLOT_SECONDS  # the next slot
        await scheduler.plan_notifications("t-a")
        assert (await jobs())["t-a:10000002"] == "3"

        # A request that Redis refused is not remembered: the next one of its slot is sent.
        unreachable = ArqRedis(host="127.0.0.1", port=1)  # nothing listens there
        failing = ArqScheduler(own, ManualClock(), pool=unreachable)
        with pytest.raises(RedisConnectionError):
            await failing.plan_notifications("t-c")
        await unreachable.aclose()
        failing._pool = pool
        await failing.plan_notifications("t-c")
        assert (await jobs())["t-c:10000002"] == "5"
    finally:
        await _forget_jobs(pool, own)
