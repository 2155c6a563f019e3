"""Queueing arq jobs in one round trip.

arq's `enqueue_job` makes three (WATCH, EXISTS, then MULTI … EXEC). Where a job id is enough
to tell a job already queued or running, one pipelined transaction writes the same keys:
`SET NX` leaves a job that is queued or running alone, `ZADD NX` keeps its place in the queue.
Unlike `enqueue_job`, a finished job whose result arq still keeps does not block a new one
with its id; every job queued this way must be harmless to run again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from arq import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_job


async def enqueue_once(
    pool: ArqRedis,
    queue: str,
    function: str,
    jobs: Mapping[str, float],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    replace: bool = False,
    marks: Sequence[str] = (),
) -> None:
    """Queue `function(*args, **kwargs)` under each id of `jobs` (id -> seconds to wait),
    unless a job with that id is queued or running, in one round trip. With `replace`, a job
    still waiting under the id takes these arguments instead of its own (its place in the
    queue stays): for jobs that serve every request made before they start. `marks` are keys
    set in the same transaction (a mark that is gone tells that Redis lost the jobs too)."""
    if not jobs:
        return
    enqueued_ms = round(time.time() * 1000)
    payload = serialize_job(
        function, tuple(args), dict(kwargs or {}), None, enqueued_ms, serializer=pool.job_serializer
    )
    async with pool.pipeline(transaction=True) as pipe:
        for job_id, wait in sorted(jobs.items()):
            score = enqueued_ms + max(0, round(wait * 1000))
            expires_ms = score - enqueued_ms + pool.expires_extra_ms
            pipe.set(job_key_prefix + job_id, payload, px=expires_ms, nx=not replace)
            pipe.zadd(queue, {job_id: score}, nx=True)
        for mark in marks:
            pipe.set(mark, b"1")
        await pipe.execute()
