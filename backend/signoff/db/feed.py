"""Reading the tenant event feed (the audit trail) from a cursor: the head of the chain, and
reads that say which event they reflect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from piccolo.engine.postgres import PostgresTransaction

from signoff.db import scope as tenant_scope
from signoff.db import sql
from signoff.db.engine import ENGINE

_SNAPSHOT_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


async def tenant_head(tenant_id: str) -> int:
    """The last sequence number handed out in `tenant_id` (0 for a tenant not yet seen).

    Only numbered events are visible, and numbers are handed out by one sequencer per tenant at
    a time (see `db.audit.sequence_pending`), so every event up to the head visible now is
    committed: a subscriber starting "live" resumes from here.
    """
    row = await sql.fetchrow(
        "SELECT coalesce(max(seq), 0) AS seq FROM audit_event WHERE tenant_id = $1", tenant_id
    )
    return int(row["seq"]) if row else 0


class _SnapshotTransaction(PostgresTransaction):
    """A read-only REPEATABLE READ transaction that declares the task's tenant scope in the
    same round trip as its BEGIN (as `ScopedTransaction` does), and whose connection goes back
    to the pool however the block ends.

    Sibling fields of a query run concurrently and graphql-core cancels the others when one
    fails: piccolo's own exit would then await a rollback on a connection interrupted mid
    statement, fail, and never release it (the pool then waits for it forever at shutdown).
    Here the ROLLBACK and the release run as one step shielded from cancellation, so the
    transaction never reaches the pool still open (asyncpg would roll it back itself, and report
    it as an error of the event loop: an ERROR line in the log for each such request).
    """

    async def __aenter__(self) -> _SnapshotTransaction:
        self.connection = await self.get_connection()
        try:
            # row-level security binds from the first statement: the task's tenant, declared
            # with the BEGIN (without a scope, no tenant: the snapshot sees no tenant's rows)
            scope = tenant_scope.current() or tenant_scope.Scope()
            await self.connection.execute(scope.begin_statement(_SNAPSHOT_BEGIN))
        except BaseException:
            # the BEGIN may have run although its wait was cancelled
            await asyncio.shield(self._end(quiet=True))
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, *exc: object) -> bool:
        self.engine.current_transaction.reset(self.context)
        # Ended and given back as one shielded step: a cancellation landing here (a sibling
        # field failed) no longer leaves the ROLLBACK unsent, which made the pool's release
        # roll back itself and asyncpg report "Resetting connection with an active
        # transaction" as an error of the event loop, one ERROR log line per such request.
        await asyncio.shield(self._end())
        return False

    async def _end(self, *, quiet: bool = False) -> None:
        """ROLLBACK (read only: ending it is all there is to do; after a statement that a
        cancellation interrupted, asyncpg first waits for the server to cancel it), then give
        the connection back; `quiet`: a failed ROLLBACK is left to the pool's release (the
        error being raised is the one that counts)."""
        try:
            await self.connection.execute("ROLLBACK")
        except Exception:
            if not quiet:
                raise
        finally:
            await self._release()

    async def get_connection(self) -> asyncpg.Connection:
        return await ENGINE.acquire()

    async def _release(self) -> None:
        if self.engine.pool:
            await self.engine.pool.release(self.connection)
        else:
            await self.connection.close()


@asynccontextmanager
async def snapshot_read(tenant_id: str) -> AsyncIterator[int]:
    """A read-only transaction on one snapshot (REPEATABLE READ); yields the tenant's event
    head as that snapshot sees it.

    Every statement run inside sees exactly the changes of the events up to the head and none
    after it (a change commits with its events, numbered in commit order), so a client that
    renders what was read and then subscribes with `after` the head misses nothing and gets
    nothing twice. Statements inside must run one after another (one connection).
    """
    if sql.in_transaction():
        raise RuntimeError("a snapshot read must not run inside another transaction")
    async with _SnapshotTransaction(ENGINE, allow_nested=False):
        yield await tenant_head(tenant_id)
