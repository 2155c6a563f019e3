"""Raw SQL through piccolo's engine: inside the current transaction when there is one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from signoff.db.engine import ENGINE, fetch_scoped


def _connection() -> asyncpg.Connection | None:
    transaction = ENGINE.current_transaction.get()
    return transaction.connection if transaction else None


async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of `sql` ($1, $2 … placeholders)."""
    conn = _connection()
    if conn is not None:
        return await conn.fetch(sql, *args)
    if ENGINE.pool is None:
        conn = await ENGINE.get_new_connection()
        try:
            rows: list[asyncpg.Record] = await fetch_scoped(conn, sql, *args)
            return rows
        finally:
            await conn.close()
    async with ENGINE.pool.acquire(timeout=ENGINE.acquire_timeout) as pooled:
        rows = await fetch_scoped(pooled, sql, *args)
        return rows


async def fetchrow(sql: str, *args: Any) -> asyncpg.Record | None:
    """The first row of `sql`, or None."""
    rows = await fetch(sql, *args)
    return rows[0] if rows else None


async def execute(sql: str, *args: Any) -> None:
    """Run `sql` for its effect."""
    await fetch(sql, *args)


async def execute_alone(statements: str) -> None:
    """Send `statements` (a simple query without parameters that opens and ends its own
    transaction) in one round trip on a connection of its own; if one fails, the open
    transaction is rolled back before the connection goes back."""
    if ENGINE.pool is None:
        conn = await ENGINE.get_new_connection()
        try:
            await conn.execute(statements)
        finally:
            await conn.close()
        return
    async with ENGINE.pool.acquire() as pooled:
        try:
            await pooled.execute(statements)
        except Exception:
            if not pooled.is_closed() and pooled.is_in_transaction():
                await pooled.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class Write:
    """A data-modifying statement whose result nobody reads ($1 … $n placeholders, exactly
    one per argument, no RETURNING), to be sent alone or with others in one round trip
    (`write_all`)."""

    text: str
    args: tuple[Any, ...]

    def __post_init__(self) -> None:
        numbers = {int(n) for n in _PLACEHOLDER.findall(self.text)}
        if numbers != set(range(1, len(self.args) + 1)):
            raise ValueError("a write uses each of its arguments' placeholders")


_PLACEHOLDER = re.compile(r"\$(\d+)")


def together(writes: Sequence[Write]) -> Write:
    """One statement making every write of `writes`, each a data-modifying WITH query.

    PostgreSQL runs them all, on one snapshot (none sees another's rows), in an order of its
    choosing: give it only writes of different rows that do not read what another writes.
    Triggers fire at the end of the statement, as they would after separate statements.
    """
    if len(writes) == 1:
        return writes[0]
    parts: list[str] = []
    args: list[Any] = []
    for n, write in enumerate(writes):
        parts.append(f"w{n} AS ({_shifted(write.text, len(args))})")
        args.extend(write.args)
    return Write(f"WITH {', '.join(parts)} SELECT", tuple(args))


def _shifted(text: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + offset}", text)


async def write_all(writes: Sequence[Write | None]) -> None:
    """Make the writes (None: nothing to write) in one round trip (`together`)."""
    present = [w for w in writes if w is not None]
    if present:
        combined = together(present)
        await execute(combined.text, *combined.args)


def in_transaction() -> bool:
    """Whether a transaction is open in this task."""
    return _connection() is not None


def dumps(value: Any) -> str:
    """JSON for a jsonb parameter."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def loads(value: str | None) -> Any:
    """A jsonb column's value (asyncpg hands jsonb over as text)."""
    return None if value is None else json.loads(value)


def record_dict(record: asyncpg.Record, json_columns: Sequence[str] = ()) -> dict[str, Any]:
    """A record as a dict, with the named jsonb columns decoded."""
    out: dict[str, Any] = dict(record)
    for column in json_columns:
        if column in out:
            out[column] = loads(out[column])
    return out


def params_of(mapping: Mapping[str, Any], columns: Sequence[str]) -> list[Any]:
    """Positional parameters for `columns` taken from `mapping`."""
    return [mapping[c] for c in columns]
