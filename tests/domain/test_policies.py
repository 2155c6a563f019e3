import pytest

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.policies import (
    AutoApprovalPolicy,
    auto_approval_rule,
    check_can_decide,
    check_justification,
    check_override,
)
from signoff.domain.templates import RiskLevel, StepDefinition, StepKind

BELOW_MEDIUM = AutoApprovalPolicy(below_risk=RiskLevel.MEDIUM, actions=("list_events",), name="p")
EVERYTHING = AutoApprovalPolicy(
    below_risk=RiskLevel.CRITICAL, actions=("send_email", "wipe"), name="all"
)


def s(risk="low", sensitive=False, action=None, kind=StepKind.APPROVAL):
    return StepDefinition(
        key="k", name="k", kind=kind, risk=RiskLevel(risk), sensitive=sensitive, action=action
    )


def test_low_risk_below_medium_is_auto_approved_with_a_readable_rule():
    rule = auto_approval_rule(BELOW_MEDIUM, s("low"))
    assert rule is not None and "low risk is below medium" in rule and "'p'" in rule


def test_medium_not_below_medium():
    assert auto_approval_rule(BELOW_MEDIUM, s("medium")) is None


def test_listed_action_is_auto_approved():
    assert "list_events" in (
        auto_approval_rule(BELOW_MEDIUM, s("medium", action="list_events")) or ""
    )


@pytest.mark.parametrize("risk", ["high", "critical"])
def test_never_high_or_critical_whatever_the_policy(risk):
    assert auto_approval_rule(EVERYTHING, s(risk)) is None
    assert auto_approval_rule(EVERYTHING, s(risk, action="send_email")) is None


@pytest.mark.parametrize("risk", ["low", "medium"])
def test_never_sensitive_whatever_the_policy(risk):
    assert auto_approval_rule(EVERYTHING, s(risk, sensitive=True)) is None
    assert auto_approval_rule(EVERYTHING, s(risk, sensitive=True, action="send_email")) is None


def test_no_policy_no_rule_and_merges_never():
    assert auto_approval_rule(None, s("low")) is None
    assert auto_approval_rule(BELOW_MEDIUM, s("low", kind=StepKind.MERGE)) is None


def sod(fn, *args, **kwargs):
    with pytest.raises(DomainError) as exc:
        fn(*args, **kwargs)
    return exc.value


def test_requester_cannot_decide_own_item():
    err = sod(check_can_decide, "ann", "ann")
    assert err.code is ErrorCode.SEPARATION_OF_DUTIES


def test_one_person_one_seat():
    assert sod(check_can_decide, "bob", "ann", None, ["bob"]).code is ErrorCode.SEPARATION_OF_DUTIES


def test_delegate_cannot_approve_delegators_own_request():
    err = sod(check_can_decide, "bob", "ann", "ann", [])
    assert err.code is ErrorCode.SEPARATION_OF_DUTIES and "delegator" in err.message


def test_delegate_cannot_fill_a_second_seat_for_delegator():
    assert (
        sod(check_can_decide, "bob", "ann", "carl", ["carl"]).code is ErrorCode.SEPARATION_OF_DUTIES
    )


def test_allowed_decisions():
    check_can_decide("bob", "ann", None, ["carl"])
    check_can_decide("bob", "ann", "carl", ["dave"])
    check_can_decide("bob", None)


def test_justification():
    check_justification(False, None)
    check_justification(True, "because", 3)
    assert sod(check_justification, True, "  ", 1).code is ErrorCode.JUSTIFICATION_REQUIRED
    assert sod(check_justification, True, "ok", 10).code is ErrorCode.JUSTIFICATION_REQUIRED


GOOD = "the change window closes tonight and the approver is on leave"


def override(**kw):
    args = {
        "actor_roles": ["admin"],
        "elevated_roles": ["admin", "security"],
        "justification": GOOD,
        "min_length": 20,
        "sensitive": False,
        "second_approver": None,
        "actor_id": "ann",
    }
    args.update(kw)
    return check_override(**args)


def test_override_allowed():
    override()
    override(sensitive=True, second_approver="bob")


def test_override_needs_elevated_role():
    assert sod(override, actor_roles=["user"]).code is ErrorCode.FORBIDDEN
    assert sod(override, elevated_roles=[]).code is ErrorCode.FORBIDDEN


def test_override_needs_strong_justification():
    assert sod(override, justification="ok").code is ErrorCode.JUSTIFICATION_REQUIRED
    assert sod(override, justification=None).code is ErrorCode.JUSTIFICATION_REQUIRED
    assert sod(override, justification=" " * 40).code is ErrorCode.JUSTIFICATION_REQUIRED


def test_sensitive_override_needs_a_different_second_approver():
    assert sod(override, sensitive=True).code is ErrorCode.SEPARATION_OF_DUTIES
    assert (
        sod(override, sensitive=True, second_approver="ann").code is ErrorCode.SEPARATION_OF_DUTIES
    )


def test_role_is_checked_before_justification():
    assert sod(override, actor_roles=[], justification="").code is ErrorCode.FORBIDDEN
