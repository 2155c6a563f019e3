"""The reviewer inbox: items with an active step the caller can act on, filtered, sorted, paged.

It reads `inbox_entry` (migration `2026-11-30T01`): one row per active step and principal the
step names (`u:<user>` for a named user or a delegate, `g:<group>`, `r:<role>`), kept by
triggers in the same transaction as the step or item change, indexed by (tenant, principal,
sort value, item id) for each sort field. A reader's inbox is the merge of one index range per
principal key they hold, read from the keyset cursor onwards; the merge is stopped by the
page's LIMIT, so a page costs the same at 50 or 50,000 entries (no Sort over the reader's rows;
`tests/api/test_inbox_plan.py` checks the plan).

An item may appear several times in that merge (two of the reader's steps, or one step naming
them and their role). Exactly one of its entries represents it: the reader's entry with the
smallest (due, principal, step id) among those on steps they have not already voted on in this
revision; the representative's `due` is the item's due time for the reader, so the item sits
at the right place in every order. A per-row lookup of the item's other entries (a handful)
decides it, and also gives the claim state over the reader's steps.
"""

from __future__ import annotations

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


class ItemScope(StrEnum):
    """Which of a reader's items `items` lists (read from the same entries as the inbox)."""

    REQUESTED = "requested"
    DECIDED = "decided"


# Entry principals of the item scopes: one row per item for its requester, one per item and
# person who decided on it (migration `2026-11-30T01:10`).
_SCOPE_PREFIX = {ItemScope.REQUESTED: "q:", ItemScope.DECIDED: "h:"}


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


_SORT_COLUMNS = {
    InboxSortField.DUE: "due",
    InboxSortField.PRIORITY: "priority",
    InboxSortField.RISK: "risk_rank",
    InboxSortField.CREATED: "created_at",
}
_SORT_CASTS = {
    InboxSortField.DUE: "timestamptz",
    InboxSortField.PRIORITY: "int",
    InboxSortField.RISK: "smallint",
    InboxSortField.CREATED: "timestamptz",
}


class _Params:
    """Positional parameters of a statement being built."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{'::' + cast if cast else ''}"


def principal_keys(who: InboxPrincipal) -> list[str]:
    """The entry principals a reader holds: their user, groups and roles."""
    return [
        f"u:{who.user_id}",
        *(f"g:{g}" for g in sorted(set(who.groups))),
        *(f"r:{r}" for r in sorted(set(who.roles))),
    ]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _entry_conditions(p: _Params, tenant: str, filters: InboxFilters, now: datetime) -> list[str]:
    """Filters that an entry answers by itself (item columns copied onto it, and its due
    time, which is the item's for the one entry that represents it)."""
    where = []
    if filters.states:
        where.append(f"e.item_state = ANY({p.add(list(filters.states), 'text[]')})")
    if filters.kinds:
        where.append(f"e.kind = ANY({p.add(list(filters.kinds), 'text[]')})")
    if filters.risks:
        where.append(f"e.risk = ANY({p.add(list(filters.risks), 'text[]')})")
    if filters.priority_min is not None:
        where.append(f"e.priority >= {p.add(filters.priority_min, 'int')}")
    if filters.template_keys:
        keys = p.add(list(filters.template_keys), "text[]")
        # An array built once (an init plan), so each branch stays a plain index scan.
        where.append(
            f"e.template_id = ANY(ARRAY(SELECT t.id FROM template t WHERE t.tenant_id = "
            f"{tenant} AND t.key = ANY({keys})))"
        )
    if filters.text and filters.text.strip():
        where.append(f"e.title ILIKE {p.add(_like_pattern(filters.text.strip()))}")
    if filters.due_before is not None:
        where.append(f"e.due < {p.add(filters.due_before, 'timestamptz')}")
    if filters.due_after is not None:
        # Entries without a deadline carry the sentinel, which is not a due time.
        where.append(
            f"e.due >= {p.add(filters.due_after, 'timestamptz')} "
            f"AND e.due < '{NO_DUE_DATE}'::timestamptz"
        )
    if filters.overdue is not None:
        op = "<" if filters.overdue else ">="
        where.append(f"e.due {op} {p.add(now, 'timestamptz')}")
    return where


def _mine(p: _Params, who: InboxPrincipal, tenant: str, user: str) -> str:
    """Entries `o` of the same item as `e` that are the reader's and still theirs to act on."""
    keys = p.add(principal_keys(who), "text[]")
    return f"""o.item_id = e.item_id AND o.principal = ANY({keys}) AND o.tenant_id = {tenant}
              -- a reviewer who filled a seat of the step in this revision has nothing left
              AND NOT EXISTS (
                  SELECT 1 FROM decision d
                  WHERE d.step_id = o.step_id AND d.revision = o.revision
                    AND d.actor_id = {user} AND d.outcome IN ('approve', 'reject'))"""


def _claim_of(mine: str, user: str, wanted: str | None = None) -> str:
    """A lateral subquery `claim`: the claim `state` over the reader's steps of `e`'s item
    (or, given a wanted state, whether it is that one: `claim.wanted`)."""
    state = f"""CASE WHEN bool_or(o.claimed_by = {user}) THEN 'mine'
                    WHEN bool_and(o.claimed_by IS NULL) THEN 'unclaimed'
                    ELSE 'others' END"""
    # A boolean column, not a comparison in the outer WHERE: the planner then assumes half
    # the rows pass (instead of 0.5%) and keeps reading the ordered index.
    column = f"({state}) = {wanted} AS wanted" if wanted else f"{state} AS state"
    return f"""LATERAL (
        SELECT {column}
        FROM inbox_entry o
        WHERE {mine}
    ) claim"""


def _inbox_rows(
    p: _Params,
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    now: datetime,
    after: Keyset | None,
    limit: int,
    scope: ItemScope | None = None,
) -> str:
    """A subquery `e` of the first `limit` rows in `order` (after `after`) of the reader's
    inbox, or of their items in `scope`: one per item, with `sort_key`, `due` (the item's due
    time for the reader), `item_id`, `item_state`, `kind` and `risk`; rows from different
    principals' ranges arrive unmerged, each range in `order`."""
    tenant = p.add(who.tenant_id)
    column = _SORT_COLUMNS[order.field]
    conditions = _entry_conditions(p, tenant, filters, now)
    if after is not None:
        op = "<" if order.descending else ">"
        value = p.add(after.value, _SORT_CASTS[order.field])
        conditions.append(f"(e.{column}, e.item_id) {op} ({value}, {p.add(after.item_id, 'uuid')})")
    if scope is not None:
        # one entry per item: the range needs no check against other entries
        keys, check = [_SCOPE_PREFIX[scope] + who.user_id], ""
    else:
        keys = principal_keys(who)
        user = p.add(who.user_id)
        mine = _mine(p, who, tenant, user)
        claim_join, claim_where = "", ""
        if filters.claim is not None:
            claim_join = f"CROSS JOIN {_claim_of(mine, user, p.add(filters.claim.value))}"
            claim_where = " AND claim.wanted"
        # whether `e` is the entry that represents its item (a boolean column, for the
        # planner's estimate: see `_claim_of`)
        check = f"""CROSS JOIN LATERAL (
            SELECT o.principal = e.principal AND o.step_id = e.step_id AS is_it
            FROM inbox_entry o
            WHERE {mine}
            ORDER BY o.due, o.principal, o.step_id LIMIT 1
        ) rep
        {claim_join}"""
        conditions.append(f"rep.is_it{claim_where}")
    extra = "".join(f" AND {c}" for c in conditions)
    direction = "DESC" if order.descending else "ASC"
    limit_param = p.add(limit, "int")
    # One index range per principal key, read in the requested order from the cursor and
    # stopped at the LIMIT; in the inbox, each row checked against the item's other entries
    # (a handful) to keep only the entry that represents the item for this reader.
    branches = [
        f"""(SELECT e.item_id, e.{column} AS sort_key, e.due, e.item_state, e.kind, e.risk
        FROM inbox_entry e
        {check}
        WHERE e.tenant_id = {tenant} AND e.principal = {p.add(key)}{extra}
        ORDER BY e.{column} {direction}, e.item_id {direction}
        LIMIT {limit_param})"""
        for key in keys
    ]
    return "(\n    " + "\n    UNION ALL\n    ".join(branches) + "\n    ) e"


def _claim_column(p: _Params, who: InboxPrincipal, scope: ItemScope | None) -> tuple[str, str]:
    """The join and the column of the claim state of page rows `e` (none for item scopes)."""
    if scope is not None:
        return "", "NULL::text"
    tenant, user = p.add(who.tenant_id), p.add(who.user_id)
    return f"CROSS JOIN {_claim_of(_mine(p, who, tenant, user), user)}", "claim.state"


def page_statement(
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    *,
    after: Keyset | None,
    limit: int,
    now: datetime,
    scope: ItemScope | None = None,
) -> tuple[str, list[Any]]:
    """The statement of one page (and its parameters) of the reader's inbox, or of their
    items in `scope`: the page's entries, their claim state, then their items by primary
    key."""
    p = _Params()
    source = _inbox_rows(p, who, filters, order, now, after, limit + 1, scope)
    direction = "DESC" if order.descending else "ASC"
    claim_join, claim = _claim_column(p, who, scope)
    statement = f"""WITH page AS (
    SELECT e.item_id, e.sort_key, e.due FROM {source}
    ORDER BY e.sort_key {direction}, e.item_id {direction}
    LIMIT {p.add(limit + 1, "int")}
    )
    SELECT i.*,
        CASE WHEN e.due = '{NO_DUE_DATE}'::timestamptz THEN NULL ELSE e.due END AS inbox_due,
        e.due < {p.add(now, "timestamptz")} AS inbox_overdue,
        {claim} AS inbox_claim,
        e.sort_key
    FROM page e
    {claim_join}
    JOIN workflow_item i ON i.id = e.item_id
    ORDER BY e.sort_key {direction}, e.item_id {direction}"""
    return statement, p.values


async def inbox_page(
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    *,
    after: Keyset | None,
    limit: int,
    now: datetime,
    scope: ItemScope | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` rows of the reader's inbox (or of their items in `scope`) after `after`
    in `order`, and whether more follow.

    Each row is the item with `inbox_due` (the earliest deadline of the caller's active steps,
    where a step without one counts the item's; the item's own in a scope), `inbox_overdue`,
    `inbox_claim` (null in a scope) and `sort_key` (the keyset value).
    """
    statement, values = page_statement(
        who, filters, order, after=after, limit=limit, now=now, scope=scope
    )
    rows = await sql.fetch(statement, *values)
    items = [sql.record_dict(r, ITEM_JSON) for r in rows[:limit]]
    return items, len(rows) > limit


FACETS = ("state", "kind", "risk", "overdue", "claim")


@dataclass(frozen=True)
class InboxCounts:
    """How many inbox items match a filter, and how many have each value of each facet.

    `exact` is false when more than the counting limit match: the counts then cover the first
    `limit` items of the inbox in the requested order, and `total` is that limit."""

    total: int
    facets: dict[str, dict[str, int]]
    exact: bool


async def inbox_counts(
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    now: datetime,
    *,
    limit: int,
    scope: ItemScope | None = None,
) -> InboxCounts:
    """The number of inbox items matching `filters` and their counts per value of each facet
    (state, kind, risk, overdue, claim), in one statement that reads at most `limit` + 1 items
    (the first ones in `order`), so its cost is bounded whatever the inbox holds."""
    p = _Params()
    source = _inbox_rows(p, who, filters, order, now, None, limit + 1, scope)
    direction = "DESC" if order.descending else "ASC"
    claim_join, claim = _claim_column(p, who, scope)
    statement = f"""WITH head AS MATERIALIZED (
        SELECT e.item_id, e.item_state, e.kind, e.risk,
            e.due < {p.add(now, "timestamptz")} AS overdue
        FROM {source}
        ORDER BY e.sort_key {direction}, e.item_id {direction}
        LIMIT {p.add(limit + 1, "int")}
    ),
    counted AS (
        SELECT e.*, {claim} AS claim
        FROM (SELECT * FROM head LIMIT {p.add(limit, "int")}) e
        {claim_join}
    )
    SELECT 'state' AS facet, item_state AS value, count(*) AS n FROM counted GROUP BY item_state
    UNION ALL SELECT 'kind', kind, count(*) FROM counted GROUP BY kind
    UNION ALL SELECT 'risk', risk, count(*) FROM counted GROUP BY risk
    UNION ALL SELECT 'overdue', overdue::text, count(*) FROM counted GROUP BY overdue
    UNION ALL SELECT 'claim', claim, count(*) FROM counted WHERE claim IS NOT NULL
        GROUP BY claim
    UNION ALL SELECT 'total', '', count(*) FROM head"""
    rows = await sql.fetch(statement, *p.values)
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    total = 0
    for row in rows:
        if row["facet"] == "total":
            total = int(row["n"])
        else:
            facets[row["facet"]][row["value"]] = int(row["n"])
    return InboxCounts(min(total, limit), facets, total <= limit)
