"""The one PostgreSQL engine of a process.

The engine object exists from import on so that tables can bind to it, but it holds no
configuration until a composition root (the CLI, the app factory, a test session) calls
`configure_engine`; nothing connects before then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import asyncpg
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction

from signoff.db import scope as tenant_scope


class ScopedTransaction(PostgresTransaction):
    """A transaction that declares its tenant scope (`signoff.db.scope`) in the same round trip
    as BEGIN, so row-level security binds every statement in it; the settings are
    transaction-local and leave nothing on the pooled connection.

    Its connection goes back to the pool however the transaction ends. piccolo's own exit
    releases it only when BEGIN, COMMIT and ROLLBACK all succeed: a COMMIT refused by the
    server (a deferred constraint, a serialization failure), a connection lost or a task
    cancelled at the wrong moment kept the connection out of the pool for good and left the
    task bound to the dead transaction, and a pool of a few connections then hung every
    later query of the process."""

    __slots__ = ("generic_plans", "scope")

    def __init__(
        self, engine: PostgresEngine, allow_nested: bool = True, generic_plans: bool = False
    ) -> None:
        super().__init__(engine=engine, allow_nested=allow_nested)
        self.generic_plans = generic_plans

    async def __aenter__(self) -> ScopedTransaction:
        if self._parent is not None:
            return cast(ScopedTransaction, self._parent)
        self.connection = await self.get_connection()
        try:
            self.transaction = self.connection.transaction()
            await self.begin()
        except BaseException:
            await self._give_back()
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent is not None:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        finally:
            self.engine.current_transaction.reset(self.context)
            await self._give_back()
        return exception is None

    async def get_connection(self) -> asyncpg.Connection:
        engine = cast(ScopedEngine, self.engine)
        return await engine.acquire()

    async def _give_back(self) -> None:
        # The pool's release rolls back a transaction still open (and closes a connection
        # it cannot reset); it is shielded from cancellation.
        if self.engine.pool is not None:
            await self.engine.pool.release(self.connection)
        else:
            await self.connection.close()

    @property
    def commits_with_statement(self) -> bool:
        """Whether `commit_with` can end this transaction (it began with a scope)."""
        return self.scope is not None

    async def begin(self) -> None:
        self.scope = tenant_scope.current()
        if self.scope is None:
            await self.transaction.start()
            return
        await self.connection.execute(self.scope.begin_statement(generic_plans=self.generic_plans))

    async def commit(self) -> None:
        if self.scope is None:
            await self.transaction.commit()
        else:
            await self.connection.execute("COMMIT")
        self._committed = True

    async def commit_with(self, statement: str, *, then: str | None = None) -> None:
        """Run `statement` (no parameters) and COMMIT in one round trip, as one simple query:
        nothing the statement holds until commit (a lock) waits for this process to answer.
        If the statement fails the server skips the COMMIT and the error propagates, so the
        transaction's exit rolls it back.

        `then`, if given, travels in the same message after the COMMIT: a whole transaction
        of its own (BEGIN … COMMIT) that must not fail, since its error would read as the
        change's although the change has committed."""
        if self.scope is None:
            raise RuntimeError("commit_with needs a transaction begun with a scope")
        after = f";\n{then}" if then else ""
        await self.connection.execute(f"{statement};\nCOMMIT{after}")
        self._committed = True

    async def rollback(self) -> None:
        if self.scope is None:
            await self.transaction.rollback()
        else:
            await self.connection.execute("ROLLBACK")
        self._rolled_back = True


class ScopedEngine(PostgresEngine):
    """piccolo's engine whose transactions declare the task's tenant scope, and whose
    statements outside a transaction run in one of their own when a scope is set.

    It skips piccolo's check at construction: piccolo connects to the configured server to log
    its version as soon as the engine is built, and at import the configuration is still empty,
    so it would probe the machine's default PostgreSQL (printing another server's version, or a
    warning where there is none)."""

    acquire_timeout: float = 60.0
    """Longest a task waits for a pooled connection before it fails (TimeoutError): a pool
    that cannot serve is an error to see, not a wait without end (a leaked or deadlocked
    pool would otherwise hang every job and request behind it)."""

    async def check_version(self) -> None:
        return None

    async def acquire(self) -> asyncpg.Connection:
        """A pooled connection (give it back with `pool.release`), waiting at most
        `acquire_timeout`; a new one of its own when no pool runs (close it)."""
        if self.pool is None:
            return await self.get_new_connection()
        return await self.pool.acquire(timeout=self.acquire_timeout)

    def transaction(
        self, allow_nested: bool = True, *, generic_plans: bool = False
    ) -> ScopedTransaction:
        """A transaction bound to the current scope (joined, if one is open on this task).

        `generic_plans`: its prepared statements run their generic plan from the first
        execution on (`plan_cache_mode`, transaction-local; only for a transaction begun with
        a scope). For a unit of work: its statements find rows by key and write arrays of
        rows (`unnest`), and a custom plan of those knows each array's length while the
        generic plan guesses, so the planner judged the custom plan cheaper at every
        execution and planned the change's writes anew each time (docs/architecture.md,
        "A unit of work plans its statements once")."""
        return ScopedTransaction(
            engine=self, allow_nested=allow_nested, generic_plans=generic_plans
        )

    async def _run_in_pool(self, query: str, args: Sequence[Any] | None = None) -> Any:
        if self.pool is None:
            raise ValueError("A pool isn't currently running.")
        async with self.pool.acquire(timeout=self.acquire_timeout) as connection:
            return await fetch_scoped(connection, query, *(args or ()))

    async def _run_in_new_connection(self, query: str, args: Sequence[Any] | None = None) -> Any:
        connection = await self.get_new_connection()
        try:
            return await fetch_scoped(connection, query, *(args or ()))
        finally:
            await connection.close()


async def fetch_scoped(connection: asyncpg.Connection, query: str, *args: Any) -> Any:
    """`query` on a connection outside any transaction: alone when no scope is set, else in a
    transaction of its own that declares the scope (three round trips instead of one)."""
    current = tenant_scope.current()
    if current is None:
        return await connection.fetch(query, *args)
    await connection.execute(current.begin_statement())
    try:
        rows = await connection.fetch(query, *args)
    except Exception:
        # (on cancellation the pool's release rolls back)
        if not connection.is_closed():
            await connection.execute("ROLLBACK")
        raise
    await connection.execute("COMMIT")
    return rows


ENGINE = ScopedEngine(config={}, extensions=())

PICCOLO_CONF_MODULE = "signoff.db.piccolo_conf"


def configure_engine(database_url: str) -> PostgresEngine:
    """Point the engine at `database_url`; called once per process before any query."""
    if not database_url:
        raise RuntimeError("no database configured: set SIGNOFF_DATABASE_URL")
    ENGINE.config = {"dsn": database_url}
    # piccolo's migration commands find the engine through PICCOLO_CONF.
    os.environ["PICCOLO_CONF"] = PICCOLO_CONF_MODULE
    return ENGINE


async def start_pool(min_size: int, max_size: int) -> None:
    """Open the connection pool; without it every query opens its own connection.

    Pooled connections never carry session state (no LISTEN, session advisory lock, cursor or
    plain SET — use SET LOCAL and transaction-level locks; the realtime listener has its own
    connection), so a released connection is only rolled back if a transaction is open, not
    reset by asyncpg's default query: that would be one more round trip per transaction.
    """
    await ENGINE.start_connection_pool(min_size=min_size, max_size=max_size, reset=_rollback_only)


async def _rollback_only(connection: asyncpg.Connection) -> None:
    # asyncpg has already rolled back an open transaction before calling this.
    return None


async def close_pool() -> None:
    """Close the pool, waiting for connections in use."""
    await ENGINE.close_connection_pool()
