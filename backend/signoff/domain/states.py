"""The item and step state machines: tables of legal transitions and the function applying them.

The tables are data. `docs/reference/state-machine.md` is generated from them
(`signoff docs state-machine`) and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from signoff.domain.errors import DomainError, ErrorCode


class ItemState(StrEnum):
    """Lifecycle of a workflow item."""

    PENDING = "pending"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"


class ItemAction(StrEnum):
    """What can happen to an item as a whole."""

    REQUEST_CHANGES = "request_changes"
    RESUBMIT = "resubmit"
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"
    OVERRIDE = "override"
    START_EXECUTION = "start_execution"
    COMPLETE = "complete"
    FAIL = "fail"
    RECOVER = "recover"
    COMPENSATE = "compensate"
    FINISH_COMPENSATION = "finish_compensation"


class StepState(StrEnum):
    """Lifecycle of one step of an item."""

    WAITING = "waiting"
    HELD = "held"
    ACTIVE = "active"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"


class StepAction(StrEnum):
    """What can happen to a step."""

    ACTIVATE = "activate"
    HOLD = "hold"
    RELEASE = "release"
    REOPEN = "reopen"
    CLAIM = "claim"
    UNCLAIM = "unclaim"
    VOTE = "vote"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    RESUBMIT = "resubmit"
    REASSIGN = "reassign"
    MODIFY = "modify"
    ESCALATE = "escalate"
    SKIP = "skip"
    CANCEL = "cancel"
    EXPIRE = "expire"
    OVERRIDE = "override"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    RETRY = "retry"
    COMPENSATE = "compensate"


IS = ItemState
IA = ItemAction
S = StepState
SA = StepAction

ITEM_TRANSITIONS: Mapping[tuple[ItemState, ItemAction], ItemState] = {
    (IS.PENDING, IA.REQUEST_CHANGES): IS.CHANGES_REQUESTED,
    (IS.PENDING, IA.APPROVE): IS.APPROVED,
    (IS.PENDING, IA.REJECT): IS.REJECTED,
    (IS.PENDING, IA.CANCEL): IS.CANCELLED,
    (IS.PENDING, IA.EXPIRE): IS.EXPIRED,
    (IS.PENDING, IA.OVERRIDE): IS.APPROVED,
    (IS.CHANGES_REQUESTED, IA.RESUBMIT): IS.PENDING,
    (IS.CHANGES_REQUESTED, IA.CANCEL): IS.CANCELLED,
    (IS.CHANGES_REQUESTED, IA.EXPIRE): IS.EXPIRED,
    (IS.CHANGES_REQUESTED, IA.REJECT): IS.REJECTED,
    (IS.APPROVED, IA.START_EXECUTION): IS.EXECUTING,
    (IS.APPROVED, IA.COMPLETE): IS.COMPLETED,
    (IS.APPROVED, IA.CANCEL): IS.CANCELLED,
    (IS.EXECUTING, IA.COMPLETE): IS.COMPLETED,
    (IS.EXECUTING, IA.FAIL): IS.FAILED,
    (IS.EXECUTING, IA.COMPENSATE): IS.COMPENSATING,
    (IS.FAILED, IA.RECOVER): IS.EXECUTING,
    (IS.FAILED, IA.COMPENSATE): IS.COMPENSATING,
    (IS.FAILED, IA.CANCEL): IS.CANCELLED,
    (IS.REJECTED, IA.OVERRIDE): IS.APPROVED,
    (IS.REJECTED, IA.COMPENSATE): IS.COMPENSATING,
    (IS.EXPIRED, IA.OVERRIDE): IS.APPROVED,
    (IS.COMPENSATING, IA.FINISH_COMPENSATION): IS.COMPENSATED,
}

_OPEN_STEP = (S.WAITING, S.HELD, S.ACTIVE, S.CHANGES_REQUESTED)

STEP_TRANSITIONS: Mapping[tuple[StepState, StepAction], StepState] = {
    (S.WAITING, SA.ACTIVATE): S.ACTIVE,
    (S.WAITING, SA.MODIFY): S.WAITING,
    (S.WAITING, SA.SKIP): S.SKIPPED,
    (S.WAITING, SA.CANCEL): S.CANCELLED,
    (S.WAITING, SA.HOLD): S.HELD,
    (S.HELD, SA.RELEASE): S.WAITING,
    (S.HELD, SA.SKIP): S.SKIPPED,
    (S.HELD, SA.EXPIRE): S.EXPIRED,
    (S.HELD, SA.CANCEL): S.CANCELLED,
    (S.ACTIVE, SA.CLAIM): S.ACTIVE,
    (S.ACTIVE, SA.UNCLAIM): S.ACTIVE,
    (S.ACTIVE, SA.VOTE): S.ACTIVE,
    (S.ACTIVE, SA.APPROVE): S.APPROVED,
    (S.ACTIVE, SA.REJECT): S.REJECTED,
    (S.ACTIVE, SA.REQUEST_CHANGES): S.CHANGES_REQUESTED,
    (S.ACTIVE, SA.REASSIGN): S.ACTIVE,
    (S.ACTIVE, SA.MODIFY): S.ACTIVE,
    (S.ACTIVE, SA.ESCALATE): S.ACTIVE,
    (S.ACTIVE, SA.SKIP): S.SKIPPED,
    (S.ACTIVE, SA.CANCEL): S.CANCELLED,
    (S.ACTIVE, SA.EXPIRE): S.EXPIRED,
    (S.ACTIVE, SA.OVERRIDE): S.APPROVED,
    (S.CHANGES_REQUESTED, SA.RESUBMIT): S.ACTIVE,
    (S.CHANGES_REQUESTED, SA.CANCEL): S.CANCELLED,
    (S.CHANGES_REQUESTED, SA.EXPIRE): S.EXPIRED,
    (S.APPROVED, SA.START): S.RUNNING,
    (S.APPROVED, SA.CANCEL): S.CANCELLED,
    (S.APPROVED, SA.SKIP): S.SKIPPED,
    (S.REJECTED, SA.OVERRIDE): S.APPROVED,
    (S.REJECTED, SA.REOPEN): S.ACTIVE,
    (S.EXPIRED, SA.OVERRIDE): S.APPROVED,
    (S.EXPIRED, SA.REOPEN): S.ACTIVE,
    (S.RUNNING, SA.COMPLETE): S.COMPLETED,
    (S.RUNNING, SA.FAIL): S.FAILED,
    (S.FAILED, SA.RETRY): S.RUNNING,
    (S.FAILED, SA.SKIP): S.SKIPPED,
    (S.FAILED, SA.ESCALATE): S.FAILED,
    (S.COMPLETED, SA.COMPENSATE): S.COMPENSATED,
}

OPEN_STEP_STATES: frozenset[StepState] = frozenset(_OPEN_STEP)
"""Steps that still wait for a human (or for their dependencies)."""

TERMINAL_ITEM_STATES: frozenset[ItemState] = frozenset(
    state for state in ItemState if not any(src == state for src, _ in ITEM_TRANSITIONS)
)
"""Item states with no way out."""

DECIDED_ITEM_STATES: tuple[ItemState, ...] = (
    ItemState.APPROVED,
    ItemState.REJECTED,
    ItemState.EXPIRED,
    ItemState.CANCELLED,
    ItemState.COMPLETED,
    ItemState.FAILED,
    ItemState.COMPENSATED,
)
"""Items whose review is over (even if an override may still revive a rejected or expired
one): what incident reviews reopen and what retention may remove content from."""

StateT = TypeVar("StateT", bound=StrEnum)
ActionT = TypeVar("ActionT", bound=StrEnum)


@dataclass(frozen=True)
class StateMachine(Generic[StateT, ActionT]):
    """A named table of legal transitions."""

    name: str
    states: type[StateT]
    actions: type[ActionT]
    table: Mapping[tuple[StateT, ActionT], StateT]

    def next_state(self, state: StateT, action: ActionT) -> StateT:
        """Return the state `action` leads to from `state`, or raise ILLEGAL_TRANSITION."""
        try:
            return self.table[(state, action)]
        except KeyError:
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"cannot {action.value} a {self.name} that is {state.value}",
                details={"machine": self.name, "state": state.value, "action": action.value},
            ) from None

    def allowed_actions(self, state: StateT) -> list[ActionT]:
        """The actions legal from `state`, in declaration order."""
        return [action for action in self.actions if (state, action) in self.table]


ITEM_MACHINE: StateMachine[ItemState, ItemAction] = StateMachine(
    "item", ItemState, ItemAction, ITEM_TRANSITIONS
)
STEP_MACHINE: StateMachine[StepState, StepAction] = StateMachine(
    "step", StepState, StepAction, STEP_TRANSITIONS
)


def render_markdown() -> str:
    """Render both machines as the Markdown of `docs/reference/state-machine.md`."""
    out = [
        "# State machines",
        "",
        "Generated from `backend/signoff/domain/states.py` by `signoff docs state-machine`;",
        "a test fails when this file and the tables disagree. Any pair not listed is refused",
        "with the error code `ILLEGAL_TRANSITION` and changes nothing.",
        "",
    ]
    machines: tuple[StateMachine[Any, Any], ...] = (ITEM_MACHINE, STEP_MACHINE)
    for machine in machines:
        title = machine.name.capitalize()
        out += [f"## {title} transitions", "", "| from | action | to |", "| --- | --- | --- |"]
        for (src, action), dst in machine.table.items():
            out.append(f"| `{src.value}` | `{action.value}` | `{dst.value}` |")
        terminal = [s.value for s in machine.states if not machine.allowed_actions(s)]
        out += ["", f"Terminal {machine.name} states: " + ", ".join(f"`{s}`" for s in terminal), ""]
    return "\n".join(out)
