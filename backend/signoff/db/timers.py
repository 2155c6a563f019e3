"""Stored timers and business calendars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from signoff.db import sql
from signoff.db.paging import KeyColumn, Window, in_list_order, keyset
from signoff.db.records import TIMER_JSON, overdue_step_of, timer_of
from signoff.db.records import calendar_of as _calendar_of
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.records import OverdueStep, Step, Timer
from signoff.domain.timers import TimerSpec

_CANCEL = """UPDATE timer SET status = 'cancelled'
    WHERE step_id = ANY($1::uuid[]) AND status = 'armed'"""


def write_timers(armed: Sequence[tuple[Step, TimerSpec, str]], now: datetime) -> sql.Write | None:
    """The statement arming timers (each for its step, with its fresh token)."""
    if not armed:
        return None
    return sql.Write(
        """INSERT INTO timer (tenant_id, item_id, step_id, kind, level, due_at, token, status,
            payload, created_at)
        SELECT u.tenant_id, u.item_id, u.step_id, u.kind, u.level, u.due_at, u.token, 'armed',
            u.payload::jsonb, $9
        FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::int[],
            $6::timestamptz[], $7::text[], $8::text[])
            AS u(tenant_id, item_id, step_id, kind, level, due_at, token, payload)""",
        (
            [step.tenant_id for step, _, _ in armed],
            [step.item_id for step, _, _ in armed],
            [step.id for step, _, _ in armed],
            [spec.kind.value for _, spec, _ in armed],
            [spec.level for _, spec, _ in armed],
            [spec.due_at for _, spec, _ in armed],
            [token for _, _, token in armed],
            [sql.dumps(dict(spec.payload)) for _, spec, _ in armed],
            now,
        ),
    )


def write_cancel(step_ids: Sequence[UUID]) -> sql.Write | None:
    """The statement cancelling every armed timer of the steps."""
    return sql.Write(_CANCEL, (list(step_ids),)) if step_ids else None


async def cancel_for_steps(step_ids: Sequence[UUID]) -> list[Timer]:
    """Cancel every armed timer of the steps now; returns what was cancelled."""
    if not step_ids:
        return []
    rows = await sql.fetch(f"{_CANCEL} RETURNING *", list(step_ids))
    return [timer_of(sql.record_dict(r, TIMER_JSON)) for r in rows]


async def get(timer_id: UUID) -> Timer | None:
    """One timer, unlocked."""
    row = await sql.fetchrow("SELECT * FROM timer WHERE id = $1", timer_id)
    return timer_of(sql.record_dict(row, TIMER_JSON)) if row else None


async def lock_for_firing(timer_id: UUID) -> Timer | None:
    """The timer row, locked until commit. Lock its item first: every writer of a timer holds
    its item's lock, so this never waits on another writer."""
    row = await sql.fetchrow("SELECT * FROM timer WHERE id = $1 FOR UPDATE", timer_id)
    return timer_of(sql.record_dict(row, TIMER_JSON)) if row else None


async def mark(marks: Sequence[tuple[UUID, str, datetime | None]]) -> None:
    """Record that timers fired or were found void: (id, status, fired_at), one statement."""
    if not marks:
        return
    await sql.execute(
        """UPDATE timer SET status = u.status, fired_at = u.fired_at
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, status, fired_at)
        WHERE timer.id = u.id""",
        [m[0] for m in marks],
        [m[1] for m in marks],
        [m[2] for m in marks],
    )


Lane = tuple[int, int]
"""(k, n): the timers of the items whose id hashes to k modulo n (bucket k of n); (0, 1) is
every timer."""

_BUCKET = "((hashtext(item_id::text) & 2147483647) % {n})"


def _in_lane(first: int) -> str:
    """The condition that a timer is in the bucket given by parameters `first` (n) and
    `first + 1` (k). Buckets split timers by their item, so that lanes firing different
    buckets never hold each other's items."""
    n, k = f"${first}::int", f"${first + 1}::int"
    return f"({n} <= 1 OR {_BUCKET.format(n=n)} = {k})"


async def next_due(
    now: datetime,
    tenants: Sequence[str],
    skip: Sequence[tuple[str, int]],
    buckets: int,
    busy: Sequence[int] = (),
) -> tuple[str, int] | None:
    """(tenant, bucket of `buckets`) of the earliest armed timer due at `now` (among `tenants`
    when any are named) outside the `busy` buckets, leaving out the (tenant, bucket) pairs of
    `skip`; None when nothing is due there."""
    bucket = _BUCKET.format(n="$4::int")
    row = await sql.fetchrow(
        f"""SELECT tenant_id, {bucket} AS bucket FROM timer
        WHERE status = 'armed' AND due_at <= $1
          AND (cardinality($2::text[]) = 0 OR tenant_id = ANY($2::text[]))
          AND NOT {bucket} = ANY($5::int[])
          AND NOT (tenant_id || '/' || {bucket}) = ANY($3::text[])
        ORDER BY due_at LIMIT 1""",
        now,
        list(tenants),
        [f"{tenant}/{k}" for tenant, k in skip],
        buckets,
        list(busy),
    )
    return (str(row["tenant_id"]), int(row["bucket"])) if row else None


async def claim_due(tenant_id: str, now: datetime, limit: int, lane: Lane = (0, 1)) -> list[Timer]:
    """The tenant's earliest armed timers due at `now` in `lane`, locked until commit, leaving
    out those another transaction holds (another worker claimed them)."""
    rows = await sql.fetch(
        f"""SELECT * FROM timer
        WHERE status = 'armed' AND due_at <= $2 AND tenant_id = $1 AND {_in_lane(4)}
        ORDER BY due_at LIMIT $3
        FOR UPDATE SKIP LOCKED""",
        tenant_id,
        now,
        limit,
        lane[1],
        lane[0],
    )
    return [timer_of(sql.record_dict(r, TIMER_JSON)) for r in rows]


async def due_slots(
    now: datetime, until: datetime, slot_seconds: float, tenants: Sequence[str] = ()
) -> list[tuple[datetime, int]]:
    """The armed timers due at or before `until`, counted per slot: (the slot's end, count),
    each due time rounded up to a multiple of `slot_seconds`, those already due at `now`
    counted at `now` (only `tenants` when named)."""
    rows = await sql.fetch(
        """SELECT CASE WHEN due_at <= $1 THEN $1
                ELSE to_timestamp(ceil(extract(epoch FROM due_at) / $3) * $3) END AS slot,
            count(*) AS timers
        FROM timer
        WHERE status = 'armed' AND due_at <= $2
          AND (cardinality($4::text[]) = 0 OR tenant_id = ANY($4::text[]))
        GROUP BY 1 ORDER BY 1""",
        now,
        until,
        slot_seconds,
        list(tenants),
    )
    return [(r["slot"], r["timers"]) for r in rows]


async def for_step(step_id: UUID) -> list[Timer]:
    """Every timer of a step, by due time."""
    rows = await sql.fetch("SELECT * FROM timer WHERE step_id = $1 ORDER BY due_at, kind", step_id)
    return [timer_of(sql.record_dict(r, TIMER_JSON)) for r in rows]


# Steps without a deadline (stuck timers only) sort after every real one.
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)
OVERDUE_KEY = (
    KeyColumn(f"COALESCE(s.due_at, '{NO_DEADLINE.isoformat()}'::timestamptz)", "timestamptz"),
    KeyColumn("s.id", "uuid"),
)


async def overdue_steps(tenant_id: str, now: datetime, window: Window) -> list[OverdueStep]:
    """A keyset page (`db/paging.py`) of the active steps past their SLA, or holding timers
    overdue by more than a minute (stuck), earliest deadline first (key: the deadline, steps
    without one last, then the step id)."""
    conditions, order, params = keyset(OVERDUE_KEY, False, window, 3)
    rows = await sql.fetch(
        f"""SELECT s.id AS step_id, s.item_id, s.key, s.due_at, i.title,
            (SELECT min(t.due_at) FROM timer t WHERE t.step_id = s.id AND t.status = 'armed')
                AS next_timer_at,
            (SELECT count(*) FROM timer t WHERE t.step_id = s.id AND t.status = 'armed'
                AND t.due_at < $2::timestamptz - interval '1 minute') AS stuck_timers
        FROM step s JOIN workflow_item i ON i.id = s.item_id
        WHERE s.tenant_id = $1 AND s.state = 'active'
          AND (s.due_at < $2::timestamptz OR EXISTS (SELECT 1 FROM timer t WHERE t.step_id = s.id
               AND t.status = 'armed' AND t.due_at < $2::timestamptz - interval '1 minute'))
          {conditions}{order}""",
        tenant_id,
        now,
        *params,
    )
    return in_list_order([overdue_step_of(r) for r in rows], window)


async def calendar_of(tenant_id: str) -> BusinessCalendar | None:
    """The tenant's business calendar, if it has one."""
    row = await sql.fetchrow("SELECT * FROM business_calendar WHERE tenant_id = $1", tenant_id)
    return _calendar_of(row) if row else None


async def save_calendar(tenant_id: str, calendar: BusinessCalendar, now: datetime) -> None:
    """Create or replace the tenant's business calendar."""
    await sql.execute(
        """INSERT INTO business_calendar (tenant_id, timezone, workdays, day_start, day_end,
            holidays, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id) DO UPDATE SET timezone = EXCLUDED.timezone,
            workdays = EXCLUDED.workdays, day_start = EXCLUDED.day_start,
            day_end = EXCLUDED.day_end, holidays = EXCLUDED.holidays,
            updated_at = EXCLUDED.updated_at""",
        tenant_id,
        calendar.timezone,
        sorted(calendar.workdays),
        calendar.start,
        calendar.end,
        sorted(calendar.holidays),
        now,
    )
