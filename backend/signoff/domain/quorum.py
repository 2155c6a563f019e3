"""Quorum: when the votes on a step's seats add up to a decision.

A step's seats are fixed when it activates (`domain/seats.py`), so both numbers are always
known: `needed` approvals (1 for `any`, n for `n_of_m`, every seat for `all`) out of `seats`.
"""

from __future__ import annotations

from enum import StrEnum


class QuorumOutcome(StrEnum):
    """Where the votes stand."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def evaluate(
    *,
    needed: int,
    seats: int,
    approvals: int,
    rejections: int,
    any_rejection_rejects: bool,
) -> QuorumOutcome:
    """Decide a step from the votes on its seats.

    Rejection wins first when `any_rejection_rejects` (one "no" is enough to stop, the safe
    default for a sign-off). Otherwise the step is rejected once a rejection leaves the seats
    still open unable to bring the approvals to `needed`. Too few seats alone rejects nothing:
    such a step escalates for more (`Run.escalate_unfillable`) and waits.
    """
    if approvals < 0 or rejections < 0 or approvals + rejections > seats:
        raise ValueError("votes must be between zero and the number of seats")
    if rejections and any_rejection_rejects:
        return QuorumOutcome.REJECTED
    if approvals >= needed:
        return QuorumOutcome.APPROVED
    if rejections and approvals + (seats - approvals - rejections) < needed:
        return QuorumOutcome.REJECTED
    return QuorumOutcome.PENDING
