"""Cross-process fan-out of committed events: one LISTEN connection per process, the database
as the source of every event.

A change's transaction writes its audit events and `pg_notify('signoff_events', {tenant, seq})`;
PostgreSQL delivers the notification on commit to every process's listener. A notification
carries no event: it only wakes the subscribers of that tenant, who then read the events after
their own cursor from `audit_event`. So a lost notification (listener reconnecting, a process
paused) only delays delivery until the next poll, and the order and completeness of what a
subscriber receives is the database's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from signoff.db import audit as audit_repo

log = logging.getLogger("signoff.realtime")

CHANNEL = audit_repo.REALTIME_CHANNEL


class _Waiter:
    """One subscriber's wake-up flag."""

    __slots__ = ("event", "tenant_id")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.event = asyncio.Event()


class RealtimeHub:
    """Wakes a process's subscribers when their tenant commits events; tracks their tasks."""

    def __init__(
        self,
        database_url: str,
        *,
        poll_interval: float = 2.0,
        batch_size: int = 200,
        keepalive: float = 10.0,
        reconnect_delay: float = 0.5,
        gap_grace: float = 5.0,
    ) -> None:
        self._dsn = database_url
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._keepalive = keepalive
        self._reconnect_delay = reconnect_delay
        self._gap_grace = gap_grace
        self._waiters: dict[str, set[_Waiter]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._closed = False
        self.listening = asyncio.Event()
        self.listener_connects = 0
        """How many times the LISTEN connection was (re)established."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; wait up to `wait` seconds for the first LISTEN (polling covers a
        database that is not reachable yet)."""
        self._closed = False
        self._listener = asyncio.create_task(self._listen_forever(), name="signoff-listen")
        try:
            await asyncio.wait_for(self.listening.wait(), wait)
        except TimeoutError:
            log.warning("realtime listener not connected after %.1fs; polling meanwhile", wait)

    async def stop(self) -> None:
        """Stop listening and end every subscription stream of this process."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._wake_all()

    @property
    def listener_pid(self) -> int | None:
        """Server process id of the LISTEN connection (for diagnostics and tests)."""
        conn = self._connection
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    def running_tasks(self) -> set[asyncio.Task[Any]]:
        """Subscription tasks of this process that have not finished."""
        return {t for t in self._tasks if not t.done()}

    @property
    def subscriber_count(self) -> int:
        """Registered subscription streams."""
        return sum(len(w) for w in self._waiters.values())

    # -- listening -------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        delay = self._reconnect_delay
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._connection = conn
                self.listener_connects += 1
                self.listening.set()
                # Anything committed while nobody listened is in the table: look now.
                self._wake_all()
                delay = self._reconnect_delay
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._keepalive)
                    except TimeoutError:
                        # A half-open TCP connection never reports itself: ask.
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), self._keepalive)
                log.warning("realtime listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime listener failed (%s); reconnecting", type(exc).__name__)
            finally:
                self.listening.clear()
                self._connection = None
                if conn is not None:
                    await _close_quietly(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            tenant_id = str(json.loads(payload)["tenant"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed realtime notification")
            return
        for waiter in self._waiters.get(tenant_id, ()):
            waiter.event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.event.set()

    # -- subscribing -----------------------------------------------------------------------

    def _register(self, tenant_id: str) -> _Waiter:
        waiter = _Waiter(tenant_id)
        self._waiters.setdefault(tenant_id, set()).add(waiter)
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            # The operation task may be cancelled while the stream is suspended at a `yield`
            # (its `finally` then runs only when the generator is collected): forget the task
            # and its waiter as soon as the task ends, whatever way it ends.
            task.add_done_callback(lambda t: self._forget(t, waiter))
        return waiter

    def _forget(self, task: asyncio.Task[Any] | None, waiter: _Waiter) -> None:
        waiters = self._waiters.get(waiter.tenant_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[waiter.tenant_id]
        if task is not None:
            self._tasks.discard(task)

    async def batches(self, tenant_id: str, after_seq: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Every event of `tenant_id` after `after_seq`, in sequence order, in batches: first
        the backlog, then live, until the hub stops or the consumer stops iterating.

        Sequence numbers are gapless in commit order (see `append_events`), so "seq > cursor"
        never skips an event that commits later. A hole in the numbers is therefore treated as
        not yet visible: delivery stops before it and retries; only a hole older than
        `gap_grace` seconds is skipped (logged), so that a broken chain cannot stall a stream.
        """
        waiter = self._register(tenant_id)
        loop = asyncio.get_running_loop()
        cursor = after_seq
        gap_since: float | None = None
        try:
            while not self._closed:
                waiter.event.clear()
                rows = await audit_repo.events_after(tenant_id, cursor, self.batch_size)
                ready: list[dict[str, Any]] = []
                for row in rows:
                    if row["seq"] != cursor + len(ready) + 1:
                        break
                    ready.append(row)
                if ready:
                    cursor = ready[-1]["seq"]
                    gap_since = None
                    yield ready
                if len(ready) < len(rows):
                    now = loop.time()
                    gap_since = gap_since if gap_since is not None else now
                    if now - gap_since >= self._gap_grace:
                        log.error(
                            "tenant %s: events %d..%d missing; skipping",
                            tenant_id,
                            cursor + 1,
                            rows[len(ready)]["seq"] - 1,
                        )
                        cursor = rows[len(ready)]["seq"] - 1
                        gap_since = None
                        continue
                    await self._wait(waiter, min(0.1, self.poll_interval))
                    continue
                if len(rows) == self.batch_size:
                    continue  # more backlog
                await self._wait(waiter, self.poll_interval)
        finally:
            self._forget(None, waiter)

    async def _wait(self, waiter: _Waiter, seconds: float) -> None:
        # The timeout is the fallback: a missed notification costs at most one poll interval.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.event.wait(), seconds)


async def _close_quietly(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        conn.terminate()
