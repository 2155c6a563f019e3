"""Seats: who decides a step, and the separation-of-duties invariants on every change of it.

A step's quorum is a tuple of seats fixed when it activates (`seats_for`): one per named user,
the stated number per group or role. The invariants (docs/reference/separation-of-duties.md):

1. The requester of an item never holds, fills or hands out a seat of it, and never chooses or
   changes who does.
2. One person fills at most one seat of a step, as holder or as delegate.
3. An assignee hands over (or delegates) only their own seat, with a reason; replacing other
   seats takes an admin or a role the template names (`reassignable_by`).
4. Votes are counted per seat: a filled seat never changes hands, so a reassignment neither
   resets nor shrinks the quorum; a reassignment that would leave fewer seats than the
   approvals needed is refused.

Every function here is pure and raises `DomainError` on a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode, forbidden, invalid
from signoff.domain.records import Seat, SeatVote, Step, StepAssignees
from signoff.domain.template_model import Assignees, Quorum


def _sod(message: str, **details: object) -> DomainError:
    return DomainError(ErrorCode.SEPARATION_OF_DUTIES, message, details=dict(details))


def seats_for(spec: Assignees, requester: str, taken: Iterable[str] = ()) -> tuple[Seat, ...]:
    """The seats `spec` names, without the requester and without people in `taken` (who hold a
    seat already): one per named user, `spec.count_of(name)` per group and role."""
    skip = {requester, *taken}
    seats = [Seat(holder=user) for user in dict.fromkeys(spec.users) if user not in skip]
    seats += [Seat(group=g) for g in dict.fromkeys(spec.groups) for _ in range(spec.count_of(g))]
    seats += [Seat(role=r) for r in dict.fromkeys(spec.roles) for _ in range(spec.count_of(r))]
    return tuple(seats)


def assignees_of(seats: Sequence[Seat]) -> StepAssignees:
    """Who may act on a step with these seats: holders, open groups and roles, delegates."""
    return StepAssignees(
        users=tuple(sorted({s.holder for s in seats if s.holder})),
        groups=tuple(sorted({s.group for s in seats if s.group and not s.holder})),
        roles=tuple(sorted({s.role for s in seats if s.role and not s.holder})),
        delegates={s.delegate: s.holder for s in seats if s.delegate and s.holder},
    )


def tally(seats: Sequence[Seat]) -> tuple[int, int]:
    """(approvals, rejections) of the filled seats."""
    approvals = sum(s.vote is SeatVote.APPROVE for s in seats)
    rejections = sum(s.vote is SeatVote.REJECT for s in seats)
    return approvals, rejections


def cleared(seats: Sequence[Seat]) -> tuple[Seat, ...]:
    """The same seats, every vote removed (a new revision, a reopened step)."""
    return tuple(replace(s, vote=None, filled_by=None, acting_for=None) for s in seats)


def _people(seats: Sequence[Seat]) -> set[str]:
    """Everyone who holds, is delegate of, or filled a seat."""
    return {p for s in seats for p in (s.holder, s.delegate, s.filled_by, s.acting_for) if p}


def _matches_open(seat: Seat, who: Principal) -> bool:
    return seat.holder is None and (
        (seat.group is not None and seat.group in who.groups)
        or (seat.role is not None and seat.role in who.roles)
    )


def names(step: Step, who: Principal) -> bool:
    """Whether `who` holds, is delegate of, or may fill an open seat of `step`."""
    return any(who.user_id in (s.holder, s.delegate) or _matches_open(s, who) for s in step.seats)


def seat_to_fill(step: Step, who: Principal, requester: str) -> tuple[int, str | None]:
    """The seat `who` fills by voting now, and whom they act for (a delegate's holder).

    Their own seat first, then one they are delegate of, then an open seat of one of their
    groups or roles. Refused: the requester; anyone who already filled a seat of the step (or
    whose delegator did); anyone with no seat to fill.
    """
    user = who.user_id
    if user == requester:
        raise _sod("the requester cannot decide their own item", actor=user)
    for seat in step.seats:
        if seat.filled and user in (seat.filled_by, seat.acting_for):
            raise _sod("one person fills at most one seat: you already voted", actor=user)
        if seat.filled and seat.delegate == user and seat.holder == seat.filled_by:
            raise _sod(
                "one person fills at most one seat: the delegator already voted",
                actor=user,
                delegator=seat.holder,
            )
    for i, seat in enumerate(step.seats):
        if not seat.filled and seat.holder == user:
            return i, None
    for i, seat in enumerate(step.seats):
        if not seat.filled and seat.delegate == user:
            return i, seat.holder
    for i, seat in enumerate(step.seats):
        if not seat.filled and _matches_open(seat, who):
            return i, None
    if names(step, who):
        raise _sod("every seat you could fill on this step is filled", actor=user)
    raise forbidden(f"you are not an assignee of step {step.key!r}")


def with_vote(
    seats: Sequence[Seat], index: int, voter: str, acting_for: str | None, vote: SeatVote
) -> tuple[Seat, ...]:
    """`seats` with seat `index` filled by `voter`'s vote."""
    filled = replace(seats[index], vote=vote, filled_by=voter, acting_for=acting_for)
    if filled.holder is None:
        filled = replace(filled, holder=acting_for or voter)
    return tuple(filled if i == index else s for i, s in enumerate(seats))


def own_seat(step: Step, who: Principal, requester: str) -> int:
    """The index of the unfilled seat `who` holds in their own right (an open seat of one of
    their groups or roles counts, the first such); refused for delegates and the requester."""
    if who.user_id == requester:
        raise _sod("the requester cannot change who decides their own item", actor=who.user_id)
    for i, seat in enumerate(step.seats):
        if not seat.filled and seat.holder == who.user_id:
            return i
    for i, seat in enumerate(step.seats):
        if not seat.filled and _matches_open(seat, who):
            return i
    if any(s.delegate == who.user_id for s in step.seats):
        raise forbidden("a delegate cannot hand on a seat they only stand in for")
    if names(step, who):
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION, "your seat on this step is already filled", "stepId"
        )
    raise forbidden(f"you hold no seat on step {step.key!r}")


def _check_newcomer(step: Step, newcomer: str, requester: str, field: str) -> None:
    if newcomer == requester:
        raise _sod("the requester cannot decide their own item", actor=newcomer)
    if newcomer in _people(step.seats):
        raise _sod(
            f"one person fills at most one seat: {newcomer} already has one on this step",
            actor=newcomer,
            field=field,
        )


def delegate(step: Step, who: Principal, to: str, requester: str) -> tuple[Seat, ...]:
    """`who` lets `to` fill their own seat for them; they stay its holder."""
    index = own_seat(step, who, requester)
    if to == who.user_id:
        raise invalid("cannot delegate to yourself", "delegateTo")
    _check_newcomer(step, to, requester, "delegateTo")
    seat = replace(step.seats[index], holder=who.user_id, delegate=to)
    return tuple(seat if i == index else s for i, s in enumerate(step.seats))


def hand_over(step: Step, who: Principal, to: str, requester: str) -> tuple[Seat, ...]:
    """`who` gives their own seat to `to`, who holds it from now on."""
    index = own_seat(step, who, requester)
    if to == who.user_id:
        raise invalid("cannot hand your seat to yourself", "users")
    _check_newcomer(step, to, requester, "users")
    seat = replace(step.seats[index], holder=to, delegate=None)
    return tuple(seat if i == index else s for i, s in enumerate(step.seats))


def may_replace(
    step: Step,
    who: Principal,
    manager: bool,
    reassignable_by: Iterable[str],
    requester: str,
) -> bool:
    """Whether `who` may replace the seats of a step (not only hand over their own): a
    `manager` (holder of `manage_items` on the item), a holder of a role the template names,
    or the assignee of a step with a single seat; never the requester."""
    if who.user_id == requester:
        return False
    if manager or who.has_any_role(reassignable_by):
        return True
    return len(step.seats) == 1 and not step.seats[0].filled and names(step, who)


def replaced(
    step: Step, spec: Assignees, quorum: Quorum, requester: str
) -> tuple[tuple[Seat, ...], int]:
    """Every unfilled seat replaced by the seats `spec` names; filled seats stay (their votes
    count). Returns the seats and the approvals they need (`all`: every seat, recounted);
    refused when the seats cannot meet the quorum (a reassignment never shrinks it)."""
    if spec.is_empty:
        raise invalid("name at least one user, group or role", "users")
    if requester in spec.users:
        raise _sod("the requester cannot decide their own item", actor=requester)
    kept = tuple(s for s in step.seats if s.filled)
    seats = kept + seats_for(spec, requester, taken=_people(kept))
    needed = quorum.needed(len(seats))
    if len(seats) < needed:
        raise invalid(
            f"step {step.key!r} needs {needed} approvals; this assignment gives "
            f"{len(seats)} seat{'s' if len(seats) != 1 else ''}",
            "users",
        )
    return seats, needed


def added(seats: Sequence[Seat], spec: Assignees, requester: str) -> tuple[Seat, ...]:
    """`seats` plus the seats `spec` names for people not seated yet (escalations)."""
    return tuple(seats) + seats_for(spec, requester, taken=_people(seats))


def open_seats(targets: Assignees, count: int) -> tuple[Seat, ...]:
    """`count` seats open to the first group (else role) `targets` names; none if it names
    neither, or `count` is not positive."""
    if count <= 0:
        return ()
    if targets.groups:
        return tuple(Seat(group=targets.groups[0]) for _ in range(count))
    if targets.roles:
        return tuple(Seat(role=targets.roles[0]) for _ in range(count))
    return ()


def covering(
    seats: Sequence[Seat], targets: Assignees, needed: int, fallback: Assignees
) -> tuple[Seat, ...]:
    """`seats` with enough open seats added to reach `needed`: open to the first group or role
    of `targets`, else (targets that name only users, the requester among them) to the first
    of `fallback` (the override roles), so that a step never waits for seats nobody can fill."""
    covered = tuple(seats) + open_seats(targets, shortfall(seats, needed))
    return covered + open_seats(fallback, shortfall(covered, needed))


def shortfall(seats: Sequence[Seat], needed: int) -> int:
    """How many more seats the step needs to be able to reach its quorum at all."""
    return max(needed - len(seats), 0)
