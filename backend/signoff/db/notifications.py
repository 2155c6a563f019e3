"""Queries of the notification pipeline: profiles, the planning cursor, deliveries, attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.db.paging import KeyColumn, Window, in_list_order, keyset
from signoff.db.records import item_of, step_of
from signoff.domain.records import Item, Step

PROFILE_JSON = ("addresses", "preferences")
DELIVERY_JSON = ("payload",)
OPEN_STATUSES = ("queued", "retrying")


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """A transaction of the pipeline's own (planning, digests): no audit, no hooks."""
    async with ENGINE.transaction():
        yield


# --------------------------------------------------------------------------- profiles


async def get_profile(tenant_id: str, user_id: str) -> dict[str, Any] | None:
    """One user's profile."""
    row = await sql.fetchrow(
        "SELECT * FROM user_profile WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
    )
    return sql.record_dict(row, PROFILE_JSON) if row else None


async def display_names(tenant_id: str, user_ids: Sequence[str]) -> dict[str, str]:
    """The display names the directory has for `user_ids` (those without one are absent)."""
    rows = await sql.fetch(
        """SELECT user_id, display_name FROM user_profile
        WHERE tenant_id = $1 AND user_id = ANY($2::text[]) AND display_name <> ''""",
        tenant_id,
        list(user_ids),
    )
    return {r["user_id"]: r["display_name"] for r in rows if r["display_name"]}


async def delivery_of_tenant(tenant_id: str, delivery_id: int) -> dict[str, Any] | None:
    """One delivery of a tenant, unlocked."""
    row = await sql.fetchrow(
        "SELECT * FROM notification_delivery WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        delivery_id,
    )
    return sql.record_dict(row, DELIVERY_JSON) if row else None


async def profiles_matching(
    tenant_id: str, users: Sequence[str], groups: Sequence[str], roles: Sequence[str]
) -> list[dict[str, Any]]:
    """Profiles of the named users and of every member of the named groups or roles."""
    rows = await sql.fetch(
        """SELECT * FROM user_profile WHERE tenant_id = $1
        AND (user_id = ANY($2::text[]) OR groups && $3::text[] OR roles && $4::text[])
        ORDER BY user_id""",
        tenant_id,
        list(users),
        list(groups),
        list(roles),
    )
    return [sql.record_dict(r, PROFILE_JSON) for r in rows]


async def profile_by_address(tenant_id: str, channel: str, address: str) -> dict[str, Any] | None:
    """The profile whose address on `channel` is `address` (e.g. a Slack user id)."""
    row = await sql.fetchrow(
        """SELECT * FROM user_profile WHERE tenant_id = $1 AND addresses ->> $2 = $3
        ORDER BY id LIMIT 1""",
        tenant_id,
        channel,
        address,
    )
    return sql.record_dict(row, PROFILE_JSON) if row else None


async def upsert_profile(
    tenant_id: str,
    user_id: str,
    *,
    display_name: str | None,
    groups: Sequence[str] | None,
    roles: Sequence[str] | None,
    addresses: dict[str, str] | None,
    preferences: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """Create or update a profile; None leaves a field as it is (or empty on create)."""
    row = await sql.fetchrow(
        """INSERT INTO user_profile (tenant_id, user_id, display_name, groups, roles, addresses,
            preferences, created_at, updated_at)
        VALUES ($1, $2, coalesce($3, ''), coalesce($4::text[], '{}'), coalesce($5::text[], '{}'),
            coalesce($6::jsonb, '{}'::jsonb), coalesce($7::jsonb, '{}'::jsonb), $8, $8)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET
            display_name = coalesce($3, user_profile.display_name),
            groups = coalesce($4::text[], user_profile.groups),
            roles = coalesce($5::text[], user_profile.roles),
            addresses = coalesce($6::jsonb, user_profile.addresses),
            preferences = coalesce($7::jsonb, user_profile.preferences),
            updated_at = $8
        RETURNING *""",
        tenant_id,
        user_id,
        display_name,
        list(groups) if groups is not None else None,
        list(roles) if roles is not None else None,
        sql.dumps(addresses) if addresses is not None else None,
        sql.dumps(preferences) if preferences is not None else None,
        now,
    )
    assert row is not None
    return sql.record_dict(row, PROFILE_JSON)


# --------------------------------------------------------------------------- planning


async def lock_cursor(tenant_id: str) -> int:
    """The tenant's planning cursor, locked until commit (one planner per tenant at a time)."""
    await sql.execute(
        """INSERT INTO notification_cursor (tenant_id, last_seq) VALUES ($1, 0)
        ON CONFLICT (tenant_id) DO NOTHING""",
        tenant_id,
    )
    row = await sql.fetchrow(
        "SELECT last_seq FROM notification_cursor WHERE tenant_id = $1 FOR UPDATE", tenant_id
    )
    assert row is not None
    return int(row["last_seq"])


async def advance_cursor(tenant_id: str, last_seq: int, now: datetime) -> None:
    """Move the tenant's planning cursor to `last_seq`."""
    await sql.execute(
        "UPDATE notification_cursor SET last_seq = $2, updated_at = $3 WHERE tenant_id = $1",
        tenant_id,
        last_seq,
        now,
    )


async def tenants_behind(only: Sequence[str] | None = None) -> list[str]:
    """Tenants with audit events not yet planned (of `only`, when given)."""
    rows = await sql.fetch(
        """SELECT t.id FROM tenant t LEFT JOIN notification_cursor c ON c.tenant_id = t.id
        WHERE ($1::text[] IS NULL OR t.id = ANY($1::text[]))
        AND EXISTS (SELECT 1 FROM audit_event e
            WHERE e.tenant_id = t.id AND e.seq > coalesce(c.last_seq, 0))
        ORDER BY t.id""",
        None if only is None else list(only),
    )
    return [r["id"] for r in rows]


async def items_by_id(tenant_id: str, item_ids: Sequence[UUID]) -> dict[UUID, Item]:
    """Items by id."""
    rows = await sql.fetch(
        "SELECT * FROM workflow_item WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        list(item_ids),
    )
    return {r["id"]: item_of(r) for r in rows}


async def steps_by_id(tenant_id: str, step_ids: Sequence[UUID]) -> dict[UUID, Step]:
    """Steps by id."""
    rows = await sql.fetch(
        "SELECT * FROM step WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        list(step_ids),
    )
    return {r["id"]: step_of(r) for r in rows}


_DELIVERY_COLUMNS = (
    ("tenant_id", "text"),
    ("event_seq", "bigint"),
    ("event_kind", "text"),
    ("channel", "text"),
    ("recipient_id", "text"),
    ("address", "text"),
    ("idempotency_key", "text"),
    ("status", "text"),
    ("priority", "text"),
    ("max_attempts", "int"),
    ("next_attempt_at", "timestamptz"),
)


async def insert_deliveries(values: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert deliveries (one statement), each unless its idempotency key exists; the new
    rows, in the order given."""
    if not values:
        return []
    names = ", ".join(name for name, _ in _DELIVERY_COLUMNS)
    arrays = ", ".join(f"${i + 1}::{kind}[]" for i, (_, kind) in enumerate(_DELIVERY_COLUMNS))
    n = len(_DELIVERY_COLUMNS)
    rows = await sql.fetch(
        f"""INSERT INTO notification_delivery ({names}, payload, created_at, updated_at)
        SELECT {names}, payload::jsonb, ${n + 2}, ${n + 2}
        FROM unnest({arrays}, ${n + 1}::text[]) WITH ORDINALITY AS v({names}, payload, n)
        ORDER BY v.n
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING *""",
        *[[v[name] for v in values] for name, _ in _DELIVERY_COLUMNS],
        [sql.dumps(v["payload"]) for v in values],
        values[0]["now"],
    )
    order = {v["idempotency_key"]: i for i, v in enumerate(values)}
    out = [sql.record_dict(r, DELIVERY_JSON) for r in rows]
    return sorted(out, key=lambda r: order[r["idempotency_key"]])


async def insert_delivery(values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a delivery unless its idempotency key exists; the new row or None."""
    rows = await insert_deliveries([values])
    return rows[0] if rows else None


async def recent_foldable_counts(
    tenant_id: str,
    wanted: Sequence[tuple[str, str]],
    since: datetime,
    priorities: Sequence[str],
) -> dict[tuple[str, str], int]:
    """Deliveries of foldable priority created since `since`, per (channel, recipient) of
    `wanted` (one statement; a pair with none is absent)."""
    rows = await sql.fetch(
        """SELECT d.channel, d.recipient_id, count(*) AS n
        FROM unnest($2::text[], $3::text[]) AS w(channel, recipient_id)
        JOIN notification_delivery d ON d.tenant_id = $1 AND d.channel = w.channel
            AND d.recipient_id = w.recipient_id
        WHERE d.created_at > $4 AND d.priority = ANY($5::text[]) AND d.event_kind <> 'digest'
        GROUP BY d.channel, d.recipient_id""",
        tenant_id,
        [channel for channel, _ in wanted],
        [recipient for _, recipient in wanted],
        since,
        list(priorities),
    )
    return {(r["channel"], r["recipient_id"]): int(r["n"]) for r in rows}


# --------------------------------------------------------------------------- digests


async def held_groups(before: datetime, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """(tenant, channel, recipient) whose oldest held delivery was created before `before`
    (of the tenants `only`, when given)."""
    rows = await sql.fetch(
        """SELECT tenant_id, channel, recipient_id FROM notification_delivery
        WHERE status = 'digested' AND digest_id IS NULL
        AND ($2::text[] IS NULL OR tenant_id = ANY($2::text[]))
        GROUP BY tenant_id, channel, recipient_id HAVING min(created_at) <= $1
        ORDER BY 1, 2, 3""",
        before,
        None if only is None else list(only),
    )
    return [dict(r) for r in rows]


async def lock_held(tenant_id: str, channel: str, recipient_id: str) -> list[dict[str, Any]]:
    """The held deliveries of one recipient on one channel, locked (skipping locked ones)."""
    rows = await sql.fetch(
        """SELECT * FROM notification_delivery
        WHERE tenant_id = $1 AND channel = $2 AND recipient_id = $3
        AND status = 'digested' AND digest_id IS NULL
        ORDER BY id FOR UPDATE SKIP LOCKED""",
        tenant_id,
        channel,
        recipient_id,
    )
    return [sql.record_dict(r, DELIVERY_JSON) for r in rows]


async def attach_to_digest(delivery_ids: Sequence[int], digest_id: int, now: datetime) -> None:
    """Mark held deliveries as folded into `digest_id`."""
    await sql.execute(
        """UPDATE notification_delivery SET digest_id = $2, updated_at = $3
        WHERE id = ANY($1::bigint[])""",
        list(delivery_ids),
        digest_id,
        now,
    )


# --------------------------------------------------------------------------- delivering


async def tenants_of_deliveries(delivery_ids: Sequence[int]) -> dict[int, str]:
    """The tenant of each delivery that exists, by delivery id."""
    rows = await sql.fetch(
        "SELECT id, tenant_id FROM notification_delivery WHERE id = ANY($1::bigint[])",
        list(delivery_ids),
    )
    return {int(r["id"]): str(r["tenant_id"]) for r in rows}


async def lock_deliveries(
    tenant_id: str, delivery_ids: Sequence[int], *, skip_locked: bool
) -> list[dict[str, Any]]:
    """A tenant's deliveries, locked until commit: those another transaction holds are left
    out (`skip_locked`, to claim) or waited for."""
    rows = await sql.fetch(
        f"""SELECT * FROM notification_delivery
        WHERE tenant_id = $1 AND id = ANY($2::bigint[]) ORDER BY id
        FOR UPDATE{" SKIP LOCKED" if skip_locked else ""}""",
        tenant_id,
        list(delivery_ids),
    )
    return [sql.record_dict(r, DELIVERY_JSON) for r in rows]


async def postpone(delivery_ids: Sequence[int], until: datetime, now: datetime) -> None:
    """Move the next attempt of the deliveries to `until` (a claim: other jobs find them not
    due meanwhile)."""
    await sql.execute(
        """UPDATE notification_delivery SET next_attempt_at = $2, updated_at = $3
        WHERE id = ANY($1::bigint[])""",
        list(delivery_ids),
        until,
        now,
    )


async def next_due_tenant(now: datetime, skip: Sequence[str]) -> str | None:
    """The tenant of the oldest open delivery due at `now`, leaving out `skip`; None when
    nothing is due."""
    row = await sql.fetchrow(
        """SELECT tenant_id FROM notification_delivery
        WHERE status IN ('queued', 'retrying') AND next_attempt_at <= $1
          AND NOT tenant_id = ANY($2::text[])
        ORDER BY next_attempt_at LIMIT 1""",
        now,
        list(skip),
    )
    return str(row["tenant_id"]) if row else None


async def claim_due(
    tenant_id: str, now: datetime, limit: int, until: datetime
) -> list[dict[str, Any]]:
    """Claim the tenant's `limit` oldest open deliveries due at `now` in one statement: those
    another transaction holds are left out (`SKIP LOCKED`), the others get their next attempt
    moved to `until` and are returned, locked until commit."""
    rows = await sql.fetch(
        """UPDATE notification_delivery d SET next_attempt_at = $4, updated_at = $2
        FROM (SELECT id FROM notification_delivery
              WHERE tenant_id = $1 AND status IN ('queued', 'retrying') AND next_attempt_at <= $2
              ORDER BY next_attempt_at LIMIT $3
              FOR UPDATE SKIP LOCKED) AS due
        WHERE d.id = due.id
        RETURNING d.*""",
        tenant_id,
        now,
        limit,
        until,
    )
    return sorted((sql.record_dict(r, DELIVERY_JSON) for r in rows), key=lambda r: r["id"])


async def lock_tenant_delivery(tenant_id: str, delivery_id: int) -> dict[str, Any] | None:
    """A tenant's delivery, locked (waiting for a running attempt)."""
    row = await sql.fetchrow(
        "SELECT * FROM notification_delivery WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant_id,
        delivery_id,
    )
    return sql.record_dict(row, DELIVERY_JSON) if row else None


async def thread_parents(
    tenant_id: str, wanted: Sequence[tuple[str, str, str, int]]
) -> list[str | None]:
    """`thread_parent` of each (channel, recipient id, thread key, before id), in order, in
    one statement."""
    if not wanted:
        return []
    rows = await sql.fetch(
        """SELECT p.provider_message_id
        FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY
            AS w(channel, recipient_id, thread_key, before_id, n)
        LEFT JOIN LATERAL (
            SELECT d.provider_message_id FROM notification_delivery d
            WHERE d.tenant_id = $1 AND d.channel = w.channel
            AND d.recipient_id = w.recipient_id AND d.thread_key = w.thread_key
            AND d.provider_message_id IS NOT NULL AND d.id <> w.before_id
            ORDER BY d.id LIMIT 1
        ) p ON true
        ORDER BY w.n""",
        tenant_id,
        *[list(column) for column in zip(*wanted, strict=True)],
    )
    return [
        None if r["provider_message_id"] is None else str(r["provider_message_id"]) for r in rows
    ]


async def insert_attempts(attempts: Sequence[dict[str, Any]]) -> None:
    """Store delivery attempts (one statement)."""
    if not attempts:
        return
    columns = ("delivery_id", "attempt_no", "status", "response", "error", "duration_ms")
    await sql.execute(
        """INSERT INTO notification_attempt (delivery_id, attempt_no, status, response, error,
            duration_ms, started_at)
        SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[],
            $6::float8[], $7::timestamptz[])""",
        *[[a[c] for a in attempts] for c in columns],
        [a["started_at"] for a in attempts],
    )


# the state columns a delivery's attempts change, with their types
_UPDATABLE = {
    "status": "text",
    "attempts": "int",
    "max_attempts": "int",
    "next_attempt_at": "timestamptz",
    "last_error": "text",
    "thread_key": "text",
    "provider_message_id": "text",
}


async def update_delivery(delivery_id: int, values: dict[str, Any], now: datetime) -> None:
    """Change a delivery's state columns."""
    await update_deliveries([(delivery_id, values)], now)


async def update_deliveries(changes: Sequence[tuple[int, dict[str, Any]]], now: datetime) -> None:
    """Change the state columns of several deliveries: one statement per set of columns."""
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    for delivery_id, values in changes:
        unknown = set(values) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        groups.setdefault(tuple(sorted(values)), []).append((delivery_id, values))
    for columns, rows in groups.items():
        assignments = ", ".join(f"{c} = u.{c}" for c in columns)
        arrays = "".join(f", ${i + 3}::{_UPDATABLE[c]}[]" for i, c in enumerate(columns))
        await sql.execute(
            f"""UPDATE notification_delivery d SET {assignments}, updated_at = $2
            FROM unnest($1::bigint[]{arrays}) AS u(id{"".join(f", {c}" for c in columns)})
            WHERE d.id = u.id""",
            [delivery_id for delivery_id, _ in rows],
            now,
            *[[values[c] for _, values in rows] for c in columns],
        )


DEAD_LETTER_KEY = (KeyColumn("updated_at", "timestamptz"), KeyColumn("id", "bigint"))


async def dead_letters(tenant_id: str, window: Window) -> list[dict[str, Any]]:
    """A keyset page (`db/paging.py`) of a tenant's dead-lettered deliveries, most recently
    changed first (key: `updated_at`, `id`)."""
    conditions, order, params = keyset(DEAD_LETTER_KEY, True, window, 2)
    rows = await sql.fetch(
        f"""SELECT * FROM notification_delivery WHERE tenant_id = $1 AND status = 'dead'
        {conditions}{order}""",
        tenant_id,
        *params,
    )
    return in_list_order([sql.record_dict(r, DELIVERY_JSON) for r in rows], window)


async def deliveries_of_tenant(tenant_id: str) -> list[dict[str, Any]]:
    """Every delivery of a tenant, oldest first (diagnostics and tests)."""
    rows = await sql.fetch(
        "SELECT * FROM notification_delivery WHERE tenant_id = $1 ORDER BY id", tenant_id
    )
    return [sql.record_dict(r, DELIVERY_JSON) for r in rows]


async def attempts_of(delivery_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Attempts of the given deliveries, by delivery id, in order."""
    rows = await sql.fetch(
        """SELECT * FROM notification_attempt WHERE delivery_id = ANY($1::bigint[])
        ORDER BY delivery_id, attempt_no""",
        list(delivery_ids),
    )
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in delivery_ids}
    for row in rows:
        out[row["delivery_id"]].append(dict(row))
    return out


async def tenant_of_item(item_id: UUID) -> str | None:
    """The tenant an item belongs to (to scope a channel callback that names only the item)."""
    row = await sql.fetchrow("SELECT tenant_id FROM workflow_item WHERE id = $1", item_id)
    return str(row["tenant_id"]) if row else None
