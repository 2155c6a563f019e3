import pytest

from signoff.domain.quorum import QuorumOutcome, evaluate, required_approvals, seats_for
from signoff.domain.templates import Assignees, Quorum, QuorumMode

ANY = Quorum(QuorumMode.ANY)
ALL = Quorum(QuorumMode.ALL)
TWO = Quorum(QuorumMode.N_OF_M, 2)
P, A, R = QuorumOutcome.PENDING, QuorumOutcome.APPROVED, QuorumOutcome.REJECTED


@pytest.mark.parametrize(
    ("quorum", "seats", "approvals", "rejections", "strict", "expected"),
    [
        # any: the first approval decides
        (ANY, 3, 0, 0, True, P),
        (ANY, 3, 1, 0, True, A),
        (ANY, None, 1, 0, True, A),
        (ANY, 3, 0, 1, True, R),
        (ANY, 3, 0, 1, False, P),
        (ANY, 3, 0, 3, False, R),
        (ANY, None, 0, 50, False, P),
        (ANY, 3, 1, 1, False, A),
        # all: every seat
        (ALL, 3, 2, 0, True, P),
        (ALL, 3, 3, 0, True, A),
        (ALL, 3, 2, 1, False, R),
        (ALL, 3, 2, 1, True, R),
        (ALL, None, 1, 0, True, A),
        (ALL, None, 0, 0, True, P),
        (ALL, None, 0, 1, False, R),
        # n of m
        (TWO, 3, 1, 0, True, P),
        (TWO, 3, 2, 0, True, A),
        (TWO, 3, 1, 1, True, R),
        (TWO, 3, 1, 1, False, P),
        (TWO, 3, 0, 2, False, R),
        (TWO, None, 0, 9, False, P),
        (TWO, None, 2, 0, True, A),
        (TWO, 3, 3, 0, True, A),
    ],
)
def test_quorum_table(quorum, seats, approvals, rejections, strict, expected):
    outcome = evaluate(
        quorum,
        seats=seats,
        approvals=approvals,
        rejections=rejections,
        any_rejection_rejects=strict,
    )
    assert outcome is expected


def test_rejection_wins_over_approval_when_strict():
    assert evaluate(ANY, seats=3, approvals=1, rejections=1, any_rejection_rejects=True) is R


def test_negative_counts_refused():
    with pytest.raises(ValueError):
        evaluate(ANY, seats=1, approvals=-1, rejections=0, any_rejection_rejects=True)


def test_seats_for():
    named = Assignees(users=("a", "b", "b"))
    mixed = Assignees(users=("a", "b"), groups=("g",))
    groups = Assignees(roles=("r",))
    assert seats_for(ANY, named) == 2
    assert seats_for(ANY, mixed) is None
    assert seats_for(ALL, mixed) == 2  # all = every named user
    assert seats_for(ALL, groups) is None
    assert seats_for(TWO, mixed) is None
    assert required_approvals(ALL, 4) == 4
    assert required_approvals(TWO, None) == 2
    assert required_approvals(ANY, None) == 1


def test_assignees_helpers():
    a = Assignees(users=("u1",), groups=("g1",), roles=("r1", "r2"))
    assert a.size == 4 and not a.is_empty and Assignees().is_empty
    assert a.matches("u1")
    assert a.matches("x", groups=["g1"])
    assert a.matches("x", roles={"r2"})
    assert not a.matches("x", groups=["g2"], roles=["r3"])
    assert a.merged(Assignees(users=("u2", "u1"))).users == ("u1", "u2")
