import pytest

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.policies import (
    AutoApprovalPolicy,
    auto_approval_rule,
    check_justification,
    check_override,
)
from signoff.domain.templates import RiskLevel, StepDefinition, StepKind

BELOW_MEDIUM = AutoApprovalPolicy(below_risk=RiskLevel.MEDIUM, name="p")
LISTED = AutoApprovalPolicy(below_risk=RiskLevel.MEDIUM, actions=("list_events",), name="p")
EVERYTHING = AutoApprovalPolicy(
    below_risk=RiskLevel.CRITICAL, actions=("send_email", "wipe"), name="all"
)


def s(sensitive=False, action=None, kind=StepKind.APPROVAL):
    return StepDefinition(key="k", name="k", kind=kind, sensitive=sensitive, action=action)


def rule(policy, risk, **kw):
    return auto_approval_rule(policy, s(**kw), RiskLevel(risk))


def test_low_risk_below_medium_is_auto_approved_with_a_readable_rule():
    found = rule(BELOW_MEDIUM, "low")
    assert found is not None and "low risk is below medium" in found and "'p'" in found
    assert rule(BELOW_MEDIUM, "medium") is None


def test_a_policy_with_actions_needs_both_a_listed_action_and_a_low_enough_risk():
    found = rule(LISTED, "low", action="list_events")
    assert found is not None and "list_events" in found and "below medium" in found
    assert rule(LISTED, "medium", action="list_events") is None  # the action alone never decides
    assert rule(LISTED, "low", action="send_email") is None  # nor the risk alone
    assert rule(LISTED, "low") is None


def test_actions_without_below_risk_approve_low_risk_only():
    policy = AutoApprovalPolicy(actions=("list_events",), name="p")
    assert rule(policy, "low", action="list_events") is not None
    assert rule(policy, "medium", action="list_events") is None


@pytest.mark.parametrize("risk", ["high", "critical"])
def test_never_high_or_critical_whatever_the_policy(risk):
    assert rule(EVERYTHING, risk) is None
    assert rule(EVERYTHING, risk, action="send_email") is None


@pytest.mark.parametrize("risk", ["low", "medium"])
def test_never_sensitive_whatever_the_policy(risk):
    assert rule(EVERYTHING, risk, sensitive=True) is None
    assert rule(EVERYTHING, risk, sensitive=True, action="send_email") is None


def test_no_policy_no_rule_and_merges_and_decisions_never():
    assert rule(None, "low") is None
    assert rule(BELOW_MEDIUM, "low", kind=StepKind.MERGE) is None
    assert rule(BELOW_MEDIUM, "low", kind=StepKind.DECISION) is None


def refused(fn, *args, **kwargs):
    with pytest.raises(DomainError) as exc:
        fn(*args, **kwargs)
    return exc.value


def test_justification():
    assert check_justification(False, None) is None
    assert check_justification(False, "  note ") == "note"
    assert check_justification(True, " because ", 3) == "because"
    assert refused(check_justification, True, "  ", 1).code is ErrorCode.JUSTIFICATION_REQUIRED
    assert refused(check_justification, True, "ok", 10).code is ErrorCode.JUSTIFICATION_REQUIRED
    assert refused(check_justification, False, "x" * 4001).code is ErrorCode.INVALID_INPUT


GOOD = "the change window closes tonight and the approver is on leave"


def override(**kw):
    args = {
        "justification": GOOD,
        "min_length": 20,
    }
    args.update(kw)
    return check_override(**args)


def test_override_allowed_returns_the_justification():
    assert override() == GOOD


def test_override_needs_strong_justification():
    assert refused(override, justification="ok").code is ErrorCode.JUSTIFICATION_REQUIRED
    assert refused(override, justification=None).code is ErrorCode.JUSTIFICATION_REQUIRED
    assert refused(override, justification=" " * 40).code is ErrorCode.JUSTIFICATION_REQUIRED
