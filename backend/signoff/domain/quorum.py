"""Quorum: when the votes on a step add up to a decision.

Decision on `all` without a known seat count: the domain cannot know how many people a group
or role holds, so the service resolves the step's assignees into a concrete number of distinct
eligible people when the step activates and passes it as `seats`. `seats_for` gives the count
the template alone supports: for `all`, *every named user* must approve (groups and roles on an
`all` step widen who may vote, they do not add required seats). Only when a step names no user
at all is `seats` None; `all` then needs one approval and no rejection, the most a count can
say about an unbounded group (document this to authors: name the users when "everyone" must
sign).
"""

from __future__ import annotations

from enum import StrEnum

from signoff.domain.template_model import Assignees, Quorum, QuorumMode


class QuorumOutcome(StrEnum):
    """Where the votes stand."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def seats_for(quorum: Quorum, assignees: Assignees) -> int | None:
    """The seat count the template defines for `quorum`, None when unbounded.

    For `all` it is the number of distinct named users (None if there are none); for `any` and
    `n_of_m` it is the named users when no group or role widens the set.
    """
    if quorum.mode is QuorumMode.ALL:
        return len(set(assignees.users)) or None
    return assignees.seats


def required_approvals(quorum: Quorum, seats: int | None) -> int:
    """How many approvals decide the step (at least 1)."""
    if quorum.mode is QuorumMode.ANY:
        return 1
    if quorum.mode is QuorumMode.ALL:
        return max(seats or 1, 1)
    return max(quorum.n or 1, 1)


def evaluate(
    quorum: Quorum,
    *,
    seats: int | None,
    approvals: int,
    rejections: int,
    any_rejection_rejects: bool,
) -> QuorumOutcome:
    """Decide a step from its vote counts.

    Rejection wins first when `any_rejection_rejects` (one "no" is enough to stop, the safe
    default for a sign-off). Otherwise the step is rejected only once the remaining seats can no
    longer reach the required approvals; with unbounded seats that never happens, so the step
    stays pending until its SLA acts.
    """
    if approvals < 0 or rejections < 0:
        raise ValueError("vote counts cannot be negative")
    if rejections and any_rejection_rejects:
        return QuorumOutcome.REJECTED
    needed = required_approvals(quorum, seats)
    if approvals >= needed:
        return QuorumOutcome.APPROVED
    if quorum.mode is QuorumMode.ALL and rejections:
        return QuorumOutcome.REJECTED  # "everyone" can no longer be reached
    if seats is not None:
        undecided = max(seats - approvals - rejections, 0)
        if approvals + undecided < needed:
            return QuorumOutcome.REJECTED
    return QuorumOutcome.PENDING
