"""`items`: the caller's own requests and their decision history, as connections with the
inbox's filters, sort, cursors and facets, read from the same entries as the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, services_of
from signoff.api.enums import described_enum
from signoff.api.event_cursors import encode_cursor
from signoff.api.inbox import (
    CountedItemPage,
    InboxSort,
    ItemFacets,
    ItemFilter,
    encode_page_cursor,
    filters_of,
    nodes_of_rows,
    parse_page,
)
from signoff.api.paging import After, Before, First, Last
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.db.inbox import ItemScope

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


@strawberry.type(description="A page of the caller's items in one scope.")
class ItemConnection(CountedItemPage):
    edges: list[ItemEdge] = strawberry.field(description="The entries of this page.")

    @strawberry.field(description="The items of this page without their cursors.")
    def nodes(self) -> list[WorkflowItem]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="Counts per filter value, for the badges of a filter bar.")
    async def facets(self) -> ItemFacets:
        return ItemFacets(**ItemFacets.counted((await self.counts.get()).facets))


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
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> ItemConnection:
        page = parse_page(info, sort, first, after, last, before)
        filters = filters_of(filter)
        async with feed.snapshot_read(page.who.tenant_id) as head:
            rows, more = await page.rows(filters, scope)
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
            page_info=page.info([e.cursor for e in edges], more),
            event_cursor=encode_cursor(page.who.tenant_id, head),
            counts=page.counts(filters, services_of(info).settings.inbox_count_limit, scope),
        )
