"""What can happen to an item: the events the progression (`domain/progression.py`) takes.

Each names the step by its template key and, for a person's action, who acts (`by`). Services
build them from authenticated input; the simulator builds them from a scenario; both hand them
to the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import StepState
from signoff.domain.template_model import Assignees
from signoff.domain.timers import TimerKind


class VoteOutcome(StrEnum):
    """A reviewer's decision on a step."""

    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"


class DecisionChoice(StrEnum):
    """A decision that needs no conversation, as a batch entry or a decision link carries it:
    approve or reject (requesting changes is left to the single mutation)."""

    APPROVE = "approve"
    REJECT = "reject"

    @property
    def vote(self) -> VoteOutcome:
        """The vote this choice casts."""
        return VoteOutcome(self.value)


class ExecutionStatus(StrEnum):
    """What the executor reports about a step."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"


class Recovery(StrEnum):
    """The four ways out of a failed step (seed 003)."""

    RETRY = "retry"
    SKIP = "skip"
    COMPENSATE = "compensate"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Submit:
    """The item was stored with its steps waiting; `data` describes it for the audit trail."""

    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Vote:
    """A reviewer approves, rejects or requests changes."""

    step: str
    by: Principal
    outcome: VoteOutcome
    reason: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class ApproveAll:
    """A reviewer approves every open step of a plan they hold a seat on."""

    by: Principal
    reason: str | None = None


@dataclass(frozen=True)
class Claim:
    """A reviewer takes a step so that others see somebody is on it (why: audited)."""

    step: str
    by: Principal
    reason: str | None = None


@dataclass(frozen=True)
class Unclaim:
    """The claimer (or an admin) releases a claim (why: audited)."""

    step: str
    by: Principal
    reason: str | None = None


@dataclass(frozen=True)
class Delegate:
    """An assignee lets `to` fill their own seat for them."""

    step: str
    by: Principal
    to: str
    reason: str | None


@dataclass(frozen=True)
class Reassign:
    """A step goes to other people: an admin (or a role the template names) replaces its
    unfilled seats with `assignees`; an assignee naming one user hands over their own seat."""

    step: str
    by: Principal
    assignees: Assignees
    reason: str | None


@dataclass(frozen=True)
class Modify:
    """A reviewer changes a step's params before it is decided (the originals are kept)."""

    step: str
    by: Principal
    params: Mapping[str, Any]
    reason: str | None


@dataclass(frozen=True)
class Resubmit:
    """The requester opens a new revision after changes were requested."""

    by: Principal
    payload: Mapping[str, Any] | None = None
    title: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Cancel:
    """The requester (or an admin) withdraws the item."""

    by: Principal
    reason: str | None


@dataclass(frozen=True)
class Override:
    """An override of a step; `requested_by` is who asked first on a sensitive step (the
    pending request this call would confirm), if anyone did."""

    step: str
    by: Principal
    justification: str | None
    requested_by: str | None = None


@dataclass(frozen=True)
class ResolveHold:
    """The requester (or an admin) chooses what happens to a held step; `value` stands in for
    what the failed upstream steps would have provided (with `provide`)."""

    step: str
    by: Principal
    option: HoldOption
    reason: str | None
    value: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TimerFired:
    """A stored timer of a step came due."""

    step: str
    kind: TimerKind
    due_at: datetime
    level: int | None = None
    timer: str = ""


@dataclass(frozen=True)
class Report:
    """The executor reports on an approved step."""

    step: str
    by: Principal
    status: ExecutionStatus
    result: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Recover:
    """The executor leaves a failed step by one of the four ways."""

    step: str
    by: Principal
    recovery: Recovery
    reason: str | None


@dataclass(frozen=True)
class Suppose:
    """For predictions only: what if `step` ended in `state` now?"""

    step: str
    state: StepState


Event = (
    Submit
    | Vote
    | ApproveAll
    | Claim
    | Unclaim
    | Delegate
    | Reassign
    | Modify
    | Resubmit
    | Cancel
    | Override
    | ResolveHold
    | TimerFired
    | Report
    | Recover
    | Suppose
)
