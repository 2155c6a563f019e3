"""Planning requests of one tenant are gathered per time slot: one job per slot, waiting for
the slot's end, carrying the latest request's arguments; a later slot gets a job of its own."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job

from signoff import tracing
from signoff.jobs import notifications as notification_jobs
from signoff.jobs.notifications import PLAN_SLOT_SECONDS, enqueue_planning


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
        keys = [k async for k in pool.scan_iter(f"{job_key_prefix}{own.redis_prefix}:plan:t-one:*")]
        if keys:
            await pool.delete(*keys)
        await pool.delete(own.job_queue_name)
        await pool.aclose()
