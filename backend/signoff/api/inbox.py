"""The reviewer inbox (Relay-style connection with facets).

A page costs a constant number of statements: the page itself, the steps of its items, their
decisions and the facet counts when asked for, and their template versions (DataLoaders in
`api/loaders.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError
from signoff.api.event_cursors import EVENT_CURSOR_DESCRIPTION, encode_cursor
from signoff.api.loaders import definitions_for, loaders_of
from signoff.api.paging import After, Before, First, Last, PageArgs, PageInfo, page_args
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.db import inbox as inbox_repo
from signoff.db.inbox import (
    ClaimState,
    InboxFilters,
    InboxOrder,
    InboxPrincipal,
    InboxSortField,
    ItemScope,
)
from signoff.db.records import item_of
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.states import ItemState
from signoff.domain.templates import RiskLevel, TemplateKind

InboxSortFieldEnum = described_enum(
    InboxSortField,
    "What the inbox is ordered by; ties are broken by item id.",
    {
        InboxSortField.DUE: "Earliest SLA deadline of the caller's active steps (else the "
        "item's); items without one last. Ascending by default.",
        InboxSortField.PRIORITY: "Item priority; highest first by default.",
        InboxSortField.RISK: "Item risk level; critical first by default.",
        InboxSortField.CREATED: "Submission time; newest first by default.",
    },
    name="InboxSortField",
)
InboxClaimEnum = described_enum(
    ClaimState,
    "Whether the caller's active steps of an item are claimed.",
    {
        ClaimState.MINE: "Claimed by the caller.",
        ClaimState.UNCLAIMED: "Claimed by nobody.",
        ClaimState.OTHERS: "Claimed by someone else.",
    },
    name="InboxClaim",
)


class SortDirection(StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


SortDirectionEnum = described_enum(
    SortDirection,
    "Ascending or descending order.",
    {SortDirection.ASC: "Smallest first.", SortDirection.DESC: "Largest first."},
)

_DEFAULT_DESCENDING = {
    InboxSortField.DUE: False,
    InboxSortField.PRIORITY: True,
    InboxSortField.RISK: True,
    InboxSortField.CREATED: True,
}


@strawberry.input(description="Item filters; given ones are combined with AND.")
class ItemFilter:
    states: list[ItemState] | None = strawberry.field(
        default=None, description="Item states (any of)."
    )
    kinds: list[TemplateKind] | None = strawberry.field(
        default=None, description="Item kinds (any of)."
    )
    template_keys: list[str] | None = strawberry.field(
        default=None, description="Template keys (any of), every version."
    )
    risks: list[RiskLevel] | None = strawberry.field(
        default=None, description="Item risk levels (any of)."
    )
    priority_min: int | None = strawberry.field(
        default=None, description="Only items with at least this priority."
    )
    due_before: datetime | None = strawberry.field(
        default=None, description="Only items due before this time."
    )
    due_after: datetime | None = strawberry.field(
        default=None, description="Only items due at or after this time."
    )
    overdue: bool | None = strawberry.field(
        default=None, description="Only overdue items (true) or only items not overdue (false)."
    )
    text: str | None = strawberry.field(
        default=None, description="Case-insensitive text the title contains."
    )


@strawberry.input(description="Inbox filters; given ones are combined with AND.")
class InboxFilter(ItemFilter):
    claim: ClaimState | None = strawberry.field(
        default=None, description="Only items claimed by me, unclaimed, or claimed by others."
    )


@strawberry.input(description="Inbox order; ties are broken by item id, so pages are stable.")
class InboxSort:
    field: InboxSortField = strawberry.field(
        default=InboxSortField.DUE, description="Sort field (default DUE)."
    )
    direction: SortDirection | None = strawberry.field(
        default=None,
        description="Direction; default ascending for DUE, descending for the others.",
    )


@strawberry.type(description="One inbox entry: an item and why it is in the caller's inbox.")
class InboxEdge:
    cursor: str = strawberry.field(description="Opaque position of this entry in its order.")
    node: WorkflowItem = strawberry.field(description="The item.")
    due_at: datetime | None = strawberry.field(
        description="Earliest SLA deadline of the caller's active steps (else the item's)."
    )
    overdue: bool = strawberry.field(description="Whether that deadline has passed.")
    claim: ClaimState = strawberry.field(description="Claim state of the caller's steps.")


@strawberry.type(description="How many inbox items have one value of a facet.")
class FacetCount:
    value: str = strawberry.field(
        description="The value, spelled as in the schema's enums (`PENDING`, `HIGH`, `MINE`) "
        "or `true`/`false` for overdue."
    )
    count: int = strawberry.field(description="Number of items with that value.")


@strawberry.type(description="Counts per filter value, over the items matching the filter.")
class ItemFacets:
    states: list[FacetCount] = strawberry.field(description="Per item state.")
    kinds: list[FacetCount] = strawberry.field(description="Per item kind.")
    risks: list[FacetCount] = strawberry.field(description="Per risk level.")
    overdue: list[FacetCount] = strawberry.field(description="Overdue (`true`) or not.")

    @classmethod
    def counted(cls, facets: dict[str, dict[str, int]]) -> dict[str, list[FacetCount]]:
        """The lists of these facets, from the counts by facet and value."""
        return {
            "states": facet_counts(facets["state"], ItemState),
            "kinds": facet_counts(facets["kind"], TemplateKind),
            "risks": facet_counts(facets["risk"], RiskLevel),
            "overdue": facet_counts(facets["overdue"], None),
        }


@strawberry.type(description="Counts per filter value, over the items matching the filter.")
class InboxFacets(ItemFacets):
    claim: list[FacetCount] = strawberry.field(description="Per claim state.")


@dataclass
class PageCounts:
    """The counts of a page's filter: one bounded statement, run once, when `totalCount`,
    `countsExact` or `facets` first asks."""

    who: InboxPrincipal
    filters: InboxFilters
    order: InboxOrder
    now: datetime
    limit: int
    scope: ItemScope | None = None
    _result: inbox_repo.InboxCounts | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self) -> inbox_repo.InboxCounts:
        """The counts, computed on first use."""
        async with self._lock:
            if self._result is None:
                self._result = await inbox_repo.inbox_counts(
                    self.who, self.filters, self.order, self.now, limit=self.limit, scope=self.scope
                )
            return self._result


@strawberry.type(description="A page of items with the counts of its filter.")
class CountedItemPage:
    """The counting part of the inbox's and the item lists' connections (one bounded
    statement for all of it, run when first asked for)."""

    page_info: PageInfo = strawberry.field(description="Where this page is.")
    event_cursor: str = strawberry.field(description=EVENT_CURSOR_DESCRIPTION)
    counts: strawberry.Private[PageCounts]

    @strawberry.field(
        description="Number of items matching the filter (all pages), counted up to the "
        "server's counting limit (`SIGNOFF_INBOX_COUNT_LIMIT`); see `countsExact`."
    )
    async def total_count(self) -> int:
        return (await self.counts.get()).total

    @strawberry.field(
        description="Whether `totalCount` and `facets` are exact. False when more items match "
        "than the counting limit: both then count the first items of this order up to the "
        'limit (show them as "1000+").'
    )
    async def counts_exact(self) -> bool:
        return (await self.counts.get()).exact


@strawberry.type(description="A page of the caller's inbox.")
class InboxConnection(CountedItemPage):
    edges: list[InboxEdge] = strawberry.field(description="The entries of this page.")

    @strawberry.field(description="The items of this page without their cursors.")
    def nodes(self) -> list[WorkflowItem]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="Counts per filter value, for the badges of a filter bar.")
    async def facets(self) -> InboxFacets:
        facets = (await self.counts.get()).facets
        return InboxFacets(
            **ItemFacets.counted(facets), claim=facet_counts(facets["claim"], ClaimState)
        )


def facet_counts(counts: dict[str, int], enum: type[Enum] | None) -> list[FacetCount]:
    out = []
    for value, count in sorted(counts.items()):
        name = value
        if enum is not None:
            try:
                name = enum(value).name
            except ValueError:
                name = value
        out.append(FacetCount(value=name, count=count))
    return out


def encode_page_cursor(order: InboxOrder, value: Any, item_id: UUID) -> str:
    raw = value.isoformat() if isinstance(value, datetime) else value
    text = json.dumps([order.field.value, order.descending, raw, str(item_id)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_cursor(cursor: str, order: InboxOrder, field: str) -> inbox_repo.Keyset:
    bad = DomainError(ErrorCode.INVALID_INPUT, "not a cursor of this inbox order", field)
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        field, descending, raw, item_id = json.loads(text)
        if field != order.field.value or descending != order.descending:
            raise bad
        if order.field in (InboxSortField.DUE, InboxSortField.CREATED):
            value: Any = datetime.fromisoformat(raw)
        else:
            value = int(raw)
            if not -(2**31) <= value < 2**31:
                raise bad
        return inbox_repo.Keyset(value, UUID(item_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None


def filters_of(f: ItemFilter | None) -> InboxFilters:
    """The repository's filters from a filter input (an inbox's or an item list's)."""
    if f is None:
        return InboxFilters()
    return InboxFilters(
        states=tuple(s.value for s in f.states or ()),
        kinds=tuple(k.value for k in f.kinds or ()),
        template_keys=tuple(f.template_keys or ()),
        risks=tuple(r.value for r in f.risks or ()),
        priority_min=f.priority_min,
        due_before=f.due_before,
        due_after=f.due_after,
        overdue=f.overdue,
        claim=f.claim if isinstance(f, InboxFilter) else None,
        text=f.text,
    )


def order_of(sort: InboxSort | None) -> InboxOrder:
    field = sort.field if sort else InboxSortField.DUE
    direction = sort.direction if sort else None
    descending = (
        _DEFAULT_DESCENDING[field] if direction is None else direction == SortDirection.DESC
    )
    return InboxOrder(field, descending)


@dataclass(frozen=True)
class PageRequest:
    """A checked page request: who reads, in which order, from where, how many, when."""

    who: InboxPrincipal
    order: InboxOrder
    keyset: inbox_repo.Keyset | None
    args: PageArgs
    now: datetime

    @property
    def read_order(self) -> InboxOrder:
        """The order rows are read in: a page backwards reads the list's order reversed from
        its cursor (the same index ranges, scanned the other way)."""
        if self.args.backwards:
            return InboxOrder(self.order.field, not self.order.descending)
        return self.order

    async def rows(
        self, filters: InboxFilters, scope: ItemScope | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The page's rows in the list's order, and whether more lie beyond it."""
        rows, more = await inbox_repo.inbox_page(
            self.who,
            filters,
            self.read_order,
            after=self.keyset,
            limit=self.args.size,
            now=self.now,
            scope=scope,
        )
        return (rows[::-1] if self.args.backwards else rows), more

    def counts(
        self, filters: InboxFilters, limit: int, scope: ItemScope | None = None
    ) -> PageCounts:
        """The counts of this page's filter (computed when first asked for)."""
        return PageCounts(self.who, filters, self.order, self.now, limit, scope)

    def info(self, cursors: list[str], more: bool) -> PageInfo:
        """The page information of a page with these edge cursors."""
        return self.args.info(cursors, more)


def parse_page(
    info: Info[SignoffContext, Any],
    sort: InboxSort | None,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    """The caller, order, cursor and size of a paged read (INVALID_INPUT when out of range)."""
    actor = actor_of(info)
    services = services_of(info)
    order = order_of(sort)
    try:
        args = page_args(first, after, last, before, services.settings.max_page_size)
        cursor = args.cursor
        keyset = decode_page_cursor(cursor, order, args.cursor_field) if cursor else None
    except DomainError as exc:
        raise CodedError(exc) from None
    principal = actor.principal
    who = InboxPrincipal(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        groups=tuple(sorted(principal.groups)),
        roles=tuple(sorted(principal.roles)),
    )
    return PageRequest(who, order, keyset, args, services.clock.now())


async def nodes_of_rows(
    info: Info[SignoffContext, Any], rows: list[dict[str, Any]]
) -> list[WorkflowItem]:
    """The items of a page's rows with their definitions (one statement, cached); their
    steps are read, in one statement for the page, only if the operation asks for them."""
    loaders = loaders_of(info)
    items = [item_of(r) for r in rows]
    definitions = await definitions_for(loaders, services_of(info), items)
    nodes = []
    for item, definition in zip(items, definitions, strict=True):
        loaders.items.prime(item.id, item)
        nodes.append(WorkflowItem.from_parts(item, None, definition))
    return nodes


@strawberry.type
class InboxQueries:
    """The inbox (a base of `Query`)."""

    @strawberry.field(
        description="Items with an active step the caller can act on (assigned to them, one "
        "of their groups or roles, delegated or escalated to them), filtered, sorted and paged "
        "with stable cursors."
    )
    async def inbox(
        self,
        info: Info[SignoffContext, Any],
        filter: Annotated[
            InboxFilter | None, strawberry.argument(description="Which items (default: all).")
        ] = None,
        sort: Annotated[
            InboxSort | None, strawberry.argument(description="Order (default: DUE ascending).")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> InboxConnection:
        page = parse_page(info, sort, first, after, last, before)
        filters = filters_of(filter)
        async with feed.snapshot_read(page.who.tenant_id) as head:
            rows, more = await page.rows(filters)
        nodes = await nodes_of_rows(info, rows)
        edges = [
            InboxEdge(
                cursor=encode_page_cursor(page.order, row["sort_key"], row["id"]),
                node=node,
                due_at=row["inbox_due"],
                overdue=row["inbox_overdue"],
                claim=ClaimState(row["inbox_claim"]),
            )
            for row, node in zip(rows, nodes, strict=True)
        ]
        return InboxConnection(
            edges=edges,
            page_info=page.info([e.cursor for e in edges], more),
            event_cursor=encode_cursor(page.who.tenant_id, head),
            counts=page.counts(filters, services_of(info).settings.inbox_count_limit),
        )
