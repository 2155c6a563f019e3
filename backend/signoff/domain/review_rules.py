"""The progression's rules for people's actions during review: votes, claims, seats changing
hands, modifications, resubmission, cancellation, overrides and held steps."""

from __future__ import annotations

from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode, forbidden, invalid
from signoff.domain.events import (
    ApproveAll,
    Cancel,
    Claim,
    Delegate,
    Override,
    Reassign,
    Resubmit,
    Unclaim,
    Vote,
    VoteOutcome,
)
from signoff.domain.permissions import Permission
from signoff.domain.policies import check_justification, check_override
from signoff.domain.quorum import QuorumOutcome, evaluate
from signoff.domain.records import DecisionOutcome, SeatVote, Step
from signoff.domain.run import Run
from signoff.domain.seats import (
    added,
    assignees_of,
    cleared,
    delegate,
    hand_over,
    may_replace,
    names,
    replaced,
    seat_to_fill,
    tally,
    with_vote,
)
from signoff.domain.states import (
    ITEM_MACHINE,
    STEP_MACHINE,
    ItemAction,
    ItemState,
    StepAction,
    StepState,
)
from signoff.domain.template_model import StepDefinition
from signoff.domain.timers import next_priority

_STEP_ACTION = {
    VoteOutcome.APPROVE: StepAction.APPROVE,
    VoteOutcome.REJECT: StepAction.REJECT,
    VoteOutcome.REQUEST_CHANGES: StepAction.REQUEST_CHANGES,
}
_MOVE = {
    QuorumOutcome.PENDING: StepAction.VOTE,
    QuorumOutcome.APPROVED: StepAction.APPROVE,
    QuorumOutcome.REJECTED: StepAction.REJECT,
}


def reason_for(text: str | None, why: str, *, required: bool = True) -> str | None:
    """The trimmed reason for an action (JUSTIFICATION_REQUIRED when required and missing)."""
    return check_justification(required, text, why=why)


def may_act(run: Run, step: Step, who: Principal) -> None:
    """Refuse someone who may not act on `step`: the requester (separation of duties), anyone
    without the `decide` permission, and anyone who holds no seat of it (before activation:
    whom the template names)."""
    if who.user_id == run.requester:
        raise DomainError(
            ErrorCode.SEPARATION_OF_DUTIES, "the requester cannot act on their own item's steps"
        )
    run.require(who, Permission.DECIDE, f"acting on step {step.key!r}")
    named = names(step, who) if step.seats else step.assignees.names(who)
    if not named:
        raise forbidden(f"you are not an assignee of step {step.key!r}")


def needs_reason(outcome: VoteOutcome, definition: StepDefinition) -> bool:
    """Whether a vote needs a reason: every vote but an approval, and an approval where the
    template asks for a justification."""
    return outcome is not VoteOutcome.APPROVE or definition.justification_required


def vote(run: Run, event: Vote) -> None:
    """Fill the voter's seat; the tally decides the step; the item moves on."""
    key = event.step
    step = run.steps[key]
    STEP_MACHINE.next_state(step.state, _STEP_ACTION[event.outcome])  # legality first
    if event.by.user_id != run.requester:  # the requester is refused by separation of duties
        run.require(event.by, Permission.DECIDE, f"deciding step {key!r}")
    index, acting_for = seat_to_fill(step, event.by, run.requester)
    definition = run.defn.step(key)
    verb = event.outcome.value.replace("_", " ")
    reason = reason_for(
        event.reason,
        f"to {verb} step {key!r}",
        required=needs_reason(event.outcome, definition),
    )
    value = None
    if definition.options and event.outcome is VoteOutcome.APPROVE:
        if event.value not in definition.options:
            raise invalid(f"value must be one of {list(definition.options)}", "value")
        value = event.value
    run.decide(
        key,
        event.by.user_id,
        DecisionOutcome(event.outcome.value),
        reason=reason,
        acting_for=acting_for,
        seat=index,
    )
    if event.outcome is VoteOutcome.REQUEST_CHANGES:
        if run.item.revision > run.defn.max_revisions:
            _escalate_for_revisions(run, key, reason)
        else:
            run.move(key, StepAction.REQUEST_CHANGES, reason=reason, acting_for=acting_for)
            run.move_item(ItemAction.REQUEST_CHANGES, reason=reason)
        return
    seats = with_vote(step.seats, index, event.by.user_id, acting_for, SeatVote(event.outcome))
    approvals, rejections = tally(seats)
    outcome = evaluate(
        needed=step.needed,
        seats=len(seats),
        approvals=approvals,
        rejections=rejections,
        any_rejection_rejects=definition.any_rejection_rejects,
    )
    move = _MOVE[outcome]
    run.move(
        key,
        move,
        reason=reason,
        acting_for=acting_for,
        data={
            "vote": event.outcome.value,
            "seat": index,
            "approvals": approvals,
            "rejections": rejections,
            "needed": step.needed,
            "seats": len(seats),
        },
        seats=seats,
        assignees=assignees_of(seats),
        decision_value=value if move is StepAction.APPROVE else step.decision_value,
    )
    run.advance()


def _escalate_for_revisions(run: Run, key: str, reason: str | None) -> None:
    """The request-changes loop went round too often: escalate instead of asking again (the
    first escalation level's targets join, the item's priority rises)."""
    step = run.steps[key]
    plan = step.escalation_plan
    level = plan.levels[0] if plan and plan.levels else None
    seats = added(step.seats, level.targets, run.requester) if level else step.seats
    run.move(
        key,
        StepAction.ESCALATE,
        reason=reason,
        data={"by": "revision_limit", "max_revisions": run.defn.max_revisions},
        seats=seats,
        assignees=assignees_of(seats),
        escalation_level=step.escalation_level + 1,
    )
    run.raise_priority(next_priority(run.item.priority, level) if level else run.item.priority + 1)


def approve_all(run: Run, event: ApproveAll) -> None:
    """Approve every open step of a plan the reviewer may fill a seat on, as steps open up."""
    if not run.is_plan:
        raise invalid("approve all applies to plans", "itemId")
    approved = 0
    while True:
        candidates = [
            key
            for key in run.order
            if run.steps[key].state is StepState.ACTIVE and _can_fill(run, key, event.by)
        ]
        if not candidates:
            break
        vote(run, Vote(candidates[0], event.by, VoteOutcome.APPROVE, event.reason))
        approved += 1
    if approved == 0:
        raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "no open step you can approve")
    run.note("item.approve_all", None, reason=event.reason, data={"steps": approved})


def _can_fill(run: Run, key: str, who: Principal) -> bool:
    try:
        seat_to_fill(run.steps[key], who, run.requester)
    except DomainError:
        return False
    return True


def claim(run: Run, event: Claim) -> None:
    """Take a step so that other assignees see somebody is on it; the optional reason is
    recorded on the `step.claim` audit event."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.CLAIM)
    reason = reason_for(event.reason, "", required=False)
    may_act(run, step, event.by)
    if step.claimed_by and step.claimed_by != event.by.user_id:
        raise DomainError(
            ErrorCode.ALREADY_CLAIMED, f"step is claimed by {step.claimed_by}", "stepId"
        )
    run.move(event.step, StepAction.CLAIM, reason=reason, claimed_by=event.by.user_id)


def unclaim(run: Run, event: Unclaim) -> None:
    """Release a claim (the claimer, or an admin); the optional reason is recorded on the
    `step.unclaim` audit event."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.UNCLAIM)
    reason = reason_for(event.reason, "", required=False)
    if step.claimed_by is None:
        raise invalid("step is not claimed", "stepId")
    if step.claimed_by != event.by.user_id:
        run.require(event.by, Permission.MANAGE_ITEMS, "releasing someone else's claim")
    run.move(
        event.step,
        StepAction.UNCLAIM,
        reason=reason,
        data={"was": step.claimed_by},
        claimed_by=None,
    )


def delegate_seat(run: Run, event: Delegate) -> None:
    """An assignee lets another person fill their own seat for them (audited, with a reason)."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.REASSIGN)
    reason = reason_for(event.reason, "to delegate")
    seats = delegate(step, event.by, event.to, run.requester)
    run.move(
        event.step,
        StepAction.REASSIGN,
        reason=reason,
        data={"delegate": event.to, "delegator": event.by.user_id},
        seats=seats,
        assignees=assignees_of(seats),
        claimed_by=None,
    )


def reassign(run: Run, event: Reassign) -> None:
    """Seats change hands: an admin, or a role the template names, replaces the unfilled seats;
    an assignee who names one user hands over their own seat; nobody else may."""
    definition = run.defn.step(event.step)
    spec = event.assignees
    step = run.steps[event.step]
    manager = run.may(event.by, Permission.MANAGE_ITEMS)
    if may_replace(step, event.by, manager, definition.reassignable_by, run.requester):
        _replace_seats(run, event)
    elif len(spec.users) == 1 and not (spec.groups or spec.roles):
        _hand_over_seat(run, event, spec.users[0])
    else:
        _replace_seats(run, event)  # refuses, saying who may


def _hand_over_seat(run: Run, event: Reassign, to: str) -> None:
    """An assignee gives their own seat to another person (audited, with a reason)."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.REASSIGN)
    reason = reason_for(event.reason, "to hand over your seat")
    seats = hand_over(step, event.by, to, run.requester)
    after = assignees_of(seats)
    run.move(
        event.step,
        StepAction.REASSIGN,
        reason=reason,
        data={
            "by": "hand_over",
            "to": to,
            "before": step.assignees.to_dict(),
            "after": after.to_dict(),
        },
        seats=seats,
        assignees=after,
        claimed_by=None,
    )


def _replace_seats(run: Run, event: Reassign) -> None:
    """An admin, or a role the template names, replaces the step's unfilled seats."""
    step = run.steps[event.step]
    STEP_MACHINE.next_state(step.state, StepAction.REASSIGN)
    definition = run.defn.step(event.step)
    if event.by.user_id == run.requester:
        raise DomainError(
            ErrorCode.SEPARATION_OF_DUTIES,
            "the requester cannot choose who decides their own item",
        )
    manager = run.may(event.by, Permission.MANAGE_ITEMS)
    if not may_replace(step, event.by, manager, definition.reassignable_by, run.requester):
        roles = ", ".join(definition.reassignable_by)
        who_may = "the manage_items permission" + (f" or one of the roles {roles}" if roles else "")
        raise forbidden(
            f"replacing other people's seats takes {who_may}; "
            "you may hand over only your own seat (name one user)"
        )
    reason = reason_for(event.reason, "to reassign")
    seats, needed = replaced(step, event.assignees, step.quorum, run.requester)
    after = assignees_of(seats)
    run.move(
        event.step,
        StepAction.REASSIGN,
        reason=reason,
        data={
            "by": "replace",
            "before": step.assignees.to_dict(),
            "after": after.to_dict(),
            "needed": needed,
        },
        seats=seats,
        needed=needed,
        assignees=after,
        claimed_by=None,
    )
    run.advance()


def resubmit(run: Run, event: Resubmit) -> None:
    """The requester's new revision: steps that asked for changes review again (fresh votes)."""
    if run.requester != event.by.user_id:
        raise forbidden("only the requester can resubmit")
    ITEM_MACHINE.next_state(run.item.state, ItemAction.RESUBMIT)
    changes: dict[str, Any] = {"revision": run.item.revision + 1}
    if event.payload is not None:
        changes["payload"] = dict(event.payload)
    if event.title is not None:
        if not event.title.strip():
            raise invalid("title must not be empty", "title")
        changes["title"] = event.title.strip()
    run.move_item(
        ItemAction.RESUBMIT,
        reason=reason_for(event.reason, "", required=False),
        data={"revision": changes["revision"], "previous_payload": dict(run.item.payload)},
        **changes,
    )
    for key in run.order:
        step = run.steps[key]
        if step.state is StepState.CHANGES_REQUESTED:
            seats = cleared(step.seats)
            run.move(
                key,
                StepAction.RESUBMIT,
                seats=seats,
                assignees=assignees_of(seats),
                claimed_by=None,
            )
    run.advance()


def cancel(run: Run, event: Cancel) -> None:
    """Withdraw an item (its requester, or a holder of `manage_items`); open steps are
    cancelled."""
    if run.requester != event.by.user_id:
        run.require(event.by, Permission.MANAGE_ITEMS, "cancelling someone else's item")
    cancel_item(run, reason_for(event.reason, "to cancel"))


def cancel_item(run: Run, reason: str | None) -> None:
    """Cancel the item and every step that can still be cancelled."""
    run.move_item(ItemAction.CANCEL, reason=reason)
    for key in run.order:
        if (run.steps[key].state, StepAction.CANCEL) in STEP_MACHINE.table:
            run.move(key, StepAction.CANCEL, data={"by": "item"})


def override(run: Run, event: Override) -> None:
    """Approve a step by override: an override role, a strong justification, never the
    requester; on a sensitive step a first call requests and another person confirms."""
    key = event.step
    step = run.steps[key]
    STEP_MACHINE.next_state(step.state, StepAction.OVERRIDE)
    item_state = run.item.state
    if item_state not in (ItemState.PENDING, ItemState.REJECTED, ItemState.EXPIRED):
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION,
            f"cannot override a step of an item that is {item_state.value}",
        )
    if item_state is not ItemState.PENDING:
        # Reviving a refused item must not skip the reviews that never happened.
        unreviewed = [
            k
            for k in run.order
            if k != key
            and run.steps[k].state
            not in (StepState.APPROVED, StepState.SKIPPED, StepState.COMPLETED)
        ]
        if unreviewed:
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                "overriding this step would approve the item without the reviews of "
                + ", ".join(unreviewed),
                details={"unreviewed": unreviewed},
            )
    user = event.by.user_id
    if user == run.requester:
        raise DomainError(
            ErrorCode.SEPARATION_OF_DUTIES, "the requester cannot override their own item"
        )
    run.require(event.by, Permission.OVERRIDE, "overriding a step")
    text = check_override(event.justification, run.ctx.override_min_justification)
    voted = {p for seat in step.seats for p in (seat.filled_by, seat.acting_for) if p}
    if user in voted:
        raise DomainError(
            ErrorCode.SEPARATION_OF_DUTIES,
            "you voted on this step: overriding it takes someone else",
            details={"actor": user},
        )
    first = event.requested_by
    if step.sensitive and first is None:
        run.decide(key, user, DecisionOutcome.OVERRIDE_REQUESTED, reason=text)
        run.note("step.override_requested", key, reason=text)
        return
    if step.sensitive and first == user:
        raise DomainError(
            ErrorCode.SEPARATION_OF_DUTIES,
            "the second approver of an override must be someone other than the overrider",
            details={"actor": user},
        )
    run.decide(key, user, DecisionOutcome.OVERRIDE, reason=text)
    run.move(
        key,
        StepAction.OVERRIDE,
        reason=text,
        data={"requested_by": first or user, "confirmed_by": user if step.sensitive else None},
    )
    if item_state is not ItemState.PENDING:
        run.move_item(ItemAction.OVERRIDE, reason=text, data={"step": key})
    run.advance()
