"""Typed records: an item, its steps, their decisions and timers, a template version.

They are built from database rows in exactly one place (`signoff.db.records`) and travel
through services, domain rules and the API as immutable values: a change is a new record
(`dataclasses.replace`), never a mutation, so that what a function was given is what it still
holds. Free-form documents (an item's payload, a step's params and result) stay mappings: they
are the submitter's data, not ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.domain.actors import Principal
from signoff.domain.states import ItemState, StepState
from signoff.domain.template_model import Assignees, Quorum, RiskLevel, StepKind, TemplateKind
from signoff.domain.timers import EscalationPlan, TimerKind


@dataclass(frozen=True, slots=True)
class StepAssignees:
    """Who may act on a step now: named users, groups, roles, and delegations.

    `delegates` maps a delegate to the assignee they act for (one hop: a delegate never
    delegates further).
    """

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    delegates: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Assignees) -> StepAssignees:
        """The assignees a template step names, with no delegation yet."""
        return cls(users=spec.users, groups=spec.groups, roles=spec.roles)

    @property
    def spec(self) -> Assignees:
        """The named users, groups and roles (without delegations)."""
        return Assignees(users=self.users, groups=self.groups, roles=self.roles)

    def names(self, principal: Principal) -> bool:
        """Whether `principal` is an assignee in their own right (user, group or role)."""
        return (
            principal.user_id in self.users
            or not principal.groups.isdisjoint(self.groups)
            or not principal.roles.isdisjoint(self.roles)
        )

    def matches(self, principal: Principal) -> bool:
        """Whether `principal` may act on the step: named, or somebody's delegate."""
        return self.names(principal) or principal.user_id in self.delegates

    def merged(self, other: Assignees) -> StepAssignees:
        """These assignees plus everyone `other` names (sorted, without duplicates)."""
        return StepAssignees(
            users=tuple(sorted({*self.users, *other.users})),
            groups=tuple(sorted({*self.groups, *other.groups})),
            roles=tuple(sorted({*self.roles, *other.roles})),
            delegates=self.delegates,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored on the step row and in audit events."""
        return {**self.spec.to_dict(), "delegates": dict(self.delegates)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepAssignees:
        """Read back `to_dict`."""
        spec = Assignees.from_dict(data)
        return cls(spec.users, spec.groups, spec.roles, dict(data.get("delegates") or {}))


class SeatVote(StrEnum):
    """What fills a seat."""

    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Seat:
    """One place in a step's quorum, fixed when the step activates.

    A seat is held by a named person (`holder`), or is open to any member of a `group` or
    holder of a `role`. Its `delegate` may fill it for the holder. Once a vote fills it,
    `filled_by` (and `acting_for`, for a delegate) say who; a filled seat never changes hands.
    """

    holder: str | None = None
    group: str | None = None
    role: str | None = None
    delegate: str | None = None
    vote: SeatVote | None = None
    filled_by: str | None = None
    acting_for: str | None = None

    @property
    def filled(self) -> bool:
        """Whether a vote fills the seat."""
        return self.vote is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored on the step row (only what is set)."""
        out = {
            "holder": self.holder,
            "group": self.group,
            "role": self.role,
            "delegate": self.delegate,
            "vote": self.vote.value if self.vote else None,
            "filled_by": self.filled_by,
            "acting_for": self.acting_for,
        }
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Seat:
        """Read back `to_dict`."""
        vote = data.get("vote")
        return cls(
            holder=data.get("holder"),
            group=data.get("group"),
            role=data.get("role"),
            delegate=data.get("delegate"),
            vote=SeatVote(vote) if vote else None,
            filled_by=data.get("filled_by"),
            acting_for=data.get("acting_for"),
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a step is held for a person (`ask_user`): the upstream steps that did not succeed,
    and the options offered (retry, skip, provide the value by hand, cancel)."""

    upstreams: tuple[str, ...]
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored on the step row."""
        return {"upstreams": list(self.upstreams), "since": self.since.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hold:
        """Read back `to_dict`."""
        return cls(tuple(data["upstreams"]), datetime.fromisoformat(data["since"]))


@dataclass(frozen=True, slots=True)
class Item:
    """One workflow item, as stored."""

    id: UUID
    tenant_id: str
    environment: str
    template_id: UUID
    kind: TemplateKind
    title: str
    state: ItemState
    priority: int
    risk: RiskLevel
    requester_id: str
    payload: Mapping[str, Any]
    plan: Mapping[str, Any] | None
    external_ref: str | None
    revision: int
    version: int
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an item, as stored."""

    id: UUID
    tenant_id: str
    item_id: UUID
    key: str
    name: str
    kind: StepKind
    position: int
    state: StepState
    assignees: StepAssignees
    quorum: Quorum
    risk: RiskLevel
    sensitive: bool
    action: str | None
    params: Mapping[str, Any]
    original_params: Mapping[str, Any] | None
    claimed_by: str | None
    decision_value: str | None
    result: Mapping[str, Any] | None
    error: str | None
    attempts: int
    escalation_level: int
    escalation_plan: EscalationPlan | None
    activated_at: datetime | None
    due_at: datetime | None
    decided_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    seats: tuple[Seat, ...] = ()
    needed: int = 1
    declared_risk: RiskLevel | None = None
    waived: tuple[str, ...] = ()
    hold: Hold | None = None


class DecisionOutcome(StrEnum):
    """What a stored decision says."""

    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    APPROVE_BY_POLICY = "approve_by_policy"
    OVERRIDE = "override"
    OVERRIDE_REQUESTED = "override_requested"


@dataclass(frozen=True, slots=True)
class Decision:
    """One person's (or a rule's) decision on a step, in one revision of its item."""

    id: UUID
    seq: int
    tenant_id: str
    item_id: UUID
    step_id: UUID
    revision: int
    actor_id: str
    acting_for: str | None
    outcome: DecisionOutcome
    reason: str | None
    rule: str | None
    created_at: datetime
    seat: int | None = None


class TimerStatus(StrEnum):
    """Where a stored timer stands."""

    ARMED = "armed"
    FIRED = "fired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Timer:
    """A stored timer of a step: the truth the job queue only accelerates."""

    id: UUID
    tenant_id: str
    item_id: UUID
    step_id: UUID
    kind: TimerKind
    level: int | None
    due_at: datetime
    token: str
    status: TimerStatus
    payload: Mapping[str, Any]
    fired_at: datetime | None
    created_at: datetime


class TemplateStatus(StrEnum):
    """A template version's lifecycle: drafts change, published versions never do."""

    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    """One stored version of a template; `definition` is its normalised document."""

    id: UUID
    tenant_id: str
    key: str
    version: int
    name: str
    kind: TemplateKind
    status: TemplateStatus
    definition: Mapping[str, Any]
    created_by: str
    created_at: datetime
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class OverdueStep:
    """An active step past its SLA, or holding timers that should have fired."""

    step_id: UUID
    item_id: UUID
    key: str
    title: str
    due_at: datetime | None
    next_timer_at: datetime | None
    stuck_timers: int
