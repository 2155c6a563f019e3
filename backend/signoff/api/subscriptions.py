"""Live subscriptions (graphql-transport-ws): an item's events and the caller's inbox changes.

Each pushed event carries its cursor (the tenant's audit sequence number, opaque). Subscribing
with `after` first replays every event after that cursor, in order, then continues live; see
`docs/realtime.md`. Every event is authorised when it is pushed, against the current state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from typing import Annotated, Any, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids, live_fanout
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError
from signoff.api.event_cursors import decode_cursor, encode_cursor
from signoff.api.live_fanout import InboxStream, LiveStream, PushKey
from signoff.api.live_types import (
    BatchState,
    InboxChange,
    InboxChangedMessage,
    ItemEvent,
    ItemEventsMessage,
    ResyncRequired,
)
from signoff.api.push import Handover, PushTarget
from signoff.db import feed
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError
from signoff.realtime.hub import FeedBatch, RealtimeHub
from signoff.services import items as item_services

__all__ = [
    "InboxChange",
    "ItemEvent",
    "ResyncRequired",
    "Subscription",
    "encode_cursor",
]

_AFTER = (
    "The `cursor` of the last event received: replay everything after it first. Omitted: "
    "only events committed from now on."
)


def _hub(info: Info[SignoffContext, Any]) -> RealtimeHub:
    hub = info.context.realtime
    if hub is None:
        raise RuntimeError("the realtime hub is not running in this process")
    return hub


async def _start_cursor(actor: Actor, after: str | None) -> int:
    if after is None:
        return await feed.tenant_head(actor.tenant_id)
    try:
        return decode_cursor(after, actor.tenant_id)
    except DomainError as exc:
        raise CodedError(exc) from None


class ItemEventsStream(LiveStream):
    """One `itemEvents` subscription: the events of one item, while the caller may read it."""

    __slots__ = ("item_id",)

    def __init__(
        self, actor: Actor, item_id: UUID, start: int, target: PushTarget, limit: int
    ) -> None:
        super().__init__(actor, start, target, limit)
        self.item_id = item_id

    def changes(self, batch: FeedBatch, state: BatchState) -> list[PushKey]:
        item_id = self.item_id
        events = [e for e in batch if e["seq"] > self.cursor and e["item_id"] == item_id]
        self.cursor = max(self.cursor, batch[-1]["seq"])
        if not events:
            return []
        principal = self.actor.principal
        # Authorised per batch, against the item as it is now.
        if not state.readable_by(principal, item_id):
            self.finished = True
            return []
        hidden = state.hidden(principal, item_id)
        return [(e["seq"], "itemEvent", hidden) for e in events]

    async def build(self, state: BatchState, event: dict[str, Any], key: PushKey) -> object:
        shared = await state.item_event(event)
        if not key[2]:
            return shared
        # The payload copies in event data are redacted like the item's payload (what is
        # hidden depends on the caller's roles only: the same for every stream of this key).
        redactor = await state.redactor(self.actor, self.item_id)
        data = redactor.event_data(cast(dict[str, Any], shared.data))
        return dataclasses.replace(shared, data=JSON(data))


@strawberry.type(description="Live updates over graphql-transport-ws. Resume with `after`.")
class Subscription:
    @strawberry.subscription(
        description="Every event of one item the caller may read: first those after `after` "
        "(when given), in order, then live ones. Ends when the caller may no longer read it, "
        "or with `ResyncRequired` when the caller fell too far behind."
    )
    async def item_events(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[ItemEventsMessage, None]:
        actor = actor_of(info)
        services = services_of(info)
        hub = _hub(info)
        try:
            raw_id = ids.decode_uuid(item_id, "WorkflowItem", "itemId")
            await item_services.get_item(actor, services, raw_id)
        except DomainError as exc:
            raise CodedError(exc) from None
        start = await _start_cursor(actor, after)
        # Served from here on by the tenant's fan-out (`api/live_fanout.py`).
        limit = hub.max_queued_events
        yield cast(
            ItemEventsMessage,
            Handover(
                lambda target: live_fanout.serve(
                    hub, services, ItemEventsStream(actor, raw_id, start, target, limit)
                )
            ),
        )

    @strawberry.subscription(
        description="Items entering, changing in and leaving the caller's inbox, with the "
        "reason: first the changes after `after` (when given), in order, then live ones. Ends "
        "with `ResyncRequired` when the caller fell too far behind."
    )
    async def inbox_changed(
        self,
        info: Info[SignoffContext, Any],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[InboxChangedMessage, None]:
        actor = actor_of(info)
        services = services_of(info)
        hub = _hub(info)
        start = await _start_cursor(actor, after)
        # Served from here on by the tenant's fan-out, not per event by strawberry: see
        # `api/live_fanout.py`.
        limit = hub.max_queued_events
        yield cast(
            InboxChangedMessage,
            Handover(
                lambda target: live_fanout.serve(
                    hub, services, InboxStream(actor, start, target, limit)
                )
            ),
        )
