"""Approval analytics in SQL: each figure one statement over the audit trail (or the current
state tables where they are the truth), run together in one snapshot by the service.

Each statement is written once with an optional template filter: the caller passes the ids of
the template's versions, or None for every template. The indexes the statements use are those
of migration `2026-12-01T04` (see docs/operations/analytics.md, "Cost").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from signoff.db import sql
from signoff.domain.actors import SYSTEM_USER
from signoff.domain.analytics import (
    COUNTED_ACTIONS,
    ESCALATION,
    OPEN_ITEM_STATES,
    STEP_REJECT,
    SUBMITTED,
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


async def action_counts(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> dict[str, int]:
    """How many events of each counted action occurred in [start, end)."""
    join, extra = _only(templates, "e", 4)
    rows = await sql.fetch(
        f"""SELECT e.action, count(*) AS n FROM audit_event e{join}
            WHERE e.tenant_id = $1 AND e.action IN ({_listed(COUNTED_ACTIONS)})
              AND e.occurred_at >= $2 AND e.occurred_at < $3
            GROUP BY e.action""",
        tenant_id,
        start,
        end,
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
    join, extra = _only(templates, "e", 5)
    rows = await sql.fetch(
        f"""SELECT e.reason, count(*) AS n FROM audit_event e{join}
            WHERE e.tenant_id = $1 AND e.action = '{STEP_REJECT}'
              AND e.occurred_at >= $2 AND e.occurred_at < $3
            GROUP BY e.reason ORDER BY n DESC, e.reason ASC NULLS LAST LIMIT $4""",
        tenant_id,
        start,
        end,
        limit,
        *extra,
    )
    return [ReasonCount(row["reason"], int(row["n"])) for row in rows]


async def escalation_levels(
    tenant_id: str, start: datetime, end: datetime, templates: Templates
) -> list[LevelCount]:
    """Escalations in the period by the chain's rung (the event's `level`; none: no rung)."""
    join, extra = _only(templates, "e", 4)
    rows = await sql.fetch(
        f"""SELECT CASE WHEN jsonb_typeof(e.data -> 'level') = 'number'
                        THEN (e.data ->> 'level')::numeric::int END AS level,
                   count(*) AS n
            FROM audit_event e{join}
            WHERE e.tenant_id = $1 AND e.action = '{ESCALATION}'
              AND e.occurred_at >= $2 AND e.occurred_at < $3
            GROUP BY 1 ORDER BY 1 NULLS LAST""",
        tenant_id,
        start,
        end,
        *extra,
    )
    return [LevelCount(row["level"], int(row["n"])) for row in rows]


async def sla_figures(
    tenant_id: str, start: datetime, end: datetime, now: datetime, templates: Templates
) -> SlaFigures:
    """Steps whose deadline fell in the period and has passed by `now`; breached: not
    decided by it (still open, or decided later)."""
    join, extra = _only(templates, "s", 4)
    row = await sql.fetchrow(
        f"""SELECT count(*) AS due,
                count(*) FILTER (WHERE s.decided_at IS NULL OR s.decided_at > s.due_at)
                    AS breached
            FROM step s{join}
            WHERE s.tenant_id = $1 AND s.due_at IS NOT NULL
              AND s.due_at >= $2 AND s.due_at < $3""",
        tenant_id,
        start,
        min(end, now),
        *extra,
    )
    assert row is not None
    return SlaFigures(int(row["due"]), int(row["breached"]))


async def reviewer_load(
    tenant_id: str, start: datetime, end: datetime, templates: Templates, limit: int
) -> list[ReviewerLoad]:
    """Per person: active steps naming them now (as a user or a delegate), their decisions in
    the period, and the median time from the step's latest activation to each decision (kept
    on the decision when it is stored). The busiest first (decisions, then open steps, then
    by id)."""
    decided_join, extra = _only(templates, "d", 6)
    open_filter = " AND x.template_id = ANY($6::uuid[])" if templates is not None else ""
    rows = await sql.fetch(
        f"""WITH decided AS (
                SELECT d.actor_id AS user_id,
                    extract(epoch FROM d.created_at - d.step_activated_at)::float8 AS seconds
                FROM decision d{decided_join}
                WHERE d.tenant_id = $1 AND d.created_at >= $2 AND d.created_at < $3
                  AND d.actor_id <> $4
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
    """Over the items submitted in the period: their steps, the steps a person decided on
    (at least one decision not by the system), and people's decisions."""
    join, extra = _only(templates, "e", 5)
    row = await sql.fetchrow(
        f"""WITH submitted AS (
                SELECT DISTINCT e.item_id FROM audit_event e{join}
                WHERE e.tenant_id = $1 AND e.action = '{SUBMITTED}'
                  AND e.occurred_at >= $2 AND e.occurred_at < $3 AND e.item_id IS NOT NULL
            ), human AS (
                SELECT d.step_id, count(*) AS n FROM decision d JOIN submitted u USING (item_id)
                WHERE d.tenant_id = $1 AND d.actor_id <> $4
                GROUP BY d.step_id
            )
            SELECT (SELECT count(*) FROM submitted) AS items,
                count(s.id) AS steps,
                count(h.step_id) AS decision_steps,
                coalesce(sum(h.n), 0) AS decisions
            FROM submitted u JOIN step s ON s.item_id = u.item_id AND s.tenant_id = $1
            LEFT JOIN human h ON h.step_id = s.id""",
        tenant_id,
        start,
        end,
        SYSTEM_USER,
        *extra,
    )
    assert row is not None
    return DecisionFatigue(
        int(row["items"]), int(row["steps"]), int(row["decision_steps"]), int(row["decisions"])
    )
