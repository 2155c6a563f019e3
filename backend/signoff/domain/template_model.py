"""The template model: enums and frozen dataclasses that describe a review process.

`templates.py` parses and serialises these; `policies.py`, `dependencies.py`, `timers.py` and
`simulation.py` read them. Keeping the model in its own module lets those modules depend on it
without depending on each other (the auto-approval policy is part of a template, and the policy
rules need the step model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from signoff.domain.errors import DomainError, ErrorCode


class TemplateKind(StrEnum):
    """What kind of workflow item a template reviews."""

    APPROVAL = "approval"
    EXCEPTION_REQUEST = "exception_request"
    ESCALATION = "escalation"
    INCIDENT_REVIEW = "incident_review"
    PLAN = "plan"


class StepKind(StrEnum):
    """What a step asks of people.

    `merge` asks nothing of anyone: it is a join point that resolves once every inbound branch
    has resolved, which is why it needs no assignees.
    """

    APPROVAL = "approval"
    TASK = "task"
    DECISION = "decision"
    MERGE = "merge"


_RISK_ORDER = ("low", "medium", "high", "critical")


class RiskLevel(StrEnum):
    """How much harm a wrong decision can do. Ordered: compare with `rank`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for critical; string comparison would order them alphabetically."""
        return _RISK_ORDER.index(self.value)

    @property
    def is_elevated(self) -> bool:
        """High and critical: the levels no automation may ever decide."""
        return self.rank >= RiskLevel.HIGH.rank


class QuorumMode(StrEnum):
    """How many approvals a step needs."""

    ANY = "any"
    ALL = "all"
    N_OF_M = "n_of_m"


class DependencyEffect(StrEnum):
    """How much a step needs its upstream step (seed 003)."""

    BLOCKS = "blocks"
    ENHANCES = "enhances"
    OPTIONAL = "optional"


class Resolution(StrEnum):
    """What happens to a dependent step when its upstream does not succeed (seed 003)."""

    WAIT = "wait"
    SKIP = "skip"
    FALLBACK = "fallback"
    ASK_USER = "ask_user"


class TimeoutAction(StrEnum):
    """What the SLA deadline does to a step still open."""

    ESCALATE = "escalate"
    EXPIRE = "expire"
    REJECT = "reject"
    APPROVE = "approve"


class EscalationActionKind(StrEnum):
    """What an escalation level does when it fires."""

    NOTIFY = "notify"
    ADD_ASSIGNEES = "add_assignees"
    REASSIGN = "reassign"
    RAISE_PRIORITY = "raise_priority"


@dataclass(frozen=True)
class Assignees:
    """Who may decide a step: named users, groups and roles, and the seats each holds.

    A named user is one seat. A group or a role is as many seats as `counts` states for its
    name (one when it states nothing): any member may fill one of them. Seats are counted
    from the template, not from a directory, so a quorum is known when the template is saved
    (see docs/reference/separation-of-duties.md).
    """

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when nobody at all could act on the step."""
        return not (self.users or self.groups or self.roles)

    def count_of(self, name: str) -> int:
        """Seats a group or role holds (one unless the template states more)."""
        return self.counts.get(name, 1)

    @property
    def seat_count(self) -> int:
        """Seats these assignees hold: one per distinct user, the stated count per group/role."""
        return (
            len(set(self.users))
            + sum(self.count_of(g) for g in dict.fromkeys(self.groups))
            + sum(self.count_of(r) for r in dict.fromkeys(self.roles))
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored on steps, plans and timers (seat counts only when stated)."""
        out: dict[str, Any] = {
            "users": list(self.users),
            "groups": list(self.groups),
            "roles": list(self.roles),
        }
        if self.counts:
            out["seats"] = dict(self.counts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assignees:
        """Read back `to_dict` (extra keys such as delegates are ignored)."""
        return cls(
            users=tuple(data.get("users", ())),
            groups=tuple(data.get("groups", ())),
            roles=tuple(data.get("roles", ())),
            counts=dict(data.get("seats") or {}),
        )

    def merged(self, other: Assignees) -> Assignees:
        """The union, keeping first-seen order so that rendering stays stable."""
        return Assignees(
            users=tuple(dict.fromkeys(self.users + other.users)),
            groups=tuple(dict.fromkeys(self.groups + other.groups)),
            roles=tuple(dict.fromkeys(self.roles + other.roles)),
            counts={**self.counts, **other.counts},
        )


@dataclass(frozen=True)
class Quorum:
    """How many approvals decide a step; `n` is only meaningful for `n_of_m`."""

    mode: QuorumMode = QuorumMode.ANY
    n: int | None = None

    def needed(self, seats: int) -> int:
        """Approvals that decide a step with `seats` seats: 1, n, or every seat."""
        if self.mode is QuorumMode.ANY:
            return 1
        if self.mode is QuorumMode.N_OF_M:
            return max(self.n or 1, 1)
        return max(seats, 1)


@dataclass(frozen=True)
class EscalationLevel:
    """One rung of an escalation chain: `after` the step activated, do `action` to `targets`."""

    after: timedelta
    action: EscalationActionKind = EscalationActionKind.NOTIFY
    targets: Assignees = field(default_factory=Assignees)
    priority: int | None = None


@dataclass(frozen=True)
class Dependency:
    """An edge from an upstream step; `when` selects the branch of an upstream decision step."""

    step: str
    effect: DependencyEffect = DependencyEffect.BLOCKS
    resolution: Resolution = Resolution.WAIT
    fallback: Any = None
    when: str | None = None


DEFAULT_DEADLINE_RISK_RATIO = 0.8
"""Warn that a step is at risk when this fraction of its SLA has elapsed."""


@dataclass(frozen=True)
class StepDefinition:
    """One step of a template: who decides, how, how fast and after what."""

    key: str
    name: str
    kind: StepKind = StepKind.APPROVAL
    assignees: Assignees = field(default_factory=Assignees)
    quorum: Quorum = field(default_factory=Quorum)
    risk: RiskLevel = RiskLevel.LOW
    sla: timedelta | None = None
    reminders: tuple[timedelta, ...] = ()
    deadline_risk_ratio: float | None = None
    escalation: tuple[EscalationLevel, ...] = ()
    timeout_action: TimeoutAction = TimeoutAction.EXPIRE
    justification_required: bool = False
    sensitive: bool = False
    depends_on: tuple[Dependency, ...] = ()
    action: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    max_attempts: int = 3
    any_rejection_rejects: bool = True
    allow_auto_approve: bool = False
    description: str = ""
    reassignable_by: tuple[str, ...] = ()
    expected_outcome: str = ""
    estimated_time: str = ""
    required_permissions: tuple[str, ...] = ()
    declared_risk: RiskLevel | None = None

    @property
    def needed(self) -> int:
        """Approvals the template requires of this step."""
        return self.quorum.needed(self.assignees.seat_count)


@dataclass(frozen=True)
class AutoApprovalPolicy:
    """A template's standing permission to approve some steps without a person (seed 003).

    With `actions`, a step qualifies only when its action is listed *and* its assessed risk is
    below `below_risk` (low by default); without, when its risk is below `below_risk`.
    `policies.auto_approval_rule` adds the limits no policy can lift.
    """

    below_risk: RiskLevel | None = None
    actions: tuple[str, ...] = ()
    name: str = "auto-approval"


@dataclass(frozen=True)
class TemplateDefinition:
    """A parsed, validated template: a DAG of steps plus item-level settings."""

    key: str
    name: str
    kind: TemplateKind
    steps: tuple[StepDefinition, ...]
    description: str = ""
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_revisions: int = 3
    compensate_on_failure: bool = False
    auto_approval: AutoApprovalPolicy | None = None
    action_risks: Mapping[str, RiskLevel] = field(default_factory=dict)
    summary: str = ""

    def step(self, key: str) -> StepDefinition:
        """The step with this key, or NOT_FOUND."""
        for step in self.steps:
            if step.key == key:
                return step
        raise DomainError(ErrorCode.NOT_FOUND, f"step {key} not found", field="step")

    def has_step(self, key: str) -> bool:
        """Whether the template has a step with this key."""
        return any(step.key == key for step in self.steps)

    def dependents(self, key: str) -> list[StepDefinition]:
        """Steps that depend directly on `key`, in declaration order."""
        return [s for s in self.steps if any(d.step == key for d in s.depends_on)]

    def topological_order(self) -> list[str]:
        """Step keys with every step after all its upstream steps.

        Ties keep declaration order so that the order is deterministic and matches what the
        author wrote. A validated template has no cycle; if one slipped in, INVALID_INPUT.
        """
        position = {s.key: i for i, s in enumerate(self.steps)}
        indegree = {s.key: len({d.step for d in s.depends_on}) for s in self.steps}
        order: list[str] = []
        ready = sorted((k for k, n in indegree.items() if n == 0), key=position.__getitem__)
        while ready:
            key = ready.pop(0)
            order.append(key)
            for child in self.dependents(key):
                indegree[child.key] -= 1
                if indegree[child.key] == 0:
                    ready.append(child.key)
                    ready.sort(key=position.__getitem__)
        if len(order) != len(self.steps):
            raise DomainError(ErrorCode.INVALID_INPUT, "template steps contain a cycle")
        return order
