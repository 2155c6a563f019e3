"""The bench's pg_stat_activity sampler tells idle transactions and lock waits apart."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg

from signoff.bench.activity import ActivitySampler
from tests.conftest import wait_for


async def test_sampler_sees_an_idle_transaction_and_a_lock_wait(owner_database_url: str) -> None:
    database = urlsplit(owner_database_url).path.lstrip("/")
    holder, waiter, sampling = [await asyncpg.connect(owner_database_url) for _ in range(3)]
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock(5160)")
        blocked = asyncio.create_task(waiter.execute("SELECT pg_advisory_lock(5160)"))
        async with ActivitySampler(sampling, database, interval=0.01) as sampler:
            activity = sampler.activity
            await wait_for(lambda: activity.busy["lock"] >= 3, timeout=30)
        await transaction.rollback()
        await blocked
        await waiter.execute("SELECT pg_advisory_unlock(5160)")
        assert activity.busy["idle in transaction"] >= 3  # the holder, waiting for us
        assert activity.locks["advisory"] >= 3
        assert 0 < activity.share("lock") < 1
        assert "waiting on a lock (advisory" in activity.describe()
    finally:
        for conn in (holder, waiter, sampling):
            await conn.close()
