"""Policies: when automation may decide, and what an override and a justification need.

Auto-approval (seed 003 "approval preferences") lets a template approve low-stakes steps without
a person. Separation of duties (`seats.py`) and the override rules are the counterweight: they
are the reason an approval means something, so they are checked in one place each, and never
relaxed by a policy.
"""

from __future__ import annotations

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.template_model import (
    AutoApprovalPolicy,
    RiskLevel,
    StepDefinition,
    StepKind,
)

__all__ = [
    "DEFAULT_MIN_JUSTIFICATION",
    "MAX_REASON",
    "AutoApprovalPolicy",
    "auto_approval_rule",
    "check_justification",
    "check_override",
]

DEFAULT_MIN_JUSTIFICATION = 20
"""Shortest justification accepted for an override: long enough to say why, not "ok"."""

MAX_REASON = 4000
"""Longest reason or justification accepted."""


def auto_approval_rule(
    policy: AutoApprovalPolicy | None, step: StepDefinition, risk: RiskLevel
) -> str | None:
    """The rule, in words for the audit trail, under which `policy` approves `step` whose
    assessed risk is `risk`; else None.

    A policy naming actions approves only a listed action whose assessed risk is below its
    `below_risk` (low only, when it names none): the action alone never decides, because the
    risk an agent declares about itself cannot lower what the template assessed. Sensitive
    steps and high or critical risk are never auto-approved, whatever the policy says; merge
    steps decide nothing, and a decision step needs a person to choose its branch.
    """
    if policy is None or step.sensitive or risk.is_elevated:
        return None
    if step.kind in (StepKind.MERGE, StepKind.DECISION):
        return None
    below = policy.below_risk
    if policy.actions:
        below = below or RiskLevel.MEDIUM
        if step.action in policy.actions and risk.rank < below.rank:
            return (
                f"policy {policy.name!r}: action {step.action!r} at {risk.value} risk "
                f"(below {below.value}) is approved automatically"
            )
        return None
    if below is not None and risk.rank < below.rank:
        return f"policy {policy.name!r}: {risk.value} risk is below {below.value}"
    return None


def check_justification(
    required: bool,
    justification: str | None,
    min_length: int = 1,
    *,
    why: str = "",
    field: str = "reason",
) -> str | None:
    """The trimmed justification, or JUSTIFICATION_REQUIRED when one is required and missing
    or shorter than `min_length`; INVALID_INPUT when longer than `MAX_REASON`."""
    text = (justification or "").strip()
    if len(text) > MAX_REASON:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{field} is longer than {MAX_REASON} characters", field
        )
    if not required:
        return text or None
    if len(text) < max(min_length, 1):
        what = "a reason" if min_length <= 1 else f"a {field} of at least {min_length} characters"
        raise DomainError(
            ErrorCode.JUSTIFICATION_REQUIRED, f"{what} is required {why}".strip(), field
        )
    return text


def check_override(justification: str | None, min_length: int) -> str:
    """The justification of an override, or why it is refused.

    An override bypasses the normal decision, so it is never a side path: it needs the
    `override` permission (checked by the progression, `domain/permissions.py`) and a
    justification of at least `min_length` characters (JUSTIFICATION_REQUIRED). The second
    pair of eyes on a sensitive step is the progression's business (a request, then another
    person's confirmation).
    """
    text = check_justification(
        True, justification, min_length, why="to override", field="justification"
    )
    assert text is not None
    return text
