"""GraphQL enums for the domain's enums, each value described for schema readers.

The domain enums stay free of strawberry; their GraphQL descriptions live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Any, TypeVar

import strawberry

from signoff.domain.diagram_svg import DiagramFormat
from signoff.domain.errors import ErrorCode
from signoff.domain.events import DecisionChoice
from signoff.domain.evidence import EvidenceSource
from signoff.domain.records import DecisionOutcome, SeatVote, TemplateStatus, TimerStatus
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import ItemState, StepState
from signoff.domain.templates import (
    DependencyEffect,
    QuorumMode,
    Resolution,
    RiskLevel,
    StepKind,
    TemplateKind,
)
from signoff.domain.timers import TimerKind
from signoff.notify.model import DeliveryStatus

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
    ErrorCode.EXPORT_EXPIRED: "The audit export's file was removed by retention; request "
    "the export again.",
    ErrorCode.RATE_LIMITED: "The caller's cost budget is spent; retry after `retryAfter` s.",
    ErrorCode.TIMEOUT: "The operation ran longer than the server allows; nothing was kept.",
    ErrorCode.UNKNOWN_TENANT: "The token names a tenant nobody created; an administrator creates "
    "tenants (`signoff tenants create`).",
    ErrorCode.LINK_INVALID: "Not a decision link of this deployment (tampered, truncated, or "
    "another kind of token).",
    ErrorCode.LINK_EXPIRED: "The decision link has expired; decide in the inbox instead.",
    ErrorCode.LINK_USED: "The decision link (or its sibling with the other outcome) already "
    "decided; a link decides once.",
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


class ImpactOutcome(StrEnum):
    """What a change to an upstream step would do to a dependent step."""

    SKIP = "skip"
    ASK_USER = "ask_user"
    FALLBACK = "fallback"
    CANCEL = "cancel"
    NONE = "none"
    WAIT = "wait"


class NotificationKind(StrEnum):
    """Why a person is notified (the kinds of `domain/notification_policy.py`)."""

    ASSIGNMENT = "assignment"
    MENTION = "mention"
    DECISION = "decision"
    ESCALATION = "escalation"
    REMINDER = "reminder"
    DEADLINE_RISK = "deadline_risk"
    FAILURE = "failure"
    DEPENDENCY_CONFLICT = "dependency_conflict"
    ALERT = "alert"
    DIGEST = "digest"


NotificationPreferenceKind = StrEnum(  # type: ignore[misc]
    "NotificationPreferenceKind",
    {
        **{k.name: k.value for k in NotificationKind if k is not NotificationKind.DIGEST},
        "DEFAULT": "default",
    },
)
"""What a person's channel preference applies to: a kind they can be notified of (every
`NotificationKind` but a digest: `domain/notification_policy.py::NOTIFIABLE_KINDS`), or every
kind without its own entry (DEFAULT)."""


class NotificationPriority(StrEnum):
    """How urgent a notification is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class PayloadFieldType(StrEnum):
    """The JSON type of a payload field (`domain/payloads.py::FIELD_TYPES`)."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class ReplayDifferenceKind(StrEnum):
    """What differs for one replayed item under a draft (`domain/simulation.py::compare`)."""

    STEP_REMOVED = "step_removed"
    STEP_ADDED = "step_added"
    ASSIGNEES = "assignees"
    STATE = "state"
    DEADLINE = "deadline"
    BREACH = "breach"
    AUTO_APPROVAL = "auto_approval"
    NOTIFICATIONS = "notifications"
    OUTCOME = "outcome"


DecisionOutcomeEnum = described_enum(
    DecisionOutcome,
    "What a stored decision says.",
    {
        DecisionOutcome.APPROVE: "Approved (a vote towards the quorum).",
        DecisionOutcome.REJECT: "Rejected.",
        DecisionOutcome.REQUEST_CHANGES: "Sent back to the requester for changes.",
        DecisionOutcome.APPROVE_BY_POLICY: "Approved by an auto-approval rule (`rule` names it).",
        DecisionOutcome.OVERRIDE: "Decided by an override.",
        DecisionOutcome.OVERRIDE_REQUESTED: "An override on a sensitive step, waiting for a "
        "second person to confirm it.",
    },
)
DecisionChoiceEnum = described_enum(
    DecisionChoice,
    "The decision of a batch entry or a decision link.",
    {
        DecisionChoice.APPROVE: "Approve the step (as `approveStep`).",
        DecisionChoice.REJECT: "Reject the step (as `rejectStep`; a reason is required).",
    },
)
DiagramFormatEnum = described_enum(
    DiagramFormat,
    "How a step graph is drawn (docs/reference/diagrams.md).",
    {
        DiagramFormat.MERMAID: "Mermaid flowchart text, drawn by the client (mermaid.js, GitHub).",
        DiagramFormat.SVG: "A standalone SVG document, laid out on the server.",
    },
)
TemplateStatusEnum = described_enum(
    TemplateStatus,
    "A template version's lifecycle.",
    {
        TemplateStatus.DRAFT: "Saved, may still change; items cannot use it.",
        TemplateStatus.PUBLISHED: "Immutable; items are submitted against it.",
        TemplateStatus.RETIRED: "No new items; existing ones go on.",
    },
)
QuorumModeEnum = described_enum(
    QuorumMode,
    "How many approvals a step needs.",
    {
        QuorumMode.ANY: "One approval.",
        QuorumMode.ALL: "Every seat approves.",
        QuorumMode.N_OF_M: "`n` approvals of the seats.",
    },
)
TimerStatusEnum = described_enum(
    TimerStatus,
    "Where a stored timer stands.",
    {
        TimerStatus.ARMED: "Waiting for its time.",
        TimerStatus.FIRED: "It acted.",
        TimerStatus.CANCELLED: "Voided before it fired (the step moved on).",
    },
)
TimerKindEnum = described_enum(
    TimerKind,
    "Why a timer fires.",
    {
        TimerKind.SLA: "The step's deadline: its timeout action.",
        TimerKind.REMINDER: "A reminder to the assignees.",
        TimerKind.DEADLINE_RISK: "A warning that the deadline is near.",
        TimerKind.ESCALATION: "An escalation level.",
        TimerKind.HOLD: "How long a step held for a person waits.",
    },
)
DependencyEffectEnum = described_enum(
    DependencyEffect,
    "How much a step needs its upstream step.",
    {
        DependencyEffect.BLOCKS: "It cannot go on without it.",
        DependencyEffect.ENHANCES: "It is better with it, but may go on without.",
        DependencyEffect.OPTIONAL: "Nice to have.",
    },
)
DependencyResolutionEnum = described_enum(
    Resolution,
    "What happens to a dependent step when its upstream does not succeed.",
    {
        Resolution.WAIT: "Wait (for an override, a reopening or a retry).",
        Resolution.SKIP: "Skip the dependent step.",
        Resolution.FALLBACK: "Go on with the template's fallback value.",
        Resolution.ASK_USER: "Hold the dependent step for a person to decide.",
    },
    name="DependencyResolution",
)
ImpactOutcomeEnum = described_enum(
    ImpactOutcome,
    "What a change to an upstream step would do to a dependent step.",
    {
        ImpactOutcome.SKIP: "It would be skipped.",
        ImpactOutcome.ASK_USER: "It would be held for a person.",
        ImpactOutcome.FALLBACK: "It would go on with the fallback value.",
        ImpactOutcome.CANCEL: "The item would end.",
        ImpactOutcome.NONE: "It would go on.",
        ImpactOutcome.WAIT: "It would wait.",
    },
)
NOTIFICATION_KINDS = {
    NotificationKind.ASSIGNMENT: "A step now needs them.",
    NotificationKind.MENTION: "A comment `@mentions` them.",
    NotificationKind.DECISION: "An item they requested or reviewed was decided.",
    NotificationKind.ESCALATION: "A step was escalated to them.",
    NotificationKind.REMINDER: "A step still waits for them.",
    NotificationKind.DEADLINE_RISK: "A step's deadline is near (bypasses quiet hours).",
    NotificationKind.FAILURE: "An approved step failed in execution.",
    NotificationKind.DEPENDENCY_CONFLICT: "A step's dependency did not succeed.",
    NotificationKind.ALERT: "An alert rule that names them fired or cleared.",
    NotificationKind.DIGEST: "Several notifications folded into one.",
}
NotificationKindEnum = described_enum(
    NotificationKind, "Why a person is notified.", NOTIFICATION_KINDS
)
NotificationPreferenceKindEnum = described_enum(
    NotificationPreferenceKind,
    "What a channel preference applies to: one kind of notification, or DEFAULT for every "
    "kind without an entry of its own.",
    {
        NotificationPreferenceKind("default"): "Every kind without an entry of its own.",
        **{
            NotificationPreferenceKind(kind.value): text
            for kind, text in NOTIFICATION_KINDS.items()
            if kind is not NotificationKind.DIGEST
        },
    },
)
NotificationPriorityEnum = described_enum(
    NotificationPriority,
    "How urgent a notification is.",
    {
        NotificationPriority.LOW: "May wait for a digest.",
        NotificationPriority.NORMAL: "Sent now; may be folded into a digest in a burst.",
        NotificationPriority.HIGH: "Sent now.",
        NotificationPriority.URGENT: "Sent now, even in quiet hours.",
    },
)
NotificationAttemptStatusEnum = described_enum(
    DeliveryStatus,
    "The outcome of one delivery attempt.",
    {
        DeliveryStatus.DELIVERED: "The channel accepted it.",
        DeliveryStatus.FAILED_RETRYABLE: "It failed; it is tried again.",
        DeliveryStatus.FAILED_PERMANENT: "It failed for good.",
    },
    name="NotificationAttemptStatus",
)
EvidenceSourceEnum = described_enum(
    EvidenceSource,
    "How an evidence file came to be.",
    {
        EvidenceSource.UPLOAD: "A person uploaded it.",
        EvidenceSource.SNAPSHOT: "signoff made it (e.g. the payload an incident review "
        "was opened from).",
    },
)
ReplayDifferenceKindEnum = described_enum(
    ReplayDifferenceKind,
    "What differs for one replayed item under a draft.",
    {
        ReplayDifferenceKind.STEP_REMOVED: "The draft has no such step.",
        ReplayDifferenceKind.STEP_ADDED: "The draft adds the step.",
        ReplayDifferenceKind.ASSIGNEES: "Other assignees.",
        ReplayDifferenceKind.STATE: "The step would end in another state.",
        ReplayDifferenceKind.DEADLINE: "Another SLA deadline.",
        ReplayDifferenceKind.BREACH: "The SLA would (not) be breached.",
        ReplayDifferenceKind.AUTO_APPROVAL: "Another auto-approval rule (or none).",
        ReplayDifferenceKind.NOTIFICATIONS: "Another number of notifications.",
        ReplayDifferenceKind.OUTCOME: "The item would end in another state.",
    },
)
PayloadFieldTypeEnum = described_enum(
    PayloadFieldType,
    "The JSON type of a payload field.",
    {
        PayloadFieldType.STRING: "A string.",
        PayloadFieldType.NUMBER: "A number (integer or not).",
        PayloadFieldType.INTEGER: "An integer.",
        PayloadFieldType.BOOLEAN: "true or false.",
        PayloadFieldType.OBJECT: "A JSON object.",
        PayloadFieldType.ARRAY: "A JSON array.",
    },
)
