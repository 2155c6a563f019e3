"""Live subscriptions (graphql-transport-ws): an item's events and the caller's inbox changes.

Each pushed event carries its cursor (the tenant's audit sequence number, opaque). Subscribing
with `after` first replays every event after that cursor, in order, then continues live; see
`docs/realtime.md`. Every event is authorised when it is pushed, against the current state.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Annotated, Any, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError
from signoff.api.event_cursors import decode_cursor, encode_cursor
from signoff.api.loaders import Loaders, definition_for, make_loaders
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError
from signoff.domain.permissions import Grants, can_read_item
from signoff.domain.records import Decision, Item, Step
from signoff.domain.redaction import RedactionRule, Redactor, redactor_for
from signoff.realtime.changes import ChangeKind, ChangeReason, inbox_change, seats_taken
from signoff.realtime.hub import FeedBatch, RealtimeHub, Resync
from signoff.services import items as item_services
from signoff.services import permissions, scopes
from signoff.services import redaction as redaction_services
from signoff.services.context import ServiceContext

InboxChangeKindEnum = described_enum(
    ChangeKind,
    "What happened to an item's place in the caller's inbox.",
    {
        ChangeKind.ENTERED: "The item is now in the inbox (a step was assigned to the caller).",
        ChangeKind.UPDATED: "The item is still in the inbox and changed.",
        ChangeKind.LEFT: "The item is no longer in the inbox.",
    },
    name="InboxChangeKind",
)
InboxChangeReasonEnum = described_enum(
    ChangeReason,
    "Why an inbox changed, derived from the event's action.",
    {
        ChangeReason.ASSIGNED: "A step naming the caller opened (submitted or resubmitted).",
        ChangeReason.CLAIMED: "A step was claimed.",
        ChangeReason.UNCLAIMED: "A claim was released.",
        ChangeReason.DECIDED: "Someone voted, approved, rejected, requested changes or overrode.",
        ChangeReason.ESCALATED: "A step was escalated (assignees added, priority raised).",
        ChangeReason.REASSIGNED: "A step's assignees were replaced.",
        ChangeReason.DELEGATED: "A seat on a step was delegated.",
        ChangeReason.MODIFIED: "A step's parameters were modified.",
        ChangeReason.DUE_SOON: "A reminder or deadline warning.",
        ChangeReason.COMMENTED: "A comment was added.",
        ChangeReason.CANCELLED: "The step or item was cancelled.",
        ChangeReason.EXPIRED: "The step or item expired.",
        ChangeReason.UPDATED: "Any other change.",
    },
    name="InboxChangeReason",
)

_AFTER = (
    "The `cursor` of the last event received: replay everything after it first. Omitted: "
    "only events committed from now on."
)
_REMEMBERED_ITEMS = 32
"""How many of its most recent items an `inboxChanged` stream remembers the last kind of (to
send one LEFT per transaction, and UPDATED for an item it reported as in the inbox): what a
socket holds must not grow with the inbox. Measured with tracemalloc (50 sockets, 150 items
each): 11.6 KiB per socket with the former bound of 10,000, growing ~80 bytes per item, and
4.3 KiB with 32."""


@strawberry.type(description="One committed event of an item, as pushed to its subscribers.")
class ItemEvent:
    cursor: str = strawberry.field(
        description="Opaque position in the tenant's event feed; resume with `after: cursor`."
    )
    seq: int = strawberry.field(description="The tenant's audit sequence number of the event.")
    action: str = strawberry.field(description="What happened, e.g. `step.approve`.")
    actor_id: str = strawberry.field(description="Who did it (`system` for timers, policies).")
    acting_for: str | None = strawberry.field(description="Whom a delegate acted for.")
    reason: str | None = strawberry.field(description="The reason given.")
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    step_id: strawberry.ID | None = strawberry.field(description="Global id of the step, if any.")
    data: JSON = strawberry.field(description="Details of the change.")
    occurred_at: datetime = strawberry.field(description="When it happened.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ItemEvent:
        """Map an audit row."""
        step = row["step_id"]
        return cls(
            cursor=encode_cursor(row["tenant_id"], row["seq"]),
            seq=row["seq"],
            action=row["action"],
            actor_id=row["actor_id"],
            acting_for=row["acting_for"],
            reason=row["reason"],
            item_id=strawberry.ID(ids.encode("WorkflowItem", row["item_id"])),
            step_id=strawberry.ID(ids.encode("Step", step)) if step else None,
            data=row["data"],
            occurred_at=row["occurred_at"],
        )


@strawberry.type(description="An item entered, changed in, or left the caller's inbox.")
class InboxChange:
    cursor: str = strawberry.field(
        description="Opaque position in the tenant's event feed; resume with `after: cursor`."
    )
    seq: int = strawberry.field(description="The tenant's audit sequence number of the event.")
    kind: ChangeKind = strawberry.field(description="Entered, updated in, or left the inbox.")
    reason: ChangeReason = strawberry.field(description="Why, derived from the event's action.")
    action: str = strawberry.field(description="The audit action behind the change.")
    actor_id: str = strawberry.field(description="Who made the change.")
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    step_id: strawberry.ID | None = strawberry.field(description="Global id of the step, if any.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    item: WorkflowItem | None = strawberry.field(
        description="The item as it is now; null when the caller may no longer read it."
    )


@strawberry.type(
    description="The subscriber fell too far behind and its queued events were dropped: "
    "nothing after `cursor` was sent. The subscription ends with this message; subscribe again "
    "with `after: cursor` to receive the rest, in order, from the stored feed."
)
class ResyncRequired:
    cursor: str = strawberry.field(
        description="The position of the last event delivered (or the starting point)."
    )
    seq: int = strawberry.field(description="The tenant's audit sequence number of `cursor`.")


InboxChangedMessage = Annotated[
    InboxChange | ResyncRequired,
    strawberry.union(
        "InboxChangedMessage",
        description="An inbox change, or the marker that the subscriber must resubscribe.",
    ),
]
ItemEventsMessage = Annotated[
    ItemEvent | ResyncRequired,
    strawberry.union(
        "ItemEventsMessage",
        description="An item's event, or the marker that the subscriber must resubscribe.",
    ),
]


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


def _resync(tenant_id: str, seq: int) -> ResyncRequired:
    return ResyncRequired(cursor=encode_cursor(tenant_id, seq), seq=seq)


Hidden = tuple[tuple[str, ...], ...]
"""The payload paths a redactor hides (`Redactor.hidden`)."""


class _BatchState:
    """The current rows of the items one batch of events touches, read once per batch for
    every subscriber of the process that is given the batch (a constant number of statements
    per batch, whatever its size and however many subscribe), and the objects pushed from it,
    built once and shared by every subscriber who sees the same thing."""

    def __init__(self, batch: FeedBatch, loaders: Loaders, services: ServiceContext) -> None:
        self.batch = batch
        self.loaders = loaders
        self.services = services
        self.items: dict[UUID, Item] = {}
        self.steps: dict[UUID, list[Step]] = {}
        self.decisions: dict[UUID, list[Decision]] = {}
        self.grants = Grants()

    @classmethod
    async def of(cls, batch: FeedBatch, tenant_id: str, services: ServiceContext) -> _BatchState:
        """The batch's state, loaded by its first reader and shared with the others."""

        async def load() -> _BatchState:
            state = cls(batch, make_loaders(tenant_id, services, cache=True), services)
            with scopes.for_tenant(tenant_id):
                state.grants = await permissions.grants_of(tenant_id, services)
            await state.load(list(dict.fromkeys(e["item_id"] for e in batch if e["item_id"])))
            return state

        return await batch.shared(_BatchState, load)

    async def load(self, item_ids: Sequence[UUID]) -> None:
        if not item_ids:
            return
        ids_ = list(item_ids)
        # Outside any transaction (a stream holds none): three statements on three pooled
        # connections at once, one round trip of latency instead of three.
        rows, steps, decisions = await asyncio.gather(
            self.loaders.items.load_many(ids_),
            self.loaders.steps_by_item.load_many(ids_),
            self.loaders.decisions_by_item.load_many(ids_),
        )
        for item_id, row, item_steps, item_decisions in zip(
            ids_, rows, steps, decisions, strict=True
        ):
            if row is not None:
                self.items[item_id] = row
                self.steps[item_id] = item_steps
                self.decisions[item_id] = item_decisions

    def readable(self, actor: Actor, item_id: UUID) -> bool:
        """Whether the actor may read the item now (the rule of `services.items.get_item`)."""
        item = self.items.get(item_id)
        if item is None:
            return False
        return can_read_item(
            actor.principal,
            tenant_id=item.tenant_id,
            requester_id=item.requester_id,
            step_assignees=[s.assignees for s in self.steps[item_id]],
            participants=[d.actor_id for d in self.decisions[item_id]],
            grants=self.grants,
        )

    async def item(self, item_id: UUID, hidden: Hidden = ()) -> WorkflowItem:
        async def build() -> WorkflowItem:
            row = self.items[item_id]
            definition = await definition_for(self.loaders, self.services, row)
            return WorkflowItem.from_parts(row, self.steps[item_id], definition)

        # One object per set of hidden payload fields: a shared result is only ever shared by
        # subscribers who see the same payload.
        return await self.batch.shared(("item", item_id, hidden), build)

    async def redactor(self, actor: Actor, item_id: UUID) -> Redactor:
        """What `actor` may not see of the item's payload (the tenant's rules read once per
        batch for every subscriber)."""

        async def rules() -> list[RedactionRule]:
            return await redaction_services.rules_of(self.items[item_id].tenant_id)

        definition = await definition_for(self.loaders, self.services, self.items[item_id])
        loaded = await self.batch.shared(("redaction_rules",), rules)
        return redactor_for(loaded, definition.key, actor.principal)

    async def item_event(self, event: dict[str, Any]) -> ItemEvent:
        async def build() -> ItemEvent:
            return ItemEvent.from_row(event)

        return await self.batch.shared(("event", event["seq"]), build)

    async def inbox_change(
        self,
        event: dict[str, Any],
        kind: ChangeKind,
        reason: ChangeReason,
        readable: bool,
        hidden: Hidden = (),
    ) -> InboxChange:
        async def build() -> InboxChange:
            item_id = event["item_id"]
            step = event["step_id"]
            return InboxChange(
                cursor=encode_cursor(event["tenant_id"], event["seq"]),
                seq=event["seq"],
                kind=kind,
                reason=reason,
                action=event["action"],
                actor_id=event["actor_id"],
                item_id=strawberry.ID(ids.encode("WorkflowItem", item_id)),
                step_id=strawberry.ID(ids.encode("Step", step)) if step else None,
                occurred_at=event["occurred_at"],
                item=await self.item(item_id, hidden) if readable else None,
            )

        key = ("inbox", event["seq"], kind, reason, readable, hidden)
        return await self.batch.shared(key, build)


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
                yield _resync(actor.tenant_id, batch.seq)
                return
            events = [e for e in batch if e["item_id"] == raw_id]
            if not events:
                continue
            state = await _BatchState.of(batch, actor.tenant_id, services)
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
        last: OrderedDict[UUID, ChangeKind] = OrderedDict()
        async for batch in hub.batches(actor.tenant_id, start):
            if isinstance(batch, Resync):
                yield _resync(actor.tenant_id, batch.seq)
                return
            if not any(e["item_id"] for e in batch):
                continue
            state = await _BatchState.of(batch, actor.tenant_id, services)
            changes = []
            for event in batch:
                item_id = event["item_id"]
                if item_id not in state.items:
                    continue
                voted = seats_taken(actor.principal, state.items[item_id], state.decisions[item_id])
                change = inbox_change(event, actor.principal, state.steps[item_id], voted)
                if change is None:
                    continue
                kind = change.kind
                previous = last.get(item_id)
                if kind == ChangeKind.LEFT and previous == ChangeKind.LEFT:
                    continue  # one transaction can end a step, then the item: one LEFT
                if kind == ChangeKind.ENTERED and previous in (
                    ChangeKind.ENTERED,
                    ChangeKind.UPDATED,
                ):
                    kind = ChangeKind.UPDATED
                last[item_id] = kind
                last.move_to_end(item_id)
                if len(last) > _REMEMBERED_ITEMS:
                    last.popitem(last=False)
                changes.append((event, kind, change.reason))
            for event, kind, reason in changes:
                readable = state.readable(actor, event["item_id"])
                hidden = (await state.redactor(actor, event["item_id"])).hidden if readable else ()
                yield await state.inbox_change(event, kind, reason, readable, hidden)
