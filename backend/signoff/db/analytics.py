"""Approval analytics in SQL: each figure one statement over the audit trail (or the current
state tables where they are the truth), run together in one snapshot by the service.

Each statement is written once with an optional template filter: the caller passes the ids of
the template's versions, or None for every template. What the statements read is kept for
them by the database: the indexes of migration `2026-12-01T04`, and the daily counts, item
tallies and copies with their template of migrations `2026-12-10T61` and `T62`, kept by
triggers in the transaction of each change (see docs/operations/analytics.md, "Cost").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from signoff.db import sql
from signoff.domain.actors import SYSTEM_USER
from signoff.domain.analytics import (
    COUNTED_ACTIONS,
    ESCALATION,
    OPEN_ITEM_STATES,
    STEP_REJECT,
    DecisionFatigue,
    LevelCount,
    Percentiles,
    ReasonCount,
    ReviewerLoad,
    SlaFigures,
    StuckItem,
)

Templates = Sequence[UUID] | None
_NAME = re.compile(r"^[a-z_.]+$")


def _listed(values: Sequence[str]) -> str:
    """Constant action or state names as an SQL list: the partial indexes' predicates can be
    proved only from literals, never from a parameter (a generic plan would not use them)."""
    assert all(_NAME.match(v) for v in values)
    return ", ".join(f"'{v}'" for v in values)


def _only(templates: Templates, alias: str, param: int) -> tuple[str, list[object]]:
    """A join condition limiting `alias`'s item to the templates, as SQL and its parameter."""
    if templates is None:
        return "", []
    return (
        f" JOIN workflow_item ti ON ti.id = {alias}.item_id"
        f" AND ti.template_id = ANY(${param}::uuid[])",
        [list(templates)],
    )


async def template_versions(tenant_id: str, key: str) -> list[UUID]:
    """The ids of every version of the tenant's template `key` (none: no such template)."""
    rows = await sql.fetch(
        "SELECT id FROM template WHERE tenant_id = $1 AND key = $2", tenant_id, key
    )
    return [row["id"] for row in rows]


def whole_days(start: datetime, end: datetime) -> tuple[date, date, list[datetime]]:
    """[start, end) as the whole UTC days inside it, `[first, last)` (empty when `first >=
    last`), and the bounds of its two partial ends `[s1, e1)`, `[s2, e2)` (each possibly
    empty): the days are read from `analytics_day`, the ends from the trail."""
    first = start.astimezone(UTC)
    if first.timetz() != time(0, tzinfo=UTC):
        first = datetime.combine(first.date() + timedelta(days=1), time(0), UTC)
    last = datetime.combine(end.astimezone(UTC).date(), time(0), UTC)
    if first >= last:
        return first.date(), first.date(), [start, end, end, end]
    return first.date(), last.date(), [start, first, last, end]


def _counted(templates: Templates, actions: str, param: int) -> tuple[str, list[object]]:
    """The counted events of the period as rows `(action, reason, level, n)`: whole days from
    `analytics_day` ($2, $3 its days) and the partial ends from the trail ($4-$7 their
    bounds), limited to `templates` (parameter `param`). `actions` is a literal SQL list."""
    day_only = f" AND d.template_id = ANY(${param}::uuid[])" if templates is not None else ""
    join, extra = _only(templates, "e", param)
    return (
        f"""SELECT d.action, d.reason, d.level, d.n FROM analytics_day d
            WHERE d.tenant_id = $1 AND d.day >= $2 AND d.day < $3
              AND d.action IN ({actions}){day_only}
            UNION ALL
            SELECT e.action, CASE WHEN e.action = '{STEP_REJECT}' THEN e.reason END,
                CASE WHEN e.action = '{ESCALATION}' AND jsonb_typeof(e.data -> 'level') = 'number'
                     THEN (e.data ->> 'level')::numeric::int END, 1
            FROM audit_event e{join}
            WHERE e.tenant_id = $1 AND e.action IN ({actions})
              AND (e.occurred_at >= $4 AND e.occurred_at < $5
                   OR e.occurred_at >= $6 AND e.occurred_at < $7)""",
        extra,
    )


async def action_counts(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> dict[str, int]:
    """How many events of each counted action occurred in [start, end)."""
    first, last, ends = whole_days(start, end)
    counted, extra = _counted(templates, _listed(COUNTED_ACTIONS), 8)
    rows = await sql.fetch(
        f"""SELECT c.action, sum(c.n) AS n FROM ({counted}) c
            GROUP BY c.action HAVING sum(c.n) > 0""",
        tenant_id,
        first,
        last,
        *ends,
        *extra,
    )
    return {row["action"]: int(row["n"]) for row in rows}


async def time_to_decision(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> Percentiles:
    """From an item's creation to its approval or rejection, over the decisions in the period
    (`item_decision`: one row per decision event, with its item's submission time and
    template, kept by the audit trail's trigger; migration `2026-12-04T01`)."""
    only = " AND d.template_id = ANY($4::uuid[])" if templates is not None else ""
    row = await sql.fetchrow(
        f"""SELECT count(*) AS n,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY w.seconds) AS p50,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY w.seconds) AS p90
            FROM (SELECT extract(epoch FROM d.decided_at - d.submitted_at)::float8 AS seconds
                  FROM item_decision d
                  WHERE d.tenant_id = $1 AND d.decided_at >= $2 AND d.decided_at < $3{only}) w""",
        tenant_id,
        start,
        end,
        *([list(templates)] if templates is not None else []),
    )
    assert row is not None
    return Percentiles(int(row["n"]), row["p50"], row["p90"])


async def rejection_reasons(
    tenant_id: str, start: datetime, end: datetime, templates: Templates, limit: int
) -> list[ReasonCount]:
    """The most frequent reasons of step rejections in the period (then alphabetical)."""
    first, last, ends = whole_days(start, end)
    counted, extra = _counted(templates, f"'{STEP_REJECT}'", 9)
    rows = await sql.fetch(
        f"""SELECT c.reason, sum(c.n) AS n FROM ({counted}) c
            GROUP BY c.reason HAVING sum(c.n) > 0
            ORDER BY n DESC, c.reason ASC NULLS LAST LIMIT $8""",
        tenant_id,
        first,
        last,
        *ends,
        limit,
        *extra,
    )
    return [ReasonCount(row["reason"], int(row["n"])) for row in rows]


async def escalation_levels(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> list[LevelCount]:
    """Escalations in the period by the chain's rung (the event's `level`; none: no rung)."""
    first, last, ends = whole_days(start, end)
    counted, extra = _counted(templates, f"'{ESCALATION}'", 8)
    rows = await sql.fetch(
        f"""SELECT c.level, sum(c.n) AS n FROM ({counted}) c
            GROUP BY c.level HAVING sum(c.n) > 0 ORDER BY c.level NULLS LAST""",
        tenant_id,
        first,
        last,
        *ends,
        *extra,
    )
    return [LevelCount(row["level"], int(row["n"])) for row in rows]


async def sla_figures(
    tenant_id: str, start: datetime, end: datetime, now: datetime, templates: Templates
) -> SlaFigures:
    """Steps whose deadline fell in the period and has passed by `now`; breached: not
    decided by it (still open, or decided later). Read from `step_deadline`, the steps'
    deadlines with their item's template (migration `2026-12-10T62`)."""
    only = " AND s.template_id = ANY($4::uuid[])" if templates is not None else ""
    row = await sql.fetchrow(
        f"""SELECT count(*) AS due,
                count(*) FILTER (WHERE s.decided_at IS NULL OR s.decided_at > s.due_at)
                    AS breached
            FROM step_deadline s
            WHERE s.tenant_id = $1 AND s.due_at >= $2 AND s.due_at < $3{only}""",
        tenant_id,
        start,
        min(end, now),
        *([list(templates)] if templates is not None else []),
    )
    assert row is not None
    return SlaFigures(int(row["due"]), int(row["breached"]))


async def reviewer_load(
    tenant_id: str, start: datetime, end: datetime, templates: Templates, limit: int
) -> list[ReviewerLoad]:
    """Per person: active steps naming them now (as a user or a delegate), their decisions in
    the period, and the median time from the step's latest activation to each decision (kept
    on the decision when it is stored, copied with the item's template into
    `decision_response`, migration `2026-12-10T62`). The busiest first (decisions, then open
    steps, then by id)."""
    decided_filter = " AND d.template_id = ANY($6::uuid[])" if templates is not None else ""
    open_filter = " AND x.template_id = ANY($6::uuid[])" if templates is not None else ""
    extra: list[object] = [list(templates)] if templates is not None else []
    rows = await sql.fetch(
        f"""WITH decided AS (
                SELECT d.actor_id AS user_id, d.seconds
                FROM decision_response d
                WHERE d.tenant_id = $1 AND d.decided_at >= $2 AND d.decided_at < $3
                  AND d.actor_id <> $4{decided_filter}
            ), by_person AS (
                SELECT user_id, count(*) AS decisions,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median
                FROM decided GROUP BY user_id
            ), open AS (
                SELECT substr(x.principal, 3) AS user_id, count(*) AS open_steps
                FROM inbox_entry x
                WHERE x.tenant_id = $1 AND left(x.principal, 2) = 'u:'{open_filter}
                GROUP BY 1
            )
            SELECT coalesce(b.user_id, o.user_id) AS user_id,
                coalesce(o.open_steps, 0) AS open_steps, coalesce(b.decisions, 0) AS decisions,
                b.median
            FROM by_person b FULL JOIN open o ON o.user_id = b.user_id
            ORDER BY decisions DESC, open_steps DESC, user_id ASC LIMIT $5""",
        tenant_id,
        start,
        end,
        SYSTEM_USER,
        limit,
        *extra,
    )
    return [
        ReviewerLoad(row["user_id"], int(row["open_steps"]), int(row["decisions"]), row["median"])
        for row in rows
    ]


async def stuck_items(
    tenant_id: str, cutoff: datetime, templates: Templates, limit: int
) -> tuple[int, list[StuckItem]]:
    """Items in review unchanged since before `cutoff`: how many, and the oldest `limit`."""
    only = " AND i.template_id = ANY($3::uuid[])" if templates is not None else ""
    extra: list[object] = [list(templates)] if templates is not None else []
    rows = await sql.fetch(
        f"""WITH stuck AS (
                SELECT i.id, i.title, i.state, i.template_id, i.updated_at
                FROM workflow_item i
                WHERE i.tenant_id = $1 AND i.state IN ({_listed(OPEN_ITEM_STATES)})
                  AND i.updated_at < $2{only}
            )
            SELECT NULL::uuid AS id, NULL AS title, NULL AS state, NULL AS key,
                NULL::timestamptz AS updated_at, count(*) AS n FROM stuck
            UNION ALL
            (SELECT s.id, s.title, s.state, t.key, s.updated_at, NULL
             FROM stuck s JOIN template t ON t.id = s.template_id
             ORDER BY s.updated_at, s.id LIMIT {int(limit)})""",
        tenant_id,
        cutoff,
        *extra,
    )
    count = int(rows[0]["n"])
    items = [
        StuckItem(str(r["id"]), r["title"], r["state"], r["key"], r["updated_at"]) for r in rows[1:]
    ]
    return count, items


async def open_items(tenant_id: str, templates: Templates) -> int:
    """Items in review now (the backlog)."""
    only = " AND i.template_id = ANY($2::uuid[])" if templates is not None else ""
    row = await sql.fetchrow(
        f"""SELECT count(*) AS n FROM workflow_item i
            WHERE i.tenant_id = $1 AND i.state IN ({_listed(OPEN_ITEM_STATES)}){only}""",
        tenant_id,
        *([list(templates)] if templates is not None else []),
    )
    return int(row["n"]) if row else 0


async def decision_fatigue(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> DecisionFatigue:
    """Over the items submitted in the period (`workflow_item.created_at`): their steps, the
    steps a person decided on (at least one decision not by the system), and people's
    decisions (`item_tally`: one row per item, kept by triggers; migration `2026-12-10T61`)."""
    only = " AND t.template_id = ANY($4::uuid[])" if templates is not None else ""
    row = await sql.fetchrow(
        f"""SELECT count(*) AS items, coalesce(sum(t.steps), 0) AS steps,
                coalesce(sum(t.decision_steps), 0) AS decision_steps,
                coalesce(sum(t.human_decisions), 0) AS decisions
            FROM item_tally t
            WHERE t.tenant_id = $1 AND t.submitted_at >= $2 AND t.submitted_at < $3{only}""",
        tenant_id,
        start,
        end,
        *([list(templates)] if templates is not None else []),
    )
    assert row is not None
    return DecisionFatigue(
        int(row["items"]), int(row["steps"]), int(row["decision_steps"]), int(row["decisions"])
    )
