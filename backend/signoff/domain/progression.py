"""The progression of an item: one pure function from (snapshot, definition, event) to what
changes.

    progress(snapshot, definition, event, context) -> Progress

Every rule about how an item moves lives behind it: who may fill which seat (`seats.py`), the
quorum tally (`quorum.py`), activations, skips, fallbacks, holds, merges and auto-approvals
(`run.py`), the item's outcome (`Run.settle`), escalations and timeouts (`time_rules.py`),
execution and recovery (`execution_rules.py`). `services/engine.py` writes what a `Progress`
says and decides nothing; `simulation.py`, replays and the impact predictions call the same
function, so a prediction and what then happens cannot differ. A refused event raises
`DomainError` and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.domain.dependencies import Outcome
from signoff.domain.dependency_rules import modified_downstream, modify, resolve_hold
from signoff.domain.events import (
    ApproveAll,
    Cancel,
    Claim,
    Delegate,
    Event,
    Modify,
    Override,
    Reassign,
    Recover,
    Report,
    ResolveHold,
    Resubmit,
    Submit,
    Suppose,
    TimerFired,
    Unclaim,
    Vote,
)
from signoff.domain.execution_rules import recover, report
from signoff.domain.review_rules import (
    approve_all,
    cancel,
    claim,
    delegate_seat,
    override,
    reassign,
    resubmit,
    unclaim,
    vote,
)
from signoff.domain.run import Run
from signoff.domain.snapshot import Context, Progress, Snapshot
from signoff.domain.states import StepState
from signoff.domain.template_model import DependencyEffect, Resolution, TemplateDefinition
from signoff.domain.time_rules import timer_fired

__all__ = ["Context", "Impact", "Progress", "Snapshot", "impacts", "progress"]


def _submit(run: Run, event: Submit) -> None:
    run.note("item.submitted", None, data=event.data)
    run.advance()


def _suppose(run: Run, event: Suppose) -> None:
    if event.state is StepState.WAITING:  # "what if it were modified"
        modified_downstream(run, event.step)
    else:
        run.change(event.step, state=event.state)
    run.advance()


_HANDLERS: dict[type[Any], Callable[[Run, Any], None]] = {
    Submit: _submit,
    Vote: vote,
    ApproveAll: approve_all,
    Claim: claim,
    Unclaim: unclaim,
    Delegate: delegate_seat,
    Reassign: reassign,
    Modify: modify,
    Resubmit: resubmit,
    Cancel: cancel,
    Override: override,
    ResolveHold: resolve_hold,
    TimerFired: timer_fired,
    Report: report,
    Recover: recover,
    Suppose: _suppose,
}


def progress(
    snapshot: Snapshot, definition: TemplateDefinition, event: Event, context: Context
) -> Progress:
    """What `event` does to the item in `snapshot`: the snapshot after it, the audit entries,
    decisions and timer changes to write. Raises `DomainError` when the event is refused."""
    run = Run(snapshot, definition, context)
    _HANDLERS[type(event)](run, event)
    return run.result()


@dataclass(frozen=True)
class Impact:
    """What a change to step `via` would do to the dependent `step` (`outcome`: skip, ask_user,
    fallback, cancel, none or wait), through its dependency `effect` / `resolution`."""

    step: str
    effect: DependencyEffect
    resolution: Resolution
    outcome: str
    fallback: Any = None
    via: str = ""


def impacts(
    snapshot: Snapshot,
    definition: TemplateDefinition,
    key: str,
    context: Context,
    *,
    modified: bool,
) -> list[Impact]:
    """What rejecting (or, with `modified`, modifying) step `key` now would do to the steps
    that depend on it, found by running the progression on a copy of the item."""
    event = Suppose(key, StepState.WAITING if modified else StepState.REJECTED)
    after = progress(snapshot, definition, event, context).after
    found: list[Impact] = []
    affected = {key}
    for other in definition.topological_order():
        step = definition.step(other)
        dep = next((d for d in step.depends_on if d.step in affected), None)
        if dep is None:
            continue
        was, now = snapshot.step(other), after.step(other)
        outcome = _outcome(was.state, now.state, was.params != now.params)
        if outcome in (Outcome.SKIP.value, Outcome.ASK_USER.value, Outcome.WAIT.value, "cancel"):
            affected.add(other)
        fallback = dep.fallback if outcome == Outcome.FALLBACK.value else None
        found.append(Impact(other, dep.effect, dep.resolution, outcome, fallback, dep.step))
    return found


def _outcome(before: StepState, after: StepState, fell_back: bool) -> str:
    if after is StepState.SKIPPED and before is not StepState.SKIPPED:
        return Outcome.SKIP.value
    if after is StepState.HELD and before is not StepState.HELD:
        return Outcome.ASK_USER.value
    if after is StepState.CANCELLED and before is not StepState.CANCELLED:
        return "cancel"
    if fell_back:
        return Outcome.FALLBACK.value
    if after is StepState.WAITING:
        return Outcome.WAIT.value
    return Outcome.NONE.value
