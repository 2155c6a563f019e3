"""Appending to, reading and verifying the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from signoff.db import scope as tenant_scope
from signoff.db import sql
from signoff.db.paging import KeyColumn, Window, in_list_order, keyset
from signoff.domain.audit import (
    GENESIS_HASH,
    REDACTABLE_FIELDS,
    BreakKind,
    ChainBreak,
    canonical,
    chain_hashes,
    content_digest,
    verify_events,
)

REALTIME_CHANNEL = "signoff_events"

_TEXT_COLUMNS = (
    "action",
    "actor_id",
    "acting_for",
    "reason",
    "request_id",
    "client_addr",
    "user_agent",
)
_OPTIONAL_TEXT_COLUMNS = ("environment",)


class ChainMismatchError(RuntimeError):
    """The database linked events differently from the application's chain definition."""


def _prepared(
    tenant_id: str, events: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    # The stored content is exactly the canonical content its digest was taken over.
    rows = [
        {**event, "tenant_id": tenant_id, "data": canonical(event.get("data") or {})}
        for event in events
    ]
    return rows, [content_digest(row) for row in rows]


async def append_events(tenant_id: str, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number, chain and insert `events` in the current transaction, in one statement.

    `audit_append` takes the tenant's audit lock (a transaction-level advisory lock) and holds
    it until commit, so one tenant's events are numbered in commit order without gaps: a reader
    that resumes after sequence N never misses an event that commits later with a smaller
    number. Call it as the last statement of the transaction: the lock is held only from here
    to the commit. A transaction that can send its last statement with its COMMIT does better
    (`append_statement`).
    """
    if not sql.in_transaction():
        raise RuntimeError("audit events are written only inside the transaction of their change")
    rows, digests = _prepared(tenant_id, events)
    head = await sql.fetchrow(
        """SELECT first_seq, prev_hash, last_hash FROM audit_append($1, $2, $3::uuid[],
            $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[], $12::jsonb[], $13::timestamptz[], $14::text[], $15::text[])""",
        tenant_id,
        REALTIME_CHANNEL,
        [_uuid(row.get("item_id")) for row in rows],
        [_uuid(row.get("step_id")) for row in rows],
        *[[row.get(column) for row in rows] for column in _TEXT_COLUMNS],
        [sql.dumps(row["data"]) for row in rows],
        [_aware(row["occurred_at"]) for row in rows],
        digests,
        *[[row.get(column) for row in rows] for column in _OPTIONAL_TEXT_COLUMNS],
    )
    assert head is not None
    links = chain_hashes(head["prev_hash"], tenant_id, int(head["first_seq"]), digests)
    if links[-1][2] != head["last_hash"]:
        raise ChainMismatchError(f"tenant {tenant_id}: database and application links differ")
    for row, digest, (seq, prev, current) in zip(rows, digests, links, strict=True):
        row.update(seq=seq, prev_hash=prev, hash=current, content_digest=digest)
    return rows


def append_statement(
    tenant_id: str, events: Sequence[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """The staging of `events` (`audit_stage`) as a statement without parameters, for a
    transaction to send together with its COMMIT (`ScopedTransaction.commit_with`), and the rows
    it stores (without their numbers and links: the sequencer makes those after the commit,
    `sequence_pending`).

    Staging takes no tenant-wide lock and sends no notification, so the commits of one tenant
    share WAL flushes. The events travel as one JSON literal (`E'…'` with backslashes and quotes
    escaped, whatever `standard_conforming_strings` says), unpacked into `audit_stage`'s arrays
    in the database; the numbers and links the sequencer gives them are those `append_events`
    makes, and `audit verify` checks them like any other.
    """
    rows, digests = _prepared(tenant_id, events)
    document = sql.dumps(
        [
            {
                **{column: row.get(column) for column in _TEXT_COLUMNS + _OPTIONAL_TEXT_COLUMNS},
                "item_id": _text(row.get("item_id")),
                "step_id": _text(row.get("step_id")),
                "data": row["data"],
                "occurred_at": _aware(row["occurred_at"]).isoformat(),
                "content_digest": digest,
            }
            for row, digest in zip(rows, digests, strict=True)
        ]
    )
    for row, digest in zip(rows, digests, strict=True):
        row["content_digest"] = digest

    def each(expression: str) -> str:
        return f"ARRAY(SELECT {expression} FROM events ORDER BY n)"

    arguments = [
        literal(tenant_id),
        each("(e->>'item_id')::uuid"),
        each("(e->>'step_id')::uuid"),
        *[each(f"e->>'{column}'") for column in _TEXT_COLUMNS],
        each("e->'data'"),
        each("(e->>'occurred_at')::timestamptz"),
        each("e->>'content_digest'"),
        *[each(f"e->>'{column}'") for column in _OPTIONAL_TEXT_COLUMNS],
    ]
    statement = (
        "WITH events AS (SELECT e, n FROM jsonb_array_elements("
        f"{literal(document)}::jsonb) WITH ORDINALITY AS x(e, n)) "
        f"SELECT FROM audit_stage({', '.join(arguments)})"
    )
    return statement, rows


async def sequence_pending(tenant_id: str) -> None:
    """Number and chain the tenant's committed pending events (`audit_sequence`), in a
    transaction of its own sent as one round trip, and announce the new head.

    Returns once every event staged by a transaction that committed before the call is
    numbered (by this call or by a sequencer that held the tenant's chain lock before it). Must
    not run inside a transaction: its lock would be held to that transaction's end.
    """
    if sql.in_transaction():
        raise RuntimeError("the sequencer runs in a transaction of its own")
    await sql.execute_alone(_sequencing("audit_sequence", tenant_id))


def sequence_after_commit_statement(tenant_id: str) -> str:
    """The sequencing of the tenant's committed pending events as a transaction of its own
    that never fails (`audit_sequence_after_commit`, migration 2026-12-20T01: a failure is a
    WARNING in the server's log, the events stay staged), for a change to send after its
    COMMIT in the same message (`ScopedTransaction.commit_with(..., then=...)`): once that
    message is answered, the change's events are numbered, with no round trip of their own."""
    return _sequencing("audit_sequence_after_commit", tenant_id)


def _sequencing(function: str, tenant_id: str) -> str:
    return (
        f"{tenant_scope.Scope(tenant=tenant_id).begin_statement()};"
        f" SELECT {function}({literal(tenant_id)}, {literal(REALTIME_CHANNEL)}); COMMIT"
    )


async def sequence_here(tenant_id: str) -> None:
    """Number the tenant's committed pending events inside the current transaction, which
    then holds the tenant's chain lock to its end: for a change that must see every event
    committed before it numbered (retention redacting an item's events)."""
    if not sql.in_transaction():
        raise RuntimeError("sequence_here runs inside a transaction")
    await sql.execute("SELECT audit_sequence($1, $2)", tenant_id, REALTIME_CHANNEL)


async def tenants_with_pending() -> list[str]:
    """The tenants with staged events the sequencer has not numbered yet (run across tenants):
    after a crash between a commit and its sequencing, or while a sequencer is running."""
    rows = await sql.fetch(
        """WITH RECURSIVE t AS (
            (SELECT tenant_id FROM audit_pending ORDER BY tenant_id LIMIT 1)
            UNION ALL
            SELECT (SELECT p.tenant_id FROM audit_pending p WHERE p.tenant_id > t.tenant_id
                ORDER BY p.tenant_id LIMIT 1) FROM t WHERE t.tenant_id IS NOT NULL)
        SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL"""
    )
    return [str(r["tenant_id"]) for r in rows]


def literal(text: str) -> str:
    """`text` as an SQL string literal: `E'…'` with backslashes and quotes doubled, which
    reads back as `text` whatever `standard_conforming_strings` says."""
    if "\x00" in text:
        raise ValueError("text with a NUL character cannot be stored")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _aware(value: datetime) -> datetime:
    # asyncpg would read a naive time as local; the digest reads it as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


async def redact_event(
    tenant_id: str,
    seq: int,
    *,
    at: datetime,
    clear: Sequence[str] = (),
    data: dict[str, Any] | None = None,
) -> bool:
    """Redact one event: empty the `clear` columns and, if given, replace its `data`.

    The lawful change to the trail, and the only UPDATE the append-only trigger lets through:
    `clear` names columns of `REDACTABLE_FIELDS`; `data`, if given, must be the event's data
    with keys removed or values replaced by `redaction_marker(value)` (the trigger refuses
    anything else with `insufficient_privilege`). The event keeps its digest and links, and is
    marked redacted at `at`. False if the event does not exist.
    """
    unknown = set(clear) - set(REDACTABLE_FIELDS)
    if unknown:
        raise ValueError(f"not redactable: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = NULL" for name in clear)
    row = await sql.fetchrow(
        f"""UPDATE audit_event SET {assignments + ", " if assignments else ""}
            data = coalesce($3::jsonb, data), redacted_at = greatest(redacted_at, $4)
        WHERE tenant_id = $1 AND seq = $2 RETURNING seq""",
        tenant_id,
        seq,
        None if data is None else sql.dumps(canonical(data)),
        _aware(at),
    )
    return row is not None


async def chain_head(tenant_id: str) -> tuple[int, str]:
    """The seq and hash of the tenant's last event ((0, "") before its first)."""
    row = await sql.fetchrow(
        "SELECT seq, hash FROM audit_event WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        tenant_id,
    )
    return (int(row["seq"]), str(row["hash"])) if row else (0, GENESIS_HASH)


async def events_for_item(
    tenant_id: str, item_id: UUID, limit: int | None = None
) -> list[dict[str, Any]]:
    """The audit events of one item, oldest first (the first `limit` of them, if given)."""
    rows = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 AND item_id = $2 ORDER BY seq LIMIT $3",
        tenant_id,
        item_id,
        limit,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


EVENT_KEY = (KeyColumn("seq", "bigint"),)


async def item_events_page(tenant_id: str, item_id: UUID, window: Window) -> list[dict[str, Any]]:
    """A keyset page (`db/paging.py`) of one item's audit events, in the order they happened."""
    conditions, order, params = keyset(EVENT_KEY, False, window, 3)
    rows = await sql.fetch(
        f"SELECT * FROM audit_event WHERE tenant_id = $1 AND item_id = $2{conditions}{order}",
        tenant_id,
        item_id,
        *params,
    )
    return in_list_order([sql.record_dict(r, ("data",)) for r in rows], window)


async def events_after(tenant_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """A tenant's events with `seq` greater than `after_seq`, oldest first."""
    rows = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        tenant_id,
        after_seq,
        limit,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


async def verify_chain(
    tenant_id: str,
    from_seq: int = 1,
    *,
    check_content: bool = True,
    batch_size: int = 2_000,
    to_seq: int | None = None,
) -> ChainBreak | None:
    """Verify the tenant's chain from `from_seq` to its head (or `to_seq`); the first break, or
    None.

    The event before `from_seq` is the trusted anchor (the empty genesis hash when starting at
    1). Events are read in batches up to the head read at the start, so events committed while
    checking are left for the next check. With `check_content=False` only the links are
    checked (see `domain.audit.verify_events`). Events removed from the end of the trail leave
    no break in what remains: compare the head with a seq and hash kept elsewhere (an export)
    to detect that.
    """
    head_seq, _ = await chain_head(tenant_id)
    if to_seq is not None:
        head_seq = min(head_seq, to_seq)
    from_seq = max(1, from_seq)
    if from_seq > head_seq:
        return None
    anchor: str | None = GENESIS_HASH
    if from_seq > 1:
        before = await sql.fetchrow(
            "SELECT hash FROM audit_event WHERE tenant_id = $1 AND seq = $2",
            tenant_id,
            from_seq - 1,
        )
        if before is None:
            return ChainBreak(from_seq - 1, BreakKind.MISSING, "the anchor event is absent")
        anchor = str(before["hash"])
    cursor, last_hash = from_seq - 1, anchor
    while cursor < head_seq:
        rows = await sql.fetch(
            """SELECT * FROM audit_event WHERE tenant_id = $1 AND seq > $2 AND seq <= $3
            ORDER BY seq LIMIT $4""",
            tenant_id,
            cursor,
            head_seq,
            batch_size,
        )
        if not rows:
            break
        events = [sql.record_dict(r, ("data",)) for r in rows]
        broken = verify_events(
            events, anchor=last_hash, first_seq=cursor + 1, check_content=check_content
        )
        if broken is not None:
            return broken
        cursor, last_hash = int(events[-1]["seq"]), str(events[-1]["hash"])
    if cursor < head_seq:
        return ChainBreak(cursor + 1, BreakKind.MISSING, f"the last event is seq {head_seq}")
    return None


async def tenants_with_events() -> list[tuple[str, int]]:
    """Every tenant with the seq of its last event (0 before its first), by tenant id."""
    rows = await sql.fetch(
        """SELECT t.id, coalesce((SELECT e.seq FROM audit_event e WHERE e.tenant_id = t.id
            ORDER BY e.seq DESC LIMIT 1), 0) AS seq
        FROM tenant t ORDER BY t.id"""
    )
    return [(str(r["id"]), int(r["seq"])) for r in rows]
