"""`items`: the caller's own requests and their decision history, as connections with the
inbox's filters, sort, cursors and facets, read from the same entries as the inbox; and
`itemsChanged(scope:, after:)`, their live companion as `inboxChanged` is the inbox's: load a
page, then subscribe with `after: eventCursor` (docs/realtime.md). It is built on the same
per-tenant feed and the same per-batch rows as the other subscriptions
(`api/live_types.py`), so it adds no statement per subscriber."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.types import Info

from signoff.api import ids, live_fanout
from signoff.api.context import SignoffContext, actor_of, services_of
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
from signoff.api.live_fanout import LiveStream, PushKey
from signoff.api.live_types import BatchState, Hidden, ResyncRequired
from signoff.api.paging import After, Before, First, Last
from signoff.api.push import Handover, PushTarget
from signoff.api.subscriptions import _AFTER, _hub, _start_cursor
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.db.inbox import ItemScope
from signoff.domain.actors import Actor
from signoff.realtime.changes import ItemListChangeKind, item_list_change
from signoff.realtime.hub import FeedBatch

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


ItemListChangeKindEnum = described_enum(
    ItemListChangeKind,
    "What happened to an item in one of the caller's lists of items (`items(scope:)`); items "
    "never leave these lists.",
    {
        ItemListChangeKind.ENTERED: "The item is now in the list (submitted; decided on by the "
        "caller).",
        ItemListChangeKind.UPDATED: "An item in the list changed.",
    },
)


@strawberry.type(description="An item entered or changed in one of the caller's lists of items.")
class ItemListChange:
    cursor: str = strawberry.field(
        description="Opaque position in the tenant's event feed; resume with `after: cursor`."
    )
    seq: int = strawberry.field(description="The tenant's audit sequence number of the event.")
    kind: ItemListChangeKind = strawberry.field(description="Entered the list, or changed in it.")
    action: str = strawberry.field(description="The audit action behind the change.")
    actor_id: str = strawberry.field(description="Who made the change.")
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    item: WorkflowItem | None = strawberry.field(
        description="The item as it is now; null when the caller may no longer read it."
    )


ItemsChangedMessage = Annotated[
    ItemListChange | ResyncRequired,
    strawberry.union(
        "ItemsChangedMessage",
        description="A change in a list of items, or the marker that the subscriber must "
        "resubscribe.",
    ),
]


def _builder(
    state: BatchState,
    event: dict[str, Any],
    kind: ItemListChangeKind,
    readable: bool,
    hidden: Hidden,
) -> Callable[[], Awaitable[ItemListChange]]:
    """How to build the pushed object of one event, once per batch for every subscriber who
    sees the same thing."""

    async def build() -> ItemListChange:
        return ItemListChange(
            cursor=encode_cursor(event["tenant_id"], event["seq"]),
            seq=event["seq"],
            kind=kind,
            action=event["action"],
            actor_id=event["actor_id"],
            item_id=strawberry.ID(ids.encode("WorkflowItem", event["item_id"])),
            occurred_at=event["occurred_at"],
            item=await state.item(event["item_id"], hidden) if readable else None,
        )

    return build


class ItemListStream(LiveStream):
    """One `itemsChanged(scope:)` subscription."""

    __slots__ = ("scope",)

    def __init__(
        self, actor: Actor, scope: ItemScope, start: int, target: PushTarget, limit: int
    ) -> None:
        super().__init__(actor, start, target, limit)
        self.scope = scope

    def changes(self, batch: FeedBatch, state: BatchState) -> list[PushKey]:
        principal = self.actor.principal
        out: list[PushKey] = []
        for event in batch:
            seq = event["seq"]
            item_id = event["item_id"]
            if seq <= self.cursor or item_id not in state.items:
                continue
            kind = item_list_change(
                event, self.scope, principal, state.items[item_id], state.decisions[item_id]
            )
            if kind is None:
                continue
            readable = state.readable_by(principal, item_id)
            hidden = state.hidden(principal, item_id) if readable else ()
            out.append((seq, kind, readable, hidden))
        self.cursor = max(self.cursor, batch[-1]["seq"])
        return out

    async def build(self, state: BatchState, event: dict[str, Any], key: PushKey) -> object:
        _, kind, readable, hidden = key
        return await _builder(state, event, kind, readable, hidden)()


@strawberry.type
class ItemListSubscription:
    """The live companion of `items` (a base of `Subscription`)."""

    @strawberry.subscription(
        description="Items entering and changing in one of the caller's lists (`items(scope:)`: "
        "what they requested, what they decided on): first the changes after `after` (when "
        "given), in order, then live ones. Ends with `ResyncRequired` when the caller fell too "
        "far behind."
    )
    async def items_changed(
        self,
        info: Info[SignoffContext, Any],
        scope: Annotated[ItemScope, strawberry.argument(description="Which list.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[ItemsChangedMessage, None]:
        actor = actor_of(info)
        services = services_of(info)
        hub = _hub(info)
        start = await _start_cursor(actor, after)
        # Served from here on by the tenant's fan-out (`api/live_fanout.py`).
        limit = hub.max_queued_events
        yield cast(
            ItemsChangedMessage,
            Handover(
                lambda target: live_fanout.serve(
                    hub, services, ItemListStream(actor, scope, start, target, limit)
                )
            ),
        )
