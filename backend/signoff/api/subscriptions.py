"""Live subscriptions (graphql-transport-ws): an item's events and the caller's inbox changes.

Each pushed event carries its cursor (the tenant's audit sequence number, opaque). Subscribing
with `after` first replays every event after that cursor, in order, then continues live; see
`docs/realtime.md`. Every event is authorised when it is pushed, against the current state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError
from signoff.api.loaders import Loaders, definition_for, make_loaders
from signoff.api.types import WorkflowItem
from signoff.db import feed
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.permissions import can_read_item
from signoff.domain.records import Decision, Item, Step
from signoff.realtime.changes import ChangeKind, ChangeReason, inbox_change, seats_taken
from signoff.realtime.hub import RealtimeHub
from signoff.services import items as item_services
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

_CURSOR_TYPE = "Event"
_AFTER = (
    "The `cursor` of the last event received: replay everything after it first. Omitted: "
    "only events committed from now on."
)
_REMEMBERED_ITEMS = 10_000


def encode_cursor(tenant_id: str, seq: int) -> str:
    """The opaque cursor of event `seq` of `tenant_id`."""
    return ids.encode(_CURSOR_TYPE, f"{tenant_id}:{seq}")


def decode_cursor(cursor: str, tenant_id: str) -> int:
    """The sequence number inside a cursor of `tenant_id`; INVALID_INPUT otherwise (a cursor
    of another tenant is refused, not silently reinterpreted)."""
    bad = DomainError(ErrorCode.INVALID_INPUT, "not a valid event cursor", "after")
    try:
        type_name, raw = ids.decode(cursor, "after")
    except DomainError:
        raise bad from None
    tenant, _, seq = raw.rpartition(":")
    if type_name != _CURSOR_TYPE or tenant != tenant_id or not seq.isdigit():
        raise bad
    return int(seq)


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


async def _readable(actor: Actor, services: ServiceContext, item_id: UUID) -> bool:
    try:
        await item_services.get_item(actor, services, item_id)
    except DomainError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return False
        raise
    return True


class _InboxBatch:
    """The current rows of the items one batch of events touches (a constant number of
    statements per batch, whatever its size)."""

    def __init__(self, loaders: Loaders, services: ServiceContext) -> None:
        self.loaders = loaders
        self.services = services
        self.items: dict[UUID, Item] = {}
        self.steps: dict[UUID, list[Step]] = {}
        self.decisions: dict[UUID, list[Decision]] = {}

    async def load(self, item_ids: Sequence[UUID]) -> None:
        ids_ = list(item_ids)
        rows = await self.loaders.items.load_many(ids_)
        steps = await self.loaders.steps_by_item.load_many(ids_)
        decisions = await self.loaders.decisions_by_item.load_many(ids_)
        for item_id, row, item_steps, item_decisions in zip(
            ids_, rows, steps, decisions, strict=True
        ):
            if row is not None:
                self.items[item_id] = row
                self.steps[item_id] = item_steps
                self.decisions[item_id] = item_decisions

    def readers(self, actor: Actor, item_ids: Sequence[UUID]) -> set[UUID]:
        """The items among `item_ids` the actor may read now."""
        readable = set()
        for item_id in item_ids:
            item = self.items[item_id]
            decisions = self.decisions[item_id]
            if can_read_item(
                actor.principal,
                tenant_id=item.tenant_id,
                requester_id=item.requester_id,
                step_assignees=[s.assignees for s in self.steps[item_id]],
                participants=[d.actor_id for d in decisions],
                admin_roles=self.services.settings.admin_roles,
            ):
                readable.add(item_id)
        return readable

    async def item(self, item_id: UUID) -> WorkflowItem:
        row = self.items[item_id]
        definition = await definition_for(self.loaders, self.services, row)
        return WorkflowItem.from_parts(row, self.steps[item_id], definition)


@strawberry.type(description="Live updates over graphql-transport-ws. Resume with `after`.")
class Subscription:
    @strawberry.subscription(
        description="Every event of one item the caller may read: first those after `after` "
        "(when given), in order, then live ones. Ends when the caller may no longer read it."
    )
    async def item_events(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[ItemEvent, None]:
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
            events = [e for e in batch if e["item_id"] == raw_id]
            if not events:
                continue
            # Authorised per batch, against the item as it is now.
            if not await _readable(actor, services, raw_id):
                return
            for event in events:
                yield ItemEvent.from_row(event)

    @strawberry.subscription(
        description="Items entering, changing in and leaving the caller's inbox, with the "
        "reason: first the changes after `after` (when given), in order, then live ones."
    )
    async def inbox_changed(
        self,
        info: Info[SignoffContext, Any],
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[InboxChange, None]:
        actor = actor_of(info)
        services = services_of(info)
        hub = _hub(info)
        start = await _start_cursor(actor, after)
        loaders = make_loaders(actor.tenant_id, services, cache=False)
        last: OrderedDict[UUID, ChangeKind] = OrderedDict()
        async for batch in hub.batches(actor.tenant_id, start):
            item_ids = list(dict.fromkeys(e["item_id"] for e in batch if e["item_id"]))
            if not item_ids:
                continue
            state = _InboxBatch(loaders, services)
            await state.load(item_ids)
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
            if not changes:
                continue
            readable = state.readers(actor, list({e["item_id"] for e, _, _ in changes}))
            for event, kind, reason in changes:
                item_id = event["item_id"]
                step = event["step_id"]
                yield InboxChange(
                    cursor=encode_cursor(event["tenant_id"], event["seq"]),
                    seq=event["seq"],
                    kind=kind,
                    reason=reason,
                    action=event["action"],
                    actor_id=event["actor_id"],
                    item_id=strawberry.ID(ids.encode("WorkflowItem", item_id)),
                    step_id=strawberry.ID(ids.encode("Step", step)) if step else None,
                    occurred_at=event["occurred_at"],
                    item=await state.item(item_id) if item_id in readable else None,
                )
