"""A transaction gives its connection back to the pool however it ends: a COMMIT the server
refuses, a rollback on a connection that is gone. Each case is repeated more times than the
pool has connections; a connection kept out of the pool would make the next query wait
forever (bounded here, to fail instead)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from signoff.db import scope
from signoff.db.engine import ScopedEngine, ScopedTransaction

POOL_SIZE = 2
ROUNDS = 3 * POOL_SIZE
HANG = 60.0  # only catches a hang: a free connection is acquired in milliseconds


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[ScopedEngine]:
    """An engine of its own with a pool of `POOL_SIZE` connections."""
    engine = ScopedEngine(config={"dsn": database_url}, extensions=())
    await engine.start_connection_pool(min_size=1, max_size=POOL_SIZE)
    yield engine
    await engine.close_connection_pool()


async def _pool_still_serves(engine: ScopedEngine) -> None:
    assert engine.current_transaction.get() is None, "the task is still bound to a transaction"
    async with asyncio.timeout(HANG):
        # every connection of the pool at once: none was kept out of it
        held = [await engine.pool.acquire() for _ in range(POOL_SIZE)]
        try:
            assert [await c.fetchval("SELECT 1") for c in held] == [1] * POOL_SIZE
        finally:
            for connection in held:
                await engine.pool.release(connection)
        async with engine.transaction() as transaction:
            assert await transaction.connection.fetchval("SELECT 2") == 2


async def _refused_at_commit(engine: ScopedEngine) -> None:
    async with engine.transaction() as transaction:
        assert isinstance(transaction, ScopedTransaction)
        connection = transaction.connection
        await connection.execute(
            "CREATE TEMP TABLE refused_at_commit (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)"
            " ON COMMIT DROP"
        )
        await connection.execute("INSERT INTO refused_at_commit VALUES (1), (1)")


@pytest.mark.parametrize("scoped", [False, True], ids=["unscoped", "tenant-scoped"])
async def test_a_commit_the_server_refuses_gives_the_connection_back(
    engine: ScopedEngine, scoped: bool
) -> None:
    for _ in range(ROUNDS):
        bound = scope.tenant("trefused") if scoped else contextlib.nullcontext()
        with bound, pytest.raises(asyncpg.UniqueViolationError):
            await _refused_at_commit(engine)
        await _pool_still_serves(engine)


async def test_a_rollback_on_a_lost_connection_gives_the_connection_back(
    engine: ScopedEngine,
) -> None:
    for _ in range(ROUNDS):
        with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)):
            async with engine.transaction() as transaction:
                transaction.connection.terminate()
                raise ValueError("the body failed on a connection that is gone")
        await _pool_still_serves(engine)


async def test_a_cancelled_transaction_gives_the_connection_back(
    engine: ScopedEngine, database_url: str
) -> None:
    for _ in range(ROUNDS):
        entered: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def body(entered: asyncio.Future[int] = entered) -> None:
            async with engine.transaction() as transaction:
                entered.set_result(transaction.connection.get_server_pid())
                await transaction.connection.execute("SELECT pg_sleep(600)")

        task = asyncio.create_task(body())
        pid = await asyncio.wait_for(entered, HANG)
        # cancel once the server runs the statement: a cancel request that arrives before it
        # starts is ignored by PostgreSQL, and the statement would then run its full length
        watcher = await asyncpg.connect(database_url)
        try:
            async with asyncio.timeout(HANG):
                while not await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
                    " AND query LIKE 'SELECT pg_sleep%'",
                    pid,
                ):
                    await asyncio.sleep(0.01)  # polling the server's state, not a timer
        finally:
            await watcher.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _pool_still_serves(engine)


async def test_waiting_for_a_connection_of_a_pool_that_cannot_serve_is_bounded(
    engine: ScopedEngine,
) -> None:
    engine.acquire_timeout = 0.5
    held = [await engine.acquire() for _ in range(POOL_SIZE)]
    try:
        async with asyncio.timeout(HANG):
            with pytest.raises(TimeoutError):
                async with engine.transaction():
                    pass
            with pytest.raises(TimeoutError):
                await engine._run_in_pool("SELECT 1")  # noqa: SLF001 - a statement outside a transaction
    finally:
        for connection in held:
            await engine.pool.release(connection)
    await _pool_still_serves(engine)
