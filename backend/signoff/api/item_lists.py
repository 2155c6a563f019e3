"""`items`: the caller's own requests and their decision history, as connections with the
inbox's filters, sort, cursors and facets, read from the same entries as the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, services_of
from signoff.api.enums import described_enum
from signoff.api.event_cursors import EVENT_CURSOR_DESCRIPTION, encode_cursor
from signoff.api.inbox import (
    FacetCount,
    InboxSort,
    ItemFilter,
    PageCounts,
    PageInfo,
    encode_page_cursor,
    facet_counts,
    filters_of,
    nodes_of_rows,
    parse_page,
)
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.db import inbox as inbox_repo
from signoff.db.inbox import ItemScope
from signoff.domain.states import ItemState
from signoff.domain.templates import RiskLevel, TemplateKind

ItemScopeEnum = described_enum(
    ItemScope,
    "Which of the caller's items `items` lists.",
    {
        ItemScope.REQUESTED: 'Items the caller submitted ("my requests"), in every state.',
        ItemScope.DECIDED: "Items the caller decided on (voted, rejected, overrode): their "
        "history.",
    },
    name="ItemScope",
)


@strawberry.type(description="One of the caller's items.")
class ItemEdge:
    cursor: str = strawberry.field(description="Opaque position of this entry in its order.")
    node: WorkflowItem = strawberry.field(description="The item.")
    due_at: datetime | None = strawberry.field(description="The item's deadline.")
    overdue: bool = strawberry.field(description="Whether that deadline has passed.")


@strawberry.type(description="Counts per filter value, over the items matching the filter.")
class ItemFacets:
    states: list[FacetCount] = strawberry.field(description="Per item state.")
    kinds: list[FacetCount] = strawberry.field(description="Per item kind.")
    risks: list[FacetCount] = strawberry.field(description="Per risk level.")
    overdue: list[FacetCount] = strawberry.field(description="Overdue (`true`) or not.")


@strawberry.type(description="A page of the caller's items in one scope.")
class ItemConnection:
    edges: list[ItemEdge] = strawberry.field(description="The entries of this page.")
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
        description="Whether `totalCount` and `facets` are exact (false above the counting "
        "limit: both then count the first items of this order up to the limit)."
    )
    async def counts_exact(self) -> bool:
        return (await self.counts.get()).exact

    @strawberry.field(description="Counts per filter value, for the badges of a filter bar.")
    async def facets(self) -> ItemFacets:
        facets = (await self.counts.get()).facets
        return ItemFacets(
            states=facet_counts(facets["state"], ItemState),
            kinds=facet_counts(facets["kind"], TemplateKind),
            risks=facet_counts(facets["risk"], RiskLevel),
            overdue=facet_counts(facets["overdue"], None),
        )


@strawberry.type
class ItemListQueries:
    """The caller's requests and history (a base of `Query`)."""

    @strawberry.field(
        description="The caller's own items in one scope: what they requested (\"my "
        'requests", every state) or what they decided on (history); filtered, searched by '
        "title, sorted and paged like the inbox, with stable cursors."
    )
    async def items(
        self,
        info: Info[SignoffContext, Any],
        scope: Annotated[
            ItemScope, strawberry.argument(description="Requested by the caller or decided on.")
        ],
        filter: Annotated[
            ItemFilter | None, strawberry.argument(description="Which items (default: all).")
        ] = None,
        sort: Annotated[
            InboxSort | None, strawberry.argument(description="Order (default: DUE ascending).")
        ] = None,
        first: Annotated[
            int | None,
            strawberry.argument(description="Page size, 1 to the configured maximum (default 20)."),
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(description="`endCursor` of the previous page, same sort."),
        ] = None,
    ) -> ItemConnection:
        page = parse_page(info, sort, first, after)
        filters = filters_of(filter)
        async with feed.snapshot_read(page.who.tenant_id) as head:
            rows, has_next = await inbox_repo.inbox_page(
                page.who,
                filters,
                page.order,
                after=page.keyset,
                limit=page.size,
                now=page.now,
                scope=scope,
            )
        nodes = await nodes_of_rows(info, rows)
        edges = [
            ItemEdge(
                cursor=encode_page_cursor(page.order, row["sort_key"], row["id"]),
                node=node,
                due_at=row["inbox_due"],
                overdue=row["inbox_overdue"],
            )
            for row, node in zip(rows, nodes, strict=True)
        ]
        return ItemConnection(
            edges=edges,
            page_info=page.info([e.cursor for e in edges], has_next),
            event_cursor=encode_cursor(page.who.tenant_id, head),
            counts=page.counts(filters, services_of(info).settings.inbox_count_limit, scope),
        )
