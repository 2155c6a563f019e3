import pytest

from signoff.domain.quorum import QuorumOutcome, evaluate
from signoff.domain.templates import Assignees, Quorum, QuorumMode

P, A, R = QuorumOutcome.PENDING, QuorumOutcome.APPROVED, QuorumOutcome.REJECTED


@pytest.mark.parametrize(
    ("needed", "seats", "approvals", "rejections", "strict", "expected"),
    [
        # any: the first approval decides
        (1, 3, 0, 0, True, P),
        (1, 3, 1, 0, True, A),
        (1, 3, 0, 1, True, R),
        (1, 3, 0, 1, False, P),
        (1, 3, 0, 3, False, R),
        (1, 3, 1, 1, False, A),
        # all (needed = seats)
        (3, 3, 2, 0, True, P),
        (3, 3, 3, 0, True, A),
        (3, 3, 2, 1, False, R),
        (3, 3, 2, 1, True, R),
        # all with alternates added by an escalation: a "no" no longer makes it impossible
        (3, 4, 2, 1, False, P),
        # n of m
        (2, 3, 1, 0, True, P),
        (2, 3, 2, 0, True, A),
        (2, 3, 1, 1, True, R),
        (2, 3, 1, 1, False, P),
        (2, 3, 0, 2, False, R),
        (2, 3, 3, 0, True, A),
    ],
)
def test_quorum_table(needed, seats, approvals, rejections, strict, expected):
    outcome = evaluate(
        needed=needed,
        seats=seats,
        approvals=approvals,
        rejections=rejections,
        any_rejection_rejects=strict,
    )
    assert outcome is expected


def test_impossible_counts_refused():
    with pytest.raises(ValueError):
        evaluate(needed=1, seats=1, approvals=-1, rejections=0, any_rejection_rejects=True)
    with pytest.raises(ValueError):
        evaluate(needed=1, seats=1, approvals=1, rejections=1, any_rejection_rejects=True)


def test_needed_and_seat_counts():
    named = Assignees(users=("a", "b", "a"))
    mixed = Assignees(users=("a", "b"), groups=("g",), roles=("r",), counts={"g": 3})
    assert named.seat_count == 2
    assert mixed.seat_count == 6  # 2 users + 3 for g + 1 for r
    assert Quorum(QuorumMode.ANY).needed(6) == 1
    assert Quorum(QuorumMode.ALL).needed(6) == 6
    assert Quorum(QuorumMode.N_OF_M, 2).needed(6) == 2
    assert Quorum(QuorumMode.ALL).needed(0) == 1
