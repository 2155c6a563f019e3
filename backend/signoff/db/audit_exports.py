"""Audit exports: their requests, and reading their events through a server-side cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.db.paging import KeyColumn, Window, in_list_order, keyset
from signoff.domain.audit_export import COLUMNS, ROW_DIGEST, ExportFilter, action_patterns
from signoff.domain.redaction import PAYLOAD_KEYS_OF_EVENTS

_SELECT = ", ".join("data::text AS data" if c == "data" else c for c in COLUMNS)
# NDJSON lines are built by PostgreSQL: Python only passes the text on (and reads what the
# manifest needs). Times come out in ISO 8601 in the transaction's time zone, set to UTC.
# Each line ends with an empty `row_sha256`, which Python fills with the digest of the line.
_SELECT_LINES = "seq, prev_hash, hash, occurred_at, json_build_object({})::text AS line".format(
    ", ".join([*(f"'{c}', {c}" for c in COLUMNS), f"'{ROW_DIGEST}', ''"])
)
# CSV records are built by PostgreSQL too, exactly as Python's `csv.writer` (the `excel`
# dialect) wrote them from the decoded columns: a cell holding a comma, a double quote, CR or
# LF is quoted with its quotes doubled, no value is an empty cell, `data` is its jsonb text,
# times are Python's `isoformat()` in UTC (microseconds only when not zero; PostgreSQL's own
# output drops trailing zeros), and the record ends in CRLF with an empty `redacted_digest` and
# an empty `row_sha256` (Python fills it with the digest of the record).
# Rows the view must redact come with their columns as a JSON `line` in the same forms, for
# Python to redact and write (`domain/audit_export.py::encode_rows`).
_TIMES = ("occurred_at", "redacted_at")
_UNQUOTED = ("seq", "item_id", "step_id", *_TIMES)  # digits, UUIDs, times: nothing to quote


def _time_text(column: str) -> str:
    return f"""replace(to_char({column}, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '.000000+', '+')"""


def _cell_value(column: str) -> str:
    if column in _TIMES:
        return _time_text(column)
    return f"{column}::text"


def _csv_cell(column: str) -> str:
    value = _cell_value(column)
    if column in _UNQUOTED:
        return f"coalesce({value}, '')"
    return (
        f"""CASE WHEN {value} ~ '[",\r\n]' THEN '"' || replace({value}, '"', '""') || '"' """
        f"ELSE coalesce({value}, '') END"
    )


_CSV_RECORD = " || ',' || ".join(_csv_cell(c) for c in COLUMNS) + " || E',,\r\n'"
_CSV_LINE = "json_build_object({})::text".format(
    ", ".join(f"'{c}', {_time_text(c) if c in _TIMES else c}" for c in COLUMNS)
)


def _select_records(payload_copies: bool, client_details: bool) -> str:
    redact = "redacted_at IS NOT NULL"
    if payload_copies:
        redact += f" OR data ?| {_payload_keys()}"
    if client_details:
        redact += f" OR {_HAS_DETAILS}"
    return (
        f"seq, prev_hash, hash, occurred_at, {_CSV_RECORD} AS record, "
        f"CASE WHEN {redact} THEN {_CSV_LINE} END AS line"
    )


# Which rows the export's reader must see redacted: those redacted in the trail, and, when
# some redaction rule hides a field from the reader, those holding a copy of a payload (with
# the key of their item's template, which the rules are per). Every other row passes as is.
_TRAIL_REDACTED = "redacted_at IS NOT NULL AS redacted"
_PAYLOAD_COPIES = """CASE WHEN data ?| {keys} THEN coalesce((SELECT t.key FROM workflow_item i
    JOIN template t ON t.id = i.template_id WHERE i.id = audit_event.item_id), '') END
    AS template_key"""


# And, when the reader may not see where changes came from, the rows that say it.
_HAS_DETAILS = "(client_addr IS NOT NULL OR user_agent IS NOT NULL)"


def _view_columns(payload_copies: bool, client_details: bool) -> str:
    details = f"{_HAS_DETAILS if client_details else 'false'} AS details"
    if not payload_copies:
        return f"{_TRAIL_REDACTED}, NULL::text AS template_key, {details}"
    return f"{_TRAIL_REDACTED}, {_PAYLOAD_COPIES.format(keys=_payload_keys())}, {details}"


def _payload_keys() -> str:
    return "ARRAY[{}]".format(", ".join(f"'{k}'" for k in PAYLOAD_KEYS_OF_EVENTS))


def filtered_query(
    tenant_id: str, f: ExportFilter, to_seq: int, select: str = _SELECT
) -> tuple[str, list[Any]]:
    """The SELECT of an export's events in seq order, with its arguments."""
    args: list[Any] = [tenant_id, to_seq]
    where = ["tenant_id = $1", "seq <= $2"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if f.since is not None:
        where.append(f"occurred_at >= {arg(f.since)}")
    if f.until is not None:
        where.append(f"occurred_at < {arg(f.until)}")
    if f.item_id is not None:
        where.append(f"item_id = {arg(f.item_id)}")
    if f.actor_id is not None:
        where.append(f"actor_id = {arg(f.actor_id)}")
    if f.kinds:
        where.append(f"action LIKE ANY ({arg(action_patterns(f.kinds))}::text[])")
    if f.template_key is not None:
        where.append(
            f"""item_id IN (SELECT i.id FROM workflow_item i JOIN template t
                ON t.id = i.template_id WHERE i.tenant_id = $1 AND t.key = {arg(f.template_key)})"""
        )
    query = f"SELECT {select} FROM audit_event WHERE {' AND '.join(where)} ORDER BY seq"
    return query, args


@asynccontextmanager
async def _own_connection() -> AsyncIterator[asyncpg.Connection]:
    # A connection of its own: the cursor's transaction stays open while the export runs.
    if ENGINE.pool is not None:
        async with ENGINE.pool.acquire(timeout=ENGINE.acquire_timeout) as conn:
            yield conn
        return
    conn = await ENGINE.get_new_connection()
    try:
        yield conn
    finally:
        await conn.close()


async def stream_events(
    tenant_id: str,
    f: ExportFilter,
    to_seq: int,
    batch: int = 2_000,
    *,
    lines: bool = False,
    records: bool = False,
    payload_copies: bool = False,
    client_details: bool = False,
) -> AsyncIterator[list[asyncpg.Record]]:
    """The export's events in batches of at most `batch`, oldest first, from one snapshot:
    every column of `COLUMNS`, or with `lines` each event's NDJSON `line`, or with `records`
    each event's CSV `record` (and, on a row the reader may have to see redacted, its columns
    as a JSON `line` in the record's forms) — both with the `seq`, `prev_hash`, `hash` and
    `occurred_at` a manifest needs. Each row also says whether it was `redacted` in the trail
    and, with `payload_copies`, the `template_key` of the item of a row holding a copy of a
    payload ('' for none; NULL on rows without a copy), and with `client_details` whether it
    holds a client address or user agent (`details`; false without it).

    A server-side cursor in a read-only repeatable-read transaction scoped to the tenant (row
    level security), in UTC: memory holds one batch, whatever the number of events.
    """
    if records:
        rows = _select_records(payload_copies, client_details)
    else:
        rows = _SELECT_LINES if lines else _SELECT
    select = f"{rows}, {_view_columns(payload_copies, client_details)}"
    query, args = filtered_query(tenant_id, f, to_seq, select)
    async with _own_connection() as conn:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            await conn.execute(
                "SELECT set_config('signoff.tenant', $1, true), "
                "set_config('signoff.all_tenants', '', true), set_config('TimeZone', 'UTC', true)",
                tenant_id,
            )
            cursor = await conn.cursor(query, *args)
            while rows := await cursor.fetch(batch):
                yield rows
        finally:
            await conn.execute("ROLLBACK")


# -- the export requests ----------------------------------------------------------------------


def _record(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return sql.record_dict(row, ("filter", "manifest")) if row is not None else None


async def insert(export: dict[str, Any]) -> None:
    """Store a new export request (status `queued`)."""
    await sql.execute(
        """INSERT INTO audit_export (id, tenant_id, requested_by, format, filter, to_seq, status,
            created_at, heartbeat_at, reader_roles)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, 'queued', $7, $7, $8)""",
        export["id"],
        export["tenant_id"],
        export["requested_by"],
        export["format"],
        sql.dumps(export["filter"]),
        export["to_seq"],
        export["created_at"],
        sorted(export["reader_roles"]),
    )


async def get(tenant_id: str, export_id: UUID) -> dict[str, Any] | None:
    """One export of the tenant."""
    return _record(
        await sql.fetchrow(
            "SELECT * FROM audit_export WHERE tenant_id = $1 AND id = $2", tenant_id, export_id
        )
    )


EXPORT_KEY = (KeyColumn("created_at", "timestamptz"), KeyColumn("id", "uuid"))


async def list_recent(tenant_id: str, window: Window) -> list[dict[str, Any]]:
    """A keyset page (`db/paging.py`) of the tenant's exports, newest first (key:
    `created_at`, `id`)."""
    conditions, order, params = keyset(EXPORT_KEY, True, window, 2)
    rows = await sql.fetch(
        f"SELECT * FROM audit_export WHERE tenant_id = $1{conditions}{order}", tenant_id, *params
    )
    return in_list_order([r for r in map(_record, rows) if r is not None], window)


async def claim(
    tenant_id: str, export_id: UUID, lease: UUID, now: datetime, stale_before: datetime
) -> dict[str, Any] | None:
    """Take an export to run: queued, or running with a heartbeat older than `stale_before`
    (its worker is gone). None when it is done, or alive in another worker."""
    return _record(
        await sql.fetchrow(
            """UPDATE audit_export SET status = 'running', attempts = attempts + 1, lease = $3,
                heartbeat_at = $4, started_at = coalesce(started_at, $4), rows_written = 0,
                error = NULL
            WHERE tenant_id = $1 AND id = $2
              AND (status = 'queued' OR (status = 'running' AND heartbeat_at < $5))
            RETURNING *""",
            tenant_id,
            export_id,
            lease,
            now,
            stale_before,
        )
    )


async def count_rows(tenant_id: str, f: ExportFilter, to_seq: int) -> int:
    """How many events the export will hold."""
    query, args = filtered_query(tenant_id, f, to_seq)
    row = await sql.fetchrow(f"SELECT count(*) AS n FROM ({query}) AS e", *args)
    return int(row["n"]) if row else 0


async def progress(
    tenant_id: str, export_id: UUID, lease: UUID, rows: int, now: datetime, total: int | None
) -> bool:
    """Record rows written and a heartbeat; False when the lease was lost."""
    row = await sql.fetchrow(
        """UPDATE audit_export SET rows_written = $4, heartbeat_at = $5,
            rows_total = coalesce($6, rows_total)
        WHERE tenant_id = $1 AND id = $2 AND lease = $3 AND status = 'running' RETURNING id""",
        tenant_id,
        export_id,
        lease,
        rows,
        now,
        total,
    )
    return row is not None


async def complete(
    tenant_id: str,
    export_id: UUID,
    lease: UUID,
    *,
    storage_key: str,
    manifest: dict[str, Any],
    now: datetime,
) -> bool:
    """Mark the export completed with its file; False when the lease was lost."""
    row = await sql.fetchrow(
        """UPDATE audit_export SET status = 'completed', storage_key = $4, manifest = $5::jsonb,
            sha256 = $6, size = $7, rows_written = $8, finished_at = $9, heartbeat_at = $9
        WHERE tenant_id = $1 AND id = $2 AND lease = $3 AND status = 'running' RETURNING id""",
        tenant_id,
        export_id,
        lease,
        storage_key,
        sql.dumps(manifest),
        manifest["sha256"],
        manifest["bytes"],
        manifest["rows"],
        now,
    )
    return row is not None


async def give_up(
    tenant_id: str, export_id: UUID, lease: UUID, error: str, now: datetime, final: bool
) -> None:
    """Record a failed attempt: queued again for another attempt, or failed for good."""
    await sql.execute(
        """UPDATE audit_export SET status = $4, error = $5, heartbeat_at = $6,
            finished_at = CASE WHEN $4 = 'failed' THEN $6 END
        WHERE tenant_id = $1 AND id = $2 AND lease = $3 AND status = 'running'""",
        tenant_id,
        export_id,
        lease,
        "failed" if final else "queued",
        error[:1000],
        now,
    )


async def unfinished(stale_before: datetime, limit: int) -> list[tuple[str, UUID]]:
    """(tenant, id) of exports that no worker is running: queued or running without a heartbeat
    since `stale_before`."""
    rows = await sql.fetch(
        """SELECT tenant_id, id FROM audit_export
        WHERE status IN ('queued', 'running') AND heartbeat_at < $1
        ORDER BY heartbeat_at LIMIT $2""",
        stale_before,
        limit,
    )
    return [(str(r["tenant_id"]), r["id"]) for r in rows]


# -- expiry of the stored files ---------------------------------------------------------------


async def due_to_expire(
    completed_before: datetime, tenant_id: str | None, limit: int
) -> list[tuple[str, UUID]]:
    """(tenant, id) of completed exports that finished before `completed_before` (of one
    tenant, or of every tenant the caller's scope lets it see), oldest first."""
    rows = await sql.fetch(
        """SELECT tenant_id, id FROM audit_export
        WHERE status = 'completed' AND finished_at < $1 AND ($2::text IS NULL OR tenant_id = $2)
        ORDER BY finished_at, id LIMIT $3""",
        completed_before,
        tenant_id,
        limit,
    )
    return [(str(r["tenant_id"]), r["id"]) for r in rows]


async def expire(
    tenant_id: str, export_id: UUID, completed_before: datetime, now: datetime
) -> dict[str, Any] | None:
    """Mark a completed export that finished before `completed_before` expired; the export as
    it was, or None when it is not (any more) such an export."""
    return _record(
        await sql.fetchrow(
            """UPDATE audit_export SET status = 'expired', expired_at = $4
            WHERE tenant_id = $1 AND id = $2 AND status = 'completed' AND finished_at < $3
            RETURNING *""",
            tenant_id,
            export_id,
            completed_before,
            now,
        )
    )


async def files_to_delete(tenant_id: str | None, limit: int) -> list[tuple[str, UUID, str]]:
    """(tenant, id, storage key) of expired exports whose file is still stored."""
    rows = await sql.fetch(
        """SELECT tenant_id, id, storage_key FROM audit_export
        WHERE status = 'expired' AND storage_key IS NOT NULL
          AND ($1::text IS NULL OR tenant_id = $1)
        ORDER BY expired_at, id LIMIT $2""",
        tenant_id,
        limit,
    )
    return [(str(r["tenant_id"]), r["id"], str(r["storage_key"])) for r in rows]


async def forget_file(tenant_id: str, export_id: UUID) -> None:
    """Record that an expired export's file and manifest are deleted from the store."""
    await sql.execute(
        """UPDATE audit_export SET storage_key = NULL
        WHERE tenant_id = $1 AND id = $2 AND status = 'expired'""",
        tenant_id,
        export_id,
    )
