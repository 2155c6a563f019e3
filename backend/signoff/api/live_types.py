"""What the live subscriptions push, and the rows a batch of events touches, read once.

`ItemEvent`, `InboxChange` and `ResyncRequired` are the pushed types; `BatchState` reads the
items, steps, decisions, template versions and redaction rules one batch of events touches
once for every subscriber of the process (a constant number of statements per batch), and
builds the pushed objects once for every subscriber who sees the same thing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from signoff.api import ids
from signoff.api.enums import described_enum
from signoff.api.event_cursors import encode_cursor
from signoff.api.loaders import Loaders, definition_for, definitions_for, make_loaders
from signoff.api.types import WorkflowItem
from signoff.db.inbox import ClaimState
from signoff.domain.actors import Actor, Principal
from signoff.domain.permissions import Grants, can_read_item
from signoff.domain.records import Decision, Item, Step, StepAssignees
from signoff.domain.redaction import RedactionRule, Redactor, redactor_for
from signoff.domain.template_model import TemplateDefinition
from signoff.realtime.changes import ChangeKind, ChangeReason, inbox_change, seats_taken
from signoff.realtime.changes import InboxChange as ChangeOfInbox
from signoff.realtime.hub import FeedBatch
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
    claim: ClaimState | None = strawberry.field(
        description="Claim state of the caller's steps of the item now, as the inbox's "
        "`InboxEdge.claim` gives it; null when the item left the inbox."
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


def resync_marker(tenant_id: str, seq: int) -> ResyncRequired:
    return ResyncRequired(cursor=encode_cursor(tenant_id, seq), seq=seq)


Hidden = tuple[tuple[str, ...], ...]
"""The payload paths a redactor hides (`Redactor.hidden`)."""

Judgement = tuple[ChangeOfInbox, bool, Hidden]
"""How an event changed a caller's inbox, whether they may read the item, what is hidden."""


def judgement_class(principal: Principal) -> tuple[Any, ...]:
    """What the rules of a judgement read of a principal besides their user id (which they
    read only where an event's item names it: `BatchState.judge`)."""
    return (
        principal.tenant_id,
        principal.roles,
        principal.groups,
        principal.environment,
        principal.operator,
    )


class BatchState:
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
        self.definitions: dict[UUID, TemplateDefinition] = {}
        self.rules: list[RedactionRule] = []
        self._hidden: dict[tuple[str, frozenset[str]], Hidden] = {}
        self._named: dict[int, frozenset[str]] = {}
        self._judged: dict[tuple[Any, ...], Judgement | None] = {}

    @classmethod
    async def of(cls, batch: FeedBatch, tenant_id: str, services: ServiceContext) -> BatchState:
        """The batch's state, loaded by its first reader and shared with the others."""

        async def load() -> BatchState:
            state = cls(batch, make_loaders(tenant_id, services, cache=True), services)
            with scopes.for_tenant(tenant_id):
                state.grants = await permissions.grants_of(tenant_id, services)
            await state.load(list(dict.fromkeys(e["item_id"] for e in batch if e["item_id"])))
            return state

        return await batch.shared(BatchState, load)

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
        return self.readable_by(actor.principal, item_id)

    def readable_by(self, principal: Principal, item_id: UUID) -> bool:
        """Whether `principal` may read the item now (the rule of `services.items.get_item`)."""
        item = self.items.get(item_id)
        if item is None:
            return False
        return can_read_item(
            principal,
            tenant_id=item.tenant_id,
            requester_id=item.requester_id,
            step_assignees=[s.assignees for s in self.steps[item_id]],
            participants=[d.actor_id for d in self.decisions[item_id]],
            grants=self.grants,
        )

    def judge(self, event: dict[str, Any], principal: Principal) -> Judgement | None:
        """How `event` changes `principal`'s inbox (None: it does not), whether they may read
        the item and what of its payload is hidden from them (after `prepare_redaction`).

        The rules (`inbox_change`, `seats_taken`, `can_read_item`, `hidden`) look at a user id
        only where the item or the event names it (assignees, delegates, the requester, who
        decided, the assignees before a reassignment); grants name roles only. So principals
        the event's item does not name by user id, with the same roles, groups and tenant, are
        judged alike: judged once per event for all of them."""
        seq = event["seq"]
        who = principal.user_id if principal.user_id in self.named(event) else None
        key = (seq, who, *judgement_class(principal))
        if key in self._judged:
            return self._judged[key]
        judged = self._judged[key] = self._judge(event, principal)
        return judged

    def named(self, event: dict[str, Any]) -> frozenset[str]:
        """The user ids the event's item, the event and its decisions name: the principals
        whose judgement of the event is their own (`judge`)."""
        seq = event["seq"]
        named = self._named.get(seq)
        if named is None:
            named = self._named[seq] = self._users_named(event)
        return named

    def _judge(self, event: dict[str, Any], principal: Principal) -> Judgement | None:
        item_id = event["item_id"]
        voted = seats_taken(principal, self.items[item_id], self.decisions[item_id])
        change = inbox_change(event, principal, self.steps[item_id], voted)
        if change is None:
            return None
        readable = self.readable_by(principal, item_id)
        return change, readable, self.hidden(principal, item_id) if readable else ()

    def _users_named(self, event: dict[str, Any]) -> frozenset[str]:
        item_id = event["item_id"]
        names = {self.items[item_id].requester_id}
        assignees = [s.assignees for s in self.steps[item_id]]
        before = (event.get("data") or {}).get("before")
        if isinstance(before, Mapping):
            assignees.append(StepAssignees.from_dict(before))
        # a claim is mine or others' by user id
        names.update(s.claimed_by for s in self.steps[item_id] if s.claimed_by)
        for a in assignees:
            names.update(a.users)
            names.update(a.delegates)
            names.update(a.delegates.values())
        names.update(d.actor_id for d in self.decisions[item_id])
        names.update(d.acting_for for d in self.decisions[item_id] if d.acting_for)
        return frozenset(names)

    async def prepare_redaction(self) -> None:
        """Read the touched items' template versions and the tenant's redaction rules (once
        per batch), so that `hidden` answers without I/O."""

        async def load() -> None:
            items = list(self.items.values())
            if not items:
                return
            definitions = await definitions_for(self.loaders, self.services, items)
            self.definitions = {i.id: d for i, d in zip(items, definitions, strict=True)}
            self.rules = await self.batch.shared(("redaction_rules",), self._rules)

        await self.batch.shared(("redaction",), load)

    async def _rules(self) -> list[RedactionRule]:
        tenant_id = next(iter(self.items.values())).tenant_id
        return await redaction_services.rules_of(tenant_id)

    def hidden(self, principal: Principal, item_id: UUID) -> Hidden:
        """The payload paths `principal` may not see of the item (after `prepare_redaction`);
        the same for every principal with the same roles."""
        key = (self.definitions[item_id].key, principal.roles)
        hidden = self._hidden.get(key)
        if hidden is None:
            hidden = self._hidden[key] = redactor_for(self.rules, key[0], principal).hidden
        return hidden

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

        definition = await definition_for(self.loaders, self.services, self.items[item_id])
        loaded = await self.batch.shared(("redaction_rules",), self._rules)
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
        claim: ClaimState | None,
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
                claim=claim,
            )

        key = ("inbox", event["seq"], kind, reason, claim, readable, hidden)
        return await self.batch.shared(key, build)
