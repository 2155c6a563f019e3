"""GraphQL enums for the domain's enums, each value described for schema readers.

The domain enums stay free of strawberry; their GraphQL descriptions live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

import strawberry

from signoff.domain.errors import ErrorCode
from signoff.domain.records import SeatVote
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import ItemState, StepState
from signoff.domain.templates import RiskLevel, StepKind, TemplateKind

E = TypeVar("E", bound=type[Enum])


def described_enum(
    cls: E, description: str, values: Mapping[Any, str], name: str | None = None
) -> E:
    """Register `cls` as a GraphQL enum and give every value its description."""
    missing = [m for m in cls if m not in values]  # type: ignore[attr-defined]
    if missing:
        raise ValueError(f"{cls.__name__}: no description for {missing}")
    enum_type = strawberry.enum(cls, name=name, description=description)
    for value in enum_type.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[cls(value.value)]
    return enum_type


ITEM_STATES = {
    ItemState.PENDING: "In review: at least one step still waits for a decision.",
    ItemState.CHANGES_REQUESTED: "Sent back to the requester, who may resubmit a new revision.",
    ItemState.APPROVED: "Every required step approved; a plan may start executing.",
    ItemState.EXECUTING: "Approved steps are being carried out.",
    ItemState.COMPLETED: "Done (terminal).",
    ItemState.REJECTED: "Refused; an override can still approve it.",
    ItemState.CANCELLED: "Withdrawn (terminal).",
    ItemState.EXPIRED: "Its SLA ran out; an override can still approve it.",
    ItemState.FAILED: "A step failed; retry, skip, continue or compensate.",
    ItemState.COMPENSATING: "Completed steps are being undone, newest first.",
    ItemState.COMPENSATED: "Everything done was undone (terminal).",
}
STEP_STATES = {
    StepState.WAITING: "Waits for the steps it depends on.",
    StepState.HELD: (
        "An upstream step did not succeed and the template asks a person what to do: "
        "retry it, skip this step, provide the value by hand, or cancel the item."
    ),
    StepState.ACTIVE: "Open for its assignees to decide.",
    StepState.APPROVED: "Approved (by people, a policy, or an override).",
    StepState.REJECTED: "Rejected.",
    StepState.CHANGES_REQUESTED: "A reviewer asked the requester for changes.",
    StepState.SKIPPED: "Will not run (branch not taken, dependency failed, or skipped).",
    StepState.CANCELLED: "Cancelled with its item.",
    StepState.EXPIRED: "Its SLA ran out.",
    StepState.RUNNING: "Being executed.",
    StepState.COMPLETED: "Executed successfully.",
    StepState.FAILED: "Execution failed.",
    StepState.COMPENSATED: "Its effect was undone.",
}
ITEM_KINDS = {
    TemplateKind.APPROVAL: "An approval request.",
    TemplateKind.EXCEPTION_REQUEST: "A request for an exception to a rule.",
    TemplateKind.ESCALATION: "An escalation.",
    TemplateKind.INCIDENT_REVIEW: "An incident review.",
    TemplateKind.PLAN: "An agent plan: steps submitted with the item, approved one by one.",
}
STEP_KINDS = {
    StepKind.APPROVAL: "People approve or reject.",
    StepKind.TASK: "People do something and mark it done.",
    StepKind.DECISION: "People choose one of the step's options; branches follow the choice.",
    StepKind.MERGE: "Waits for its inbound branches; no person acts.",
}
RISK_LEVELS = {
    RiskLevel.LOW: "Low risk.",
    RiskLevel.MEDIUM: "Medium risk.",
    RiskLevel.HIGH: "High risk: never auto-approved.",
    RiskLevel.CRITICAL: "Critical risk: never auto-approved.",
}
ERROR_CODES = {
    ErrorCode.UNAUTHENTICATED: "No valid bearer token.",
    ErrorCode.FORBIDDEN: "The caller may not do this.",
    ErrorCode.NOT_FOUND: "No such object, or not visible to the caller.",
    ErrorCode.INVALID_INPUT: "The input is malformed or breaks a rule; see field/problems.",
    ErrorCode.ILLEGAL_TRANSITION: "Not allowed in the object's current state.",
    ErrorCode.VERSION_CONFLICT: "The item changed since the version you sent.",
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "The idempotency key was used for a different request.",
    ErrorCode.LIMIT_EXCEEDED: "A configured limit would be exceeded.",
    ErrorCode.SEPARATION_OF_DUTIES: "The same person may not fill both roles.",
    ErrorCode.JUSTIFICATION_REQUIRED: "A (longer) reason or justification is required.",
    ErrorCode.TEMPLATE_INVALID: "The template has problems; each is listed with its path.",
    ErrorCode.TEMPLATE_NOT_PUBLISHED: "No published template with that key (and version).",
    ErrorCode.TEMPLATE_IMMUTABLE: "A published template version cannot change.",
    ErrorCode.DEPENDENCY_UNMET: "A step it depends on has not succeeded.",
    ErrorCode.ALREADY_DECIDED: "The step was already decided.",
    ErrorCode.ALREADY_CLAIMED: "Somebody else claimed the step.",
    ErrorCode.CONTENT_TYPE_NOT_ALLOWED: "Files of this media type are not accepted (or it is "
    "not the declared one).",
    ErrorCode.INTEGRITY_CHECK_FAILED: "The bytes do not match their sha256 (declared on "
    "upload, or recorded for a stored file).",
    ErrorCode.UPLOAD_EXPIRED: "The upload URL expired; ask for a new one.",
    ErrorCode.UPLOAD_IN_PROGRESS: "Another upload to this URL is running.",
    ErrorCode.RATE_LIMITED: "The caller's cost budget is spent; retry after `retryAfter` s.",
    ErrorCode.TIMEOUT: "The operation ran longer than the server allows; nothing was kept.",
}

HOLD_OPTIONS = {
    HoldOption.RETRY: "Review the failed upstream steps again (their seats vote anew).",
    HoldOption.SKIP: "Skip the held step.",
    HoldOption.PROVIDE: "Give by hand the value the failed upstream steps would have provided.",
    HoldOption.CANCEL: "Cancel the whole item.",
}
SEAT_VOTES = {
    SeatVote.APPROVE: "The seat approved.",
    SeatVote.REJECT: "The seat rejected.",
}

ItemStateEnum = described_enum(ItemState, "Lifecycle state of an item.", ITEM_STATES)
StepStateEnum = described_enum(StepState, "Lifecycle state of a step.", STEP_STATES)
ItemKindEnum = described_enum(TemplateKind, "What kind of item.", ITEM_KINDS, name="ItemKind")
StepKindEnum = described_enum(StepKind, "What kind of step.", STEP_KINDS)
RiskLevelEnum = described_enum(RiskLevel, "Risk level, low to critical.", RISK_LEVELS)
HoldOptionEnum = described_enum(
    HoldOption, "What may be done about a step held for a person.", HOLD_OPTIONS
)
SeatVoteEnum = described_enum(SeatVote, "The vote that fills a seat.", SEAT_VOTES)
ErrorCodeEnum = described_enum(
    ErrorCode,
    "Stable machine-readable error codes; clients switch on these, never on text.",
    ERROR_CODES,
)
