"""The reviewer inbox: items with an active step the caller can act on, filtered, sorted, paged.

The query starts from the caller's ACTIVE steps (partial indexes, see the inbox migration) and
joins their items by primary key: its cost follows the size of one reviewer's inbox, not the
number of items in the database. Pages are keyset pages on (sort value, item id), so a page
never shifts when items are added or removed before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.db.items import ITEM_JSON

# Items without a deadline sort after every real one (ascending) on a value both PostgreSQL and
# Python represent, which keeps the keyset comparison free of NULLs.
NO_DUE_DATE = "9999-12-31T00:00:00+00:00"


class InboxSortField(StrEnum):
    """What the inbox is ordered by."""

    DUE = "due"
    PRIORITY = "priority"
    RISK = "risk"
    CREATED = "created"


class ClaimState(StrEnum):
    """Whether the caller's steps of an item are claimed, by them or by someone else."""

    MINE = "mine"
    UNCLAIMED = "unclaimed"
    OTHERS = "others"


@dataclass(frozen=True)
class InboxPrincipal:
    """Whom the inbox is for: a user with their groups and roles, inside one tenant."""

    tenant_id: str
    user_id: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboxFilters:
    """Every filter is optional; given ones are combined with AND, list values with OR."""

    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    template_keys: tuple[str, ...] = ()
    risks: tuple[str, ...] = ()
    priority_min: int | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    claim: ClaimState | None = None
    text: str | None = None


@dataclass(frozen=True)
class InboxOrder:
    """Sort field and direction."""

    field: InboxSortField
    descending: bool


@dataclass(frozen=True)
class Keyset:
    """The position of one row in an ordering: its sort value and its id."""

    value: Any
    item_id: UUID


_SORT_KEYS = {
    InboxSortField.DUE: f"coalesce(coalesce(m.step_due, i.due_at), '{NO_DUE_DATE}'::timestamptz)",
    InboxSortField.PRIORITY: "i.priority",
    InboxSortField.RISK: (
        "CASE i.risk WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END"
    ),
    InboxSortField.CREATED: "i.created_at",
}
_SORT_CASTS = {
    InboxSortField.DUE: "timestamptz",
    InboxSortField.PRIORITY: "int",
    InboxSortField.RISK: "int",
    InboxSortField.CREATED: "timestamptz",
}


class _Params:
    """Positional parameters of a statement being built."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{'::' + cast if cast else ''}"


def _jsonpath_key(key: str) -> str:
    # A JSON string literal is a valid jsonpath quoted key (same escapes).
    return json.dumps(key)


def _assignee_match(p: _Params, who: InboxPrincipal) -> str:
    """Whether step `s` names the principal: `@>` per user/group/role so that the GIN index on
    active steps' assignees serves each branch; delegates are a map keyed by the delegate."""
    branches = [
        f"s.assignees @> {p.add(sql.dumps({'users': [who.user_id]}), 'jsonb')}",
        f"s.assignees @? {p.add('$.delegates.' + _jsonpath_key(who.user_id), 'jsonpath')}",
    ]
    branches += [
        f"s.assignees @> {p.add(sql.dumps({'groups': [g]}), 'jsonb')}" for g in sorted(who.groups)
    ]
    branches += [
        f"s.assignees @> {p.add(sql.dumps({'roles': [r]}), 'jsonb')}" for r in sorted(who.roles)
    ]
    return "(" + " OR ".join(branches) + ")"


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _inbox_cte(
    p: _Params, who: InboxPrincipal, filters: InboxFilters, now: datetime, sort_key: str
) -> str:
    """`inbox`: one row per item in the caller's inbox with the computed columns every filter,
    sort and facet needs."""
    tenant = p.add(who.tenant_id)
    user = p.add(who.user_id)
    match = _assignee_match(p, who)
    where = [f"i.tenant_id = {tenant}"]
    if filters.states:
        where.append(f"i.state = ANY({p.add(list(filters.states), 'text[]')})")
    if filters.kinds:
        where.append(f"i.kind = ANY({p.add(list(filters.kinds), 'text[]')})")
    if filters.risks:
        where.append(f"i.risk = ANY({p.add(list(filters.risks), 'text[]')})")
    if filters.priority_min is not None:
        where.append(f"i.priority >= {p.add(filters.priority_min, 'int')}")
    if filters.template_keys:
        keys = p.add(list(filters.template_keys), "text[]")
        where.append(
            f"i.template_id IN (SELECT t.id FROM template t WHERE t.tenant_id = {tenant} "
            f"AND t.key = ANY({keys}))"
        )
    if filters.text and filters.text.strip():
        where.append(f"i.title ILIKE {p.add(_like_pattern(filters.text.strip()))}")
    due = "coalesce(m.step_due, i.due_at)"
    if filters.due_before is not None:
        where.append(f"{due} < {p.add(filters.due_before, 'timestamptz')}")
    if filters.due_after is not None:
        where.append(f"{due} >= {p.add(filters.due_after, 'timestamptz')}")
    now_param = p.add(now, "timestamptz")
    # Only placeholders and fixed fragments are interpolated; every value is a parameter.
    return f"""
    mine AS (
        SELECT s.item_id,
               min(s.due_at) AS step_due,
               bool_or(s.claimed_by = {user}) AS claimed_mine,
               bool_and(s.claimed_by IS NULL) AS all_unclaimed
        FROM step s
        WHERE s.tenant_id = {tenant} AND s.state = 'active' AND {match}
          -- a reviewer who filled a seat of the step in this revision has nothing left to do
          AND NOT EXISTS (
              SELECT 1 FROM decision d JOIN workflow_item wi ON wi.id = s.item_id
              WHERE d.step_id = s.id AND d.revision = wi.revision AND d.actor_id = {user}
                AND d.outcome IN ('approve', 'reject'))
        GROUP BY s.item_id
    ),
    inbox AS (
        SELECT i.*,
               {due} AS inbox_due,
               coalesce({due} < {now_param}, false) AS inbox_overdue,
               CASE WHEN m.claimed_mine THEN 'mine'
                    WHEN m.all_unclaimed THEN 'unclaimed'
                    ELSE 'others' END AS inbox_claim,
               {sort_key} AS sort_key
        FROM mine m JOIN workflow_item i ON i.id = m.item_id
        WHERE {" AND ".join(where)}
    ),
    filtered AS (
        SELECT * FROM inbox
        WHERE ({p.add(filters.overdue, "boolean")} IS NULL
               OR inbox_overdue = {p.add(filters.overdue, "boolean")})
          AND ({p.add(filters.claim.value if filters.claim else None, "text")} IS NULL
               OR inbox_claim = {p.add(filters.claim.value if filters.claim else None, "text")})
    )"""


async def inbox_page(
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    *,
    after: Keyset | None,
    limit: int,
    now: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` inbox rows after `after` in `order`, and whether more follow.

    Each row is the item with `inbox_due` (the earliest deadline of the caller's active steps,
    else the item's), `inbox_overdue`, `inbox_claim` and `sort_key` (the keyset value).
    """
    p = _Params()
    cte = _inbox_cte(p, who, filters, now, _SORT_KEYS[order.field])
    direction = "DESC" if order.descending else "ASC"
    keyset = ""
    if after is not None:
        op = "<" if order.descending else ">"
        value = p.add(after.value, _SORT_CASTS[order.field])
        keyset = f"WHERE (sort_key, id) {op} ({value}, {p.add(after.item_id, 'uuid')})"
    statement = f"""WITH {cte}
    SELECT * FROM filtered {keyset}
    ORDER BY sort_key {direction}, id {direction}
    LIMIT {p.add(limit + 1, "int")}"""
    rows = await sql.fetch(statement, *p.values)
    items = [sql.record_dict(r, ITEM_JSON) for r in rows[:limit]]
    return items, len(rows) > limit


FACETS = ("state", "kind", "risk", "overdue", "claim")


async def inbox_facets(
    who: InboxPrincipal, filters: InboxFilters, now: datetime
) -> tuple[int, dict[str, dict[str, int]]]:
    """The number of inbox items matching `filters`, and their counts per value of each facet
    (state, kind, risk, overdue, claim), in one statement."""
    p = _Params()
    cte = _inbox_cte(p, who, filters, now, "0")
    statement = f"""WITH {cte}
    SELECT 'state' AS facet, state AS value, count(*) AS n FROM filtered GROUP BY state
    UNION ALL SELECT 'kind', kind, count(*) FROM filtered GROUP BY kind
    UNION ALL SELECT 'risk', risk, count(*) FROM filtered GROUP BY risk
    UNION ALL SELECT 'overdue', inbox_overdue::text, count(*) FROM filtered GROUP BY inbox_overdue
    UNION ALL SELECT 'claim', inbox_claim, count(*) FROM filtered GROUP BY inbox_claim
    UNION ALL SELECT 'total', '', count(*) FROM filtered"""
    rows = await sql.fetch(statement, *p.values)
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    total = 0
    for row in rows:
        if row["facet"] == "total":
            total = int(row["n"])
        else:
            facets[row["facet"]][row["value"]] = int(row["n"])
    return total, facets
