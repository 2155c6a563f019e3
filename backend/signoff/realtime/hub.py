"""Cross-process fan-out of committed events: one LISTEN connection per process, one reader per
tenant per process, the database as the source of every event.

A change's transaction stages its audit events; after its commit the sequencer numbers them and
calls `pg_notify('signoff_events', {tenant, seq})` (`services/sequencing.py`); PostgreSQL
delivers the notification on the sequencer's commit to every process's listener. A notification
carries no event: it only wakes the process's reader of that tenant (`_TenantFeed`), which reads
the events after its cursor from `audit_event` once and hands the same batch to every
consumer of the tenant in the process. So the database work per event does not grow with the
number of subscribers, a lost notification (listener reconnecting, a process paused) only
delays delivery until the reader's next poll, and the order and completeness of what a
subscriber receives is the database's.

Subscribers are served by consumers attached to the reader (`RealtimeHub.consumer`): the
reader awaits a consumer's `deliver(batch)` for every batch, so one task per tenant per process
does the work of every stream the consumer holds (every GraphQL subscription of the API,
`api/live_fanout.py`, which bounds what each stream queues and ends a stream that falls too
far behind with a "resync from cursor" marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

import asyncpg

from signoff.db import audit as audit_repo
from signoff.db import feed as feed_repo
from signoff.db import scope as tenant_scope

log = logging.getLogger("signoff.realtime")

CHANNEL = audit_repo.REALTIME_CHANNEL

T = TypeVar("T")


class FeedBatch(list[dict[str, Any]]):
    """Consecutive events of one tenant, oldest first, with a memo that every subscriber given
    this batch shares: what is derived from the batch alone (the touched items' rows, a pushed
    object) is computed once for all of them."""

    __slots__ = ("_memo",)

    def __init__(self, events: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(events)
        self._memo: dict[Any, asyncio.Future[Any]] = {}

    async def shared(self, key: Any, make: Callable[[], Awaitable[T]]) -> T:
        """The value of `make()` under `key`, computed once per batch: concurrent callers wait
        for the first one's result. A caller cancelled while waiting does not cancel it."""
        future = self._memo.get(key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._memo[key] = future
        result: T = await asyncio.shield(future)
        return result


class BatchConsumer(Protocol):
    """What the tenant's reader serves directly: every batch, in order, awaited by the reader
    (its sends must not wait on a slow socket), and how many streams it holds."""

    async def deliver(self, batch: FeedBatch) -> None:
        """Handle one batch (consecutive events after the previous batch)."""

    def __len__(self) -> int:
        """Streams served (counted in `RealtimeHub.subscriber_count`)."""

    def close(self) -> None:
        """The hub stops: end every stream (their tasks finish them)."""


class _TenantFeed:
    """The single reader of one tenant's events in this process."""

    def __init__(self, hub: RealtimeHub, tenant_id: str) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.cursor = 0
        self.consumers: dict[str, BatchConsumer] = {}
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.reads = 0
        self.batches = 0
        # The reader works for one tenant only: its reads are bound to it (row-level security).
        with tenant_scope.tenant(tenant_id):
            self.task = asyncio.create_task(self._run(), name=f"signoff-feed-{tenant_id}")

    def stop(self) -> None:
        self.task.cancel()

    async def _run(self) -> None:
        hub = self.hub
        loop = asyncio.get_running_loop()
        delay = hub._reconnect_delay
        while True:
            try:
                self.cursor = await feed_repo.tenant_head(self.tenant_id)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime feed start failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.ready.set()
        gap_since: float | None = None
        while True:
            self.wake.clear()
            try:
                self.reads += 1
                rows = await audit_repo.events_after(self.tenant_id, self.cursor, hub.batch_size)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime feed read failed (%s); retrying", type(exc).__name__)
                await self._wait(hub.poll_interval)
                continue
            ready = FeedBatch()
            for row in rows:
                if row["seq"] != self.cursor + len(ready) + 1:
                    break
                ready.append(row)
            if ready:
                self.cursor = ready[-1]["seq"]
                gap_since = None
                self.batches += 1
                for consumer in list(self.consumers.values()):
                    await self._deliver(consumer, ready)
            if len(ready) < len(rows):
                # Only numbered events are visible, gapless (`audit_sequence`): a hole is an event
                # not yet visible. Wait for it; skip it only once it is old (logged), so that a
                # broken chain cannot stall every stream of the tenant.
                now = loop.time()
                gap_since = gap_since if gap_since is not None else now
                if now - gap_since >= hub._gap_grace:
                    log.error(
                        "tenant %s: events %d..%d missing; skipping",
                        self.tenant_id,
                        self.cursor + 1,
                        rows[len(ready)]["seq"] - 1,
                    )
                    self.cursor = rows[len(ready)]["seq"] - 1
                    gap_since = None
                    continue
                await self._wait(min(0.1, hub.poll_interval))
                continue
            if len(rows) == hub.batch_size:
                continue  # more to read
            await self._wait(hub.poll_interval)

    async def _deliver(self, consumer: BatchConsumer, batch: FeedBatch) -> None:
        try:
            await consumer.deliver(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # One consumer's failure must not stop the tenant's feed for the others.
            log.exception(
                "realtime consumer failed on events %d..%d", batch[0]["seq"], batch[-1]["seq"]
            )

    @property
    def idle(self) -> bool:
        return not self.consumers

    async def _wait(self, seconds: float) -> None:
        # The timeout is the fallback: a missed notification costs at most one poll interval.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)


class RealtimeHub:
    """Wakes a process's tenant readers when their tenant commits events, hands each batch to
    the tenant's consumers in the process, and tracks the tasks that end their streams."""

    def __init__(
        self,
        database_url: str,
        *,
        poll_interval: float = 2.0,
        batch_size: int = 200,
        max_queued_events: int = 1000,
        keepalive: float = 10.0,
        reconnect_delay: float = 0.5,
        gap_grace: float = 5.0,
    ) -> None:
        self._dsn = database_url
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_queued_events = max_queued_events
        self._keepalive = keepalive
        self._reconnect_delay = reconnect_delay
        self._gap_grace = gap_grace
        self._feeds: dict[str, _TenantFeed] = {}
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
        feeds = list(self._feeds.values())
        for feed in feeds:
            feed.stop()
            for consumer in list(feed.consumers.values()):
                consumer.close()
            feed.ready.set()
        for feed in feeds:
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task
        self._feeds.clear()

    @property
    def closed(self) -> bool:
        """The hub was stopped."""
        return self._closed

    @property
    def listener_pid(self) -> int | None:
        """Server process id of the LISTEN connection (for diagnostics and tests)."""
        conn = self._connection
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    def running_tasks(self) -> set[asyncio.Task[Any]]:
        """Tasks of this process's consumers (`spawn`) that have not finished."""
        return {t for t in self._tasks if not t.done()}

    @property
    def subscriber_count(self) -> int:
        """Subscription streams served by the consumers of this process's readers."""
        return sum(len(c) for f in self._feeds.values() for c in f.consumers.values())

    @property
    def feed_count(self) -> int:
        """Tenant readers running in this process (one per tenant with subscribers)."""
        return len(self._feeds)

    def feed_stats(self, tenant_id: str) -> tuple[int, int]:
        """How many times this process's reader of `tenant_id` read the event table, and how
        many batches it handed out (0, 0 when it is not running)."""
        feed = self._feeds.get(tenant_id)
        return (feed.reads, feed.batches) if feed is not None else (0, 0)

    def feed_cursor(self, tenant_id: str) -> int | None:
        """The last event this process's reader of `tenant_id` has handed out (None: none)."""
        feed = self._feeds.get(tenant_id)
        return feed.cursor if feed is not None and feed.ready.is_set() else None

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
        feed = self._feeds.get(tenant_id)
        if feed is not None:
            feed.wake.set()

    def _wake_all(self) -> None:
        for feed in self._feeds.values():
            feed.wake.set()

    # -- subscribing -----------------------------------------------------------------------

    def _feed(self, tenant_id: str) -> _TenantFeed:
        feed = self._feeds.get(tenant_id)
        if feed is None:
            feed = self._feeds[tenant_id] = _TenantFeed(self, tenant_id)
        return feed

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coro` in a task counted among the consumers' tasks (`running_tasks`) until
        it ends (a consumer's short work outside its reader, e.g. ending a stream)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("realtime task %s failed", task.get_name(), exc_info=task.exception())

    def _stop_if_idle(self, feed: _TenantFeed) -> None:
        if feed.idle and self._feeds.get(feed.tenant_id) is feed:
            # Nobody left to read for: stop the tenant's reader.
            feed.stop()
            del self._feeds[feed.tenant_id]

    def consumer(self, tenant_id: str, name: str, make: Callable[[], T]) -> T:
        """The tenant's consumer called `name` in this process, made by `make()` and attached
        to the tenant's reader the first time (the reader starts if need be)."""
        feed = self._feed(tenant_id)
        existing = feed.consumers.get(name)
        if existing is None:
            existing = feed.consumers[name] = make()  # type: ignore[assignment]
        return existing  # type: ignore[return-value]

    def release(self, tenant_id: str, name: str, consumer: BatchConsumer) -> None:
        """Detach `consumer`, the tenant's consumer `name` (its reader stops when nothing else
        is left)."""
        feed = self._feeds.get(tenant_id)
        if feed is not None and feed.consumers.get(name) is consumer:
            del feed.consumers[name]
            self._stop_if_idle(feed)

    async def live_cursor(self, tenant_id: str) -> int:
        """The last event the tenant's running reader has handed out: every later one reaches
        its consumers (wait for the reader to start)."""
        feed = self._feeds[tenant_id]
        await feed.ready.wait()
        return feed.cursor

    async def backlog(self, tenant_id: str, after_seq: int, upto: int) -> AsyncIterator[FeedBatch]:
        """The tenant's events in (`after_seq`, `upto`], read from the database in batches."""
        cursor = after_seq
        while cursor < upto and not self._closed:
            with tenant_scope.tenant(tenant_id):
                rows = await audit_repo.events_after(
                    tenant_id, cursor, min(self.batch_size, upto - cursor)
                )
            batch = FeedBatch(r for r in rows if r["seq"] <= upto)
            if not batch:
                return
            cursor = batch[-1]["seq"]
            yield batch


async def _close_quietly(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        conn.terminate()
