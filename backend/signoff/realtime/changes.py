"""How an audit event changes one reviewer's inbox (entered, updated or left, and why), and a
person's lists of requests and history.

Pure rules over an event and the item's current steps; no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.db.inbox import ClaimState, ItemScope
from signoff.domain.actors import Principal
from signoff.domain.permissions import assignees_match
from signoff.domain.records import Decision, Item, Step
from signoff.domain.states import StepState


class ChangeKind(StrEnum):
    """What happened to the item's place in the inbox."""

    ENTERED = "entered"
    UPDATED = "updated"
    LEFT = "left"


class ChangeReason(StrEnum):
    """Why, derived from the event's action."""

    ASSIGNED = "assigned"
    CLAIMED = "claimed"
    UNCLAIMED = "unclaimed"
    DECIDED = "decided"
    ESCALATED = "escalated"
    REASSIGNED = "reassigned"
    DELEGATED = "delegated"
    MODIFIED = "modified"
    DUE_SOON = "due_soon"
    COMMENTED = "commented"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UPDATED = "updated"


_REASONS: Mapping[str, ChangeReason] = {
    "step.activate": ChangeReason.ASSIGNED,
    "item.resubmit": ChangeReason.ASSIGNED,
    "step.resubmit": ChangeReason.ASSIGNED,
    "step.claim": ChangeReason.CLAIMED,
    "step.unclaim": ChangeReason.UNCLAIMED,
    "step.vote": ChangeReason.DECIDED,
    "step.approve": ChangeReason.DECIDED,
    "step.reject": ChangeReason.DECIDED,
    "step.request_changes": ChangeReason.DECIDED,
    "step.override": ChangeReason.DECIDED,
    "step.skip": ChangeReason.DECIDED,
    "item.approve": ChangeReason.DECIDED,
    "item.approve_all": ChangeReason.DECIDED,
    "item.reject": ChangeReason.DECIDED,
    "item.request_changes": ChangeReason.DECIDED,
    "item.override": ChangeReason.DECIDED,
    "step.escalate": ChangeReason.ESCALATED,
    "step.reassign": ChangeReason.REASSIGNED,
    "step.modify": ChangeReason.MODIFIED,
    "step.cancel": ChangeReason.CANCELLED,
    "item.cancel": ChangeReason.CANCELLED,
    "step.expire": ChangeReason.EXPIRED,
    "item.expire": ChangeReason.EXPIRED,
}

# Events that can bring an item into an inbox.
_ENTERING = {
    ChangeReason.ASSIGNED,
    ChangeReason.ESCALATED,
    ChangeReason.REASSIGNED,
    ChangeReason.DELEGATED,
}
# Events after which an item that is no longer in the inbox is reported as having left it.
_LEAVING = {
    ChangeReason.DECIDED,
    ChangeReason.REASSIGNED,
    ChangeReason.DELEGATED,
    ChangeReason.CANCELLED,
    ChangeReason.EXPIRED,
    ChangeReason.ESCALATED,
}
# Not inbox changes by themselves: the step activation that follows a submission reports it.
_IGNORED = {"item.submitted"}


def reason_of(action: str, data: Mapping[str, Any] | None = None) -> ChangeReason | None:
    """The inbox-change reason of an audit action (None: not an inbox change)."""
    if action in _IGNORED:
        return None
    if action == "step.reassign" and data and "delegate" in data:
        return ChangeReason.DELEGATED
    if action in _REASONS:
        return _REASONS[action]
    if action.startswith("comment."):
        return ChangeReason.COMMENTED
    if "remind" in action or "deadline" in action or "due_soon" in action:
        return ChangeReason.DUE_SOON
    return ChangeReason.UPDATED


@dataclass(frozen=True)
class InboxChange:
    """One item's change in one reviewer's inbox, and the claim state of their steps of the
    item after it (None when it left the inbox)."""

    kind: ChangeKind
    reason: ChangeReason
    claim: ClaimState | None = None


SEAT_OUTCOMES = frozenset({"approve", "reject"})
"""Decision outcomes that fill a reviewer's seat in a step's quorum."""


def seats_taken(principal: Principal, item: Item, decisions: Sequence[Decision]) -> set[UUID]:
    """Ids of the steps on which the principal already filled a seat in the item's current
    revision (they have nothing left to do there)."""
    return {
        d.step_id
        for d in decisions
        if d.actor_id == principal.user_id
        and d.revision == item.revision
        and d.outcome in SEAT_OUTCOMES
    }


def steps_to_act_on(
    principal: Principal, steps: Sequence[Step], voted: Collection[UUID] = ()
) -> list[Step]:
    """The principal's steps of an item now: active, naming them, and without a seat they
    already filled (`voted`: ids of such steps). The inbox's entries of the item for them: the
    item is in their inbox while there is one."""
    return [
        s
        for s in steps
        if s.state == StepState.ACTIVE and s.id not in voted and s.assignees.matches(principal)
    ]


def claim_of(
    principal: Principal, steps: Sequence[Step], voted: Collection[UUID] = ()
) -> ClaimState | None:
    """The claim state of the principal's steps of an item (`steps_to_act_on`), as the inbox
    query reports it in `InboxEdge.claim` (`db.inbox._claim_of`): theirs when they claimed
    one, unclaimed when nobody claimed any, else others'; None when they have none (the item
    is not in their inbox)."""
    mine = steps_to_act_on(principal, steps, voted)
    if not mine:
        return None
    if any(s.claimed_by == principal.user_id for s in mine):
        return ClaimState.MINE
    if all(s.claimed_by is None for s in mine):
        return ClaimState.UNCLAIMED
    return ClaimState.OTHERS


def inbox_change(
    event: Mapping[str, Any],
    principal: Principal,
    steps: Sequence[Step],
    voted: Collection[UUID] = (),
) -> InboxChange | None:
    """How `event` changed the principal's inbox, judged against the item's current `steps`
    (None when it does not concern them).

    An event concerns a reviewer the event's step names (or, for an item-level event, any of
    the item's steps), or one the step named before a reassignment. Current assignees are the
    authority: someone removed from a step no longer receives its later events.
    """
    reason = reason_of(event["action"], event.get("data"))
    if reason is None:
        return None
    step_id = event.get("step_id")
    step = next((s for s in steps if s.id == step_id), None) if step_id else None
    named_before = assignees_match((event.get("data") or {}).get("before") or {}, principal)
    if step is not None:
        concerned = step.assignees.matches(principal) or named_before
    else:
        concerned = any(s.assignees.matches(principal) for s in steps)
    if not concerned:
        return None
    claim = claim_of(principal, steps, voted)
    if claim is not None:
        kind = ChangeKind.ENTERED if reason in _ENTERING else ChangeKind.UPDATED
        return InboxChange(kind, reason, claim)
    if reason in _LEAVING:
        return InboxChange(ChangeKind.LEFT, reason)
    return None


class ItemListChangeKind(StrEnum):
    """What happened to an item in one of a person's lists of items (requests, history)."""

    ENTERED = "entered"
    UPDATED = "updated"


def item_list_change(
    event: Mapping[str, Any],
    scope: ItemScope,
    principal: Principal,
    item: Item,
    decisions: Sequence[Decision],
) -> ItemListChangeKind | None:
    """How `event` changed the principal's list of items in `scope` (`items(scope:)`), judged
    against the item and its decisions now (None when the item is not in that list).

    Items never leave these lists: a request stays the requester's in every state, and an item
    someone decided on stays in their history. So an event is `ENTERED` when it puts the item
    there (its submission; the principal's own decision) and `UPDATED` otherwise; either way a
    client upserts the item by id.
    """
    user = principal.user_id
    if item.tenant_id != principal.tenant_id:
        return None
    if scope is ItemScope.REQUESTED:
        if item.requester_id != user:
            return None
        return (
            ItemListChangeKind.ENTERED
            if event["action"] == "item.submitted"
            else ItemListChangeKind.UPDATED
        )
    if not any(d.actor_id == user for d in decisions):
        return None
    own_decision = (
        event["actor_id"] == user
        and reason_of(event["action"], event.get("data")) is ChangeReason.DECIDED
    )
    return ItemListChangeKind.ENTERED if own_decision else ItemListChangeKind.UPDATED
