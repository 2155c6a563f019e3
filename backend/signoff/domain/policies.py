"""Policies: when automation may decide, and who may decide at all.

Auto-approval (seed 003 "approval preferences") lets a template approve low-stakes steps without
a person. Separation of duties and the override rules are the counterweight: they are the
reason an approval means something, so they are checked here, in one place, and never relaxed
by a policy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.template_model import AutoApprovalPolicy, StepDefinition, StepKind

__all__ = [
    "DEFAULT_MIN_JUSTIFICATION",
    "AutoApprovalPolicy",
    "auto_approval_rule",
    "check_can_decide",
    "check_justification",
    "check_override",
]

DEFAULT_MIN_JUSTIFICATION = 20
"""Shortest justification accepted for an override: long enough to say why, not "ok"."""


def auto_approval_rule(policy: AutoApprovalPolicy | None, step: StepDefinition) -> str | None:
    """The rule, in words for the audit trail, under which `policy` approves `step`; else None.

    Sensitive steps and high or critical risk are never auto-approved, whatever the policy says:
    a policy is written once by an admin, the harm of a wrong high-risk decision is not bounded
    by that admin's foresight. Merge steps decide nothing, so no rule applies to them.
    """
    if policy is None or step.sensitive or step.risk.is_elevated:
        return None
    if step.kind is StepKind.MERGE:
        return None
    if policy.below_risk is not None and step.risk.rank < policy.below_risk.rank:
        return f"policy {policy.name!r}: {step.risk.value} risk is below {policy.below_risk.value}"
    if step.action is not None and step.action in policy.actions:
        return f"policy {policy.name!r}: action {step.action!r} is approved automatically"
    return None


def _sod(message: str, **details: object) -> DomainError:
    return DomainError(ErrorCode.SEPARATION_OF_DUTIES, message, details=dict(details))


def check_can_decide(
    actor: str,
    requester: str | None,
    delegator: str | None = None,
    previous_voters: Iterable[str] = (),
) -> None:
    """Refuse a vote that would break separation of duties.

    `delegator` is the person `actor` stands in for, if acting under a delegation. The rules: a
    requester cannot approve their own item; one person fills at most one seat (a delegate
    cannot vote again for a delegator who already voted, nor vote both as themself and as the
    delegate); a delegate cannot approve the delegator's own request.
    """
    voters: Collection[str] = set(previous_voters)
    if requester is not None and actor == requester:
        raise _sod("the requester cannot decide their own item", actor=actor)
    if delegator is not None and delegator == requester:
        raise _sod(
            "a delegate cannot decide the delegator's own request",
            actor=actor,
            delegator=delegator,
        )
    if actor in voters:
        raise _sod("one person fills at most one seat: you already voted", actor=actor)
    if delegator is not None and delegator in voters:
        raise _sod(
            "one person fills at most one seat: the delegator already voted",
            actor=actor,
            delegator=delegator,
        )


def check_justification(required: bool, justification: str | None, min_length: int = 1) -> None:
    """Refuse a decision on a step requiring a justification when none (or too short) is given."""
    if not required:
        return
    text = (justification or "").strip()
    if len(text) < max(min_length, 1):
        raise DomainError(
            ErrorCode.JUSTIFICATION_REQUIRED,
            f"this step requires a justification of at least {max(min_length, 1)} characters",
            field="justification",
        )


def check_override(
    actor_roles: Iterable[str],
    elevated_roles: Iterable[str],
    justification: str | None,
    min_length: int,
    sensitive: bool,
    second_approver: str | None,
    actor_id: str,
) -> None:
    """Refuse an override that lacks the role, the justification or the second pair of eyes.

    An override bypasses the normal decision, so it is never a side path: it needs one of the
    elevated roles (FORBIDDEN otherwise), a justification of at least `min_length` characters
    (JUSTIFICATION_REQUIRED), and on a sensitive step a second approver who is not the
    overrider (SEPARATION_OF_DUTIES).
    """
    elevated = set(elevated_roles)
    if not elevated or elevated.isdisjoint(actor_roles):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "overriding needs one of the roles: " + (", ".join(sorted(elevated)) or "(none set)"),
        )
    text = (justification or "").strip()
    if len(text) < max(min_length, 1):
        raise DomainError(
            ErrorCode.JUSTIFICATION_REQUIRED,
            f"an override needs a justification of at least {max(min_length, 1)} characters",
            field="justification",
        )
    if sensitive:
        if not second_approver:
            raise _sod("overriding a sensitive step needs a second approver", actor=actor_id)
        if second_approver == actor_id:
            raise _sod(
                "the second approver of an override must be someone other than the overrider",
                actor=actor_id,
            )
