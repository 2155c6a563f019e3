"""Alert rules and their alerts (migration `2026-12-01T04:10`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from signoff.db import sql
from signoff.db.paging import KeyColumn, Window, in_list_order, keyset
from signoff.domain.alerts import Alert, AlertRule, AlertRuleKind, AlertRuleSpec, Recipients

_RULE_COLUMNS = """r.id, r.tenant_id, r.name, r.kind, r.template_key, r.threshold,
    r.window_seconds, r.min_samples, r.notify, r.enabled, r.firing, r.episode, r.version,
    r.created_by, r.created_at, r.updated_at"""
_ALERT_COLUMNS = """a.id, a.tenant_id, a.rule_id, r.name AS rule_name, a.kind, a.episode,
    a.value, a.samples, a.threshold, a.fired_at, a.cleared_at, a.acknowledged_by,
    a.acknowledged_at, a.acknowledgement"""


def rule_of(row: asyncpg.Record) -> AlertRule:
    """A stored rule from its row (the one place rows become records)."""
    seconds = row["window_seconds"]
    return AlertRule(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        spec=AlertRuleSpec(
            name=row["name"],
            kind=AlertRuleKind(row["kind"]),
            threshold=float(row["threshold"]),
            window=timedelta(seconds=seconds) if seconds is not None else None,
            notify=Recipients.from_dict(sql.loads(row["notify"]) or {}),
            template_key=row["template_key"],
            min_samples=int(row["min_samples"]),
            enabled=bool(row["enabled"]),
        ),
        firing=bool(row["firing"]),
        episode=int(row["episode"]),
        version=int(row["version"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def alert_of(row: asyncpg.Record) -> Alert:
    """An alert from its row (joined with its rule's name)."""
    return Alert(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        rule_id=str(row["rule_id"]),
        rule_name=row["rule_name"],
        kind=AlertRuleKind(row["kind"]),
        episode=int(row["episode"]),
        value=float(row["value"]),
        samples=int(row["samples"]),
        threshold=float(row["threshold"]),
        fired_at=row["fired_at"],
        cleared_at=row["cleared_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        acknowledgement=row["acknowledgement"],
    )


def _spec_values(spec: AlertRuleSpec) -> list[Any]:
    return [
        spec.name,
        spec.kind.value,
        spec.template_key,
        spec.threshold,
        int(spec.window.total_seconds()) if spec.window is not None else None,
        spec.min_samples,
        sql.dumps(spec.notify.to_dict()),
        spec.enabled,
    ]


async def insert_rule(
    tenant_id: str, rule_id: UUID, spec: AlertRuleSpec, by: str, now: datetime
) -> AlertRule | None:
    """Store a new rule; None when the tenant already has a rule of that name."""
    row = await sql.fetchrow(
        f"""INSERT INTO alert_rule AS r (id, tenant_id, name, kind, template_key, threshold,
                window_seconds, min_samples, notify, enabled, created_by, created_at,
                updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $12)
            ON CONFLICT (tenant_id, name) DO NOTHING
            RETURNING {_RULE_COLUMNS}""",
        rule_id,
        tenant_id,
        *_spec_values(spec),
        by,
        now,
    )
    return rule_of(row) if row else None


async def update_rule(
    tenant_id: str, rule_id: UUID, spec: AlertRuleSpec, now: datetime, *, clear: bool
) -> AlertRule:
    """Replace a (locked) rule's definition, its version bumped; `clear` ends its episode."""
    row = await sql.fetchrow(
        f"""UPDATE alert_rule AS r SET name = $3, kind = $4, template_key = $5, threshold = $6,
                window_seconds = $7, min_samples = $8, notify = $9::jsonb, enabled = $10,
                firing = r.firing AND NOT $12, version = r.version + 1, updated_at = $11
            WHERE r.tenant_id = $1 AND r.id = $2
            RETURNING {_RULE_COLUMNS}""",
        tenant_id,
        rule_id,
        *_spec_values(spec),
        now,
        clear,
    )
    assert row is not None
    return rule_of(row)


async def name_taken(tenant_id: str, name: str, other_than: UUID) -> bool:
    """Whether another rule of the tenant has this name."""
    row = await sql.fetchrow(
        "SELECT 1 FROM alert_rule WHERE tenant_id = $1 AND name = $2 AND id <> $3",
        tenant_id,
        name,
        other_than,
    )
    return row is not None


async def count_rules(tenant_id: str) -> int:
    """How many rules the tenant has."""
    row = await sql.fetchrow("SELECT count(*) AS n FROM alert_rule WHERE tenant_id = $1", tenant_id)
    return int(row["n"]) if row else 0


async def get_rule(tenant_id: str, rule_id: UUID, *, lock: bool = False) -> AlertRule | None:
    """One rule of the tenant (locked for update with `lock`)."""
    row = await sql.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM alert_rule r WHERE r.tenant_id = $1 AND r.id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        rule_id,
    )
    return rule_of(row) if row else None


async def claim_rule(tenant_id: str, rule_id: UUID) -> AlertRule | None:
    """An enabled rule locked for evaluation, or None when it is gone, disabled, or another
    evaluator holds it (that one decides this round)."""
    row = await sql.fetchrow(
        f"""SELECT {_RULE_COLUMNS} FROM alert_rule r
            WHERE r.tenant_id = $1 AND r.id = $2 AND r.enabled
            FOR UPDATE SKIP LOCKED""",
        tenant_id,
        rule_id,
    )
    return rule_of(row) if row else None


async def rules_of(tenant_id: str) -> list[AlertRule]:
    """Every rule of the tenant, by name."""
    rows = await sql.fetch(
        f"SELECT {_RULE_COLUMNS} FROM alert_rule r WHERE r.tenant_id = $1 ORDER BY r.name, r.id",
        tenant_id,
    )
    return [rule_of(r) for r in rows]


async def enabled_rules(tenants: Sequence[str] | None) -> list[tuple[str, UUID]]:
    """(tenant, rule id) of every enabled rule (of `tenants` when given), for evaluation."""
    rows = await sql.fetch(
        """SELECT tenant_id, id FROM alert_rule
            WHERE enabled AND ($1::text[] IS NULL OR tenant_id = ANY($1::text[]))
            ORDER BY tenant_id, id""",
        list(tenants) if tenants is not None else None,
    )
    return [(r["tenant_id"], r["id"]) for r in rows]


async def start_episode(
    rule: AlertRule, alert_id: UUID, value: float, samples: int, now: datetime
) -> Alert:
    """Mark a (locked) rule firing in its next episode and store that episode's alert. The
    unique (rule, episode) makes a second alert for one episode impossible."""
    await sql.execute(
        """UPDATE alert_rule SET firing = true, episode = episode + 1
            WHERE tenant_id = $1 AND id = $2""",
        rule.tenant_id,
        UUID(rule.id),
    )
    row = await sql.fetchrow(
        f"""WITH a AS (
                INSERT INTO alert (id, tenant_id, rule_id, episode, kind, value, samples,
                    threshold, fired_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *)
            SELECT {_ALERT_COLUMNS} FROM a JOIN alert_rule r ON r.id = a.rule_id""",
        alert_id,
        rule.tenant_id,
        UUID(rule.id),
        rule.episode + 1,
        rule.spec.kind.value,
        value,
        samples,
        rule.spec.threshold,
        now,
    )
    assert row is not None
    return alert_of(row)


async def end_episode(rule: AlertRule, now: datetime) -> Alert | None:
    """Mark a (locked) rule quiet and clear its open alert; returns that alert."""
    await sql.execute(
        "UPDATE alert_rule SET firing = false WHERE tenant_id = $1 AND id = $2",
        rule.tenant_id,
        UUID(rule.id),
    )
    row = await sql.fetchrow(
        f"""WITH a AS (
                UPDATE alert SET cleared_at = $3
                WHERE tenant_id = $1 AND rule_id = $2 AND cleared_at IS NULL RETURNING *)
            SELECT {_ALERT_COLUMNS} FROM a JOIN alert_rule r ON r.id = a.rule_id""",
        rule.tenant_id,
        UUID(rule.id),
        now,
    )
    return alert_of(row) if row else None


async def get_alert(tenant_id: str, alert_id: UUID, *, lock: bool = False) -> Alert | None:
    """One alert of the tenant (its row locked with `lock`)."""
    row = await sql.fetchrow(
        f"""SELECT {_ALERT_COLUMNS} FROM alert a JOIN alert_rule r ON r.id = a.rule_id
            WHERE a.tenant_id = $1 AND a.id = $2"""
        + (" FOR UPDATE OF a" if lock else ""),
        tenant_id,
        alert_id,
    )
    return alert_of(row) if row else None


async def acknowledge(
    tenant_id: str, alert_id: UUID, by: str, note: str | None, now: datetime
) -> Alert:
    """Record who acknowledged a (locked) alert."""
    row = await sql.fetchrow(
        f"""WITH a AS (
                UPDATE alert SET acknowledged_by = $3, acknowledged_at = $4,
                    acknowledgement = $5
                WHERE tenant_id = $1 AND id = $2 RETURNING *)
            SELECT {_ALERT_COLUMNS} FROM a JOIN alert_rule r ON r.id = a.rule_id""",
        tenant_id,
        alert_id,
        by,
        now,
        note,
    )
    assert row is not None
    return alert_of(row)


ALERT_KEY = (KeyColumn("a.fired_at", "timestamptz"), KeyColumn("a.id", "uuid"))
"""The order of alerts: newest first by the time they fired, then id."""


async def alerts_page(tenant_id: str, *, open_only: bool | None, window: Window) -> list[Alert]:
    """A keyset page (`db/paging.py`, key `ALERT_KEY`, descending) of the tenant's alerts,
    newest first; only open ones (not cleared) with `open_only`, only cleared ones with
    False."""
    conditions, order, params = keyset(ALERT_KEY, True, window, 3)
    rows = await sql.fetch(
        f"""SELECT {_ALERT_COLUMNS} FROM alert a JOIN alert_rule r ON r.id = a.rule_id
            WHERE a.tenant_id = $1
              AND ($2::boolean IS NULL OR (a.cleared_at IS NULL) = $2){conditions}{order}""",
        tenant_id,
        open_only,
        *params,
    )
    return in_list_order([alert_of(r) for r in rows], window)
