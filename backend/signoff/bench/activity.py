"""What the database connections of a run spend their time on, sampled from pg_stat_activity.

A transaction that holds a lock while it waits for its application process shows as
"idle in transaction"; one queued behind such a lock shows as waiting on a lock. Sampled a
few dozen times a second during a measurement, the shares say whether a run is bound by
the database, by lock waits, or by the processes talking to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import asyncpg

_QUERY = """SELECT state, wait_event_type, wait_event FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"""


@dataclass
class Activity:
    """Busy connections per sample, and how their time divides."""

    samples: int = 0
    busy: Counter[str] = field(default_factory=Counter)
    locks: Counter[str] = field(default_factory=Counter)

    @property
    def mean_busy(self) -> float:
        """Average number of connections inside a statement or a transaction."""
        return sum(self.busy.values()) / self.samples if self.samples else 0.0

    def share(self, kind: str) -> float:
        """Share of busy connection-samples that were `kind` (running, lock, idle in tx)."""
        total = sum(self.busy.values())
        return self.busy[kind] / total if total else 0.0

    def describe(self) -> str:
        """One line: mean busy connections and the split, with the commonest lock wait."""
        if not self.samples:
            return "no samples"
        lock = ", ".join(
            f"{name} {n / max(1, self.busy['lock']):.0%}" for name, n in self.locks.most_common(2)
        )
        return (
            f"{self.mean_busy:.1f} busy connections on average: "
            f"{self.share('running'):.0%} running a statement, "
            f"{self.share('idle in transaction'):.0%} idle in a transaction (waiting for their "
            f"process), {self.share('lock'):.0%} waiting on a lock" + (f" ({lock})" if lock else "")
        )


class ActivitySampler:
    """``async with ActivitySampler(conn, database) as sampler: ...; sampler.activity``.

    Samples through `conn` (a connection of its own, not used for anything else meanwhile).
    """

    def __init__(self, conn: asyncpg.Connection, database: str, interval: float = 0.05) -> None:
        self._conn = conn
        self._database = database
        self._interval = interval
        self.activity = Activity()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._sample(self._conn))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sample(self, conn: asyncpg.Connection) -> None:
        statement = await conn.prepare(_QUERY)
        while True:
            rows = await statement.fetch(self._database)
            self.activity.samples += 1
            for row in rows:
                if row["state"] != "active":
                    self.activity.busy["idle in transaction"] += 1
                elif row["wait_event_type"] == "Lock":
                    self.activity.busy["lock"] += 1
                    self.activity.locks[str(row["wait_event"])] += 1
                else:
                    self.activity.busy["running"] += 1
            await asyncio.sleep(self._interval)
