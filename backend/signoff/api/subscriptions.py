"""Live subscriptions (graphql-transport-ws): an item's events and the caller's inbox changes.

Each pushed event carries its cursor (the tenant's audit sequence number, opaque). Subscribing
with `after` first replays every event after that cursor, in order, then continues live; see
`docs/realtime.md`. Every event is authorised when it is pushed, against the current state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids, inbox_fanout
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError
from signoff.api.event_cursors import decode_cursor, encode_cursor
from signoff.api.live_types import (
    BatchState,
    InboxChange,
    InboxChangedMessage,
    ItemEvent,
    ItemEventsMessage,
    ResyncRequired,
    resync_marker,
)
from signoff.api.push import Handover
from signoff.db import feed
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError
from signoff.realtime.hub import RealtimeHub, Resync
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
        async for batch in hub.batches(actor.tenant_id, start):
            if isinstance(batch, Resync):
                yield resync_marker(actor.tenant_id, batch.seq)
                return
            events = [e for e in batch if e["item_id"] == raw_id]
            if not events:
                continue
            state = await BatchState.of(batch, actor.tenant_id, services)
            # Authorised per batch, against the item as it is now.
            if not state.readable(actor, raw_id):
                return
            # The payload copies in event data are redacted for this subscriber like the
            # item's payload; the shared event is used as is when nothing is hidden from them.
            redactor = await state.redactor(actor, raw_id)
            for event in events:
                shared = await state.item_event(event)
                if redactor.hidden:
                    data = redactor.event_data(cast(dict[str, Any], shared.data))
                    shared = dataclasses.replace(shared, data=JSON(data))
                yield shared

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
        # `api/inbox_fanout.py`.
        yield cast(
            InboxChangedMessage,
            Handover(lambda target: inbox_fanout.serve(hub, services, actor, start, target)),
        )
