"""The progression's rules for execution: reports on approved steps, recovery from a failed
step, compensation in reverse order, and the escalation of a step out of retries.

Execution starts once review is over (the item is approved): a step may start only when the
steps it hard-depends on have succeeded.
"""

from __future__ import annotations

from functools import reduce

from signoff.domain.actors import Principal
from signoff.domain.dependencies import unmet_blocking, unmet_for_execution
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.events import ExecutionStatus, Recover, Recovery, Report
from signoff.domain.permissions import Permission
from signoff.domain.policies import check_justification
from signoff.domain.records import Step
from signoff.domain.run import Run
from signoff.domain.states import ItemAction, ItemState, StepAction, StepState
from signoff.domain.template_model import Assignees
from signoff.domain.timers import next_priority


def _require_executor(run: Run, who: Principal) -> None:
    run.require(who, Permission.EXECUTE, "reporting execution")


def compensation_order(run: Run) -> list[Step]:
    """Completed steps still to compensate, most recently completed first."""
    done = [s for s in run.steps.values() if s.state is StepState.COMPLETED]
    return sorted(done, key=lambda s: (s.decided_at, s.position), reverse=True)


def _finish_if_done(run: Run) -> None:
    """Complete an executing item once no approved step is left that could still run."""
    if run.item.state is not ItemState.EXECUTING:
        return
    states = run.states()
    if any(s is StepState.RUNNING for s in states.values()):
        return
    runnable = [
        k
        for k, s in states.items()
        if s is StepState.APPROVED and not unmet_blocking(run.defn, states, k)
    ]
    if not runnable:
        run.move_item(ItemAction.COMPLETE)


def report(run: Run, event: Report) -> None:
    """A step started, completed (with its result), failed, or was compensated."""
    _require_executor(run, event.by)
    key = event.step
    step = run.steps[key]
    if event.status is ExecutionStatus.RUNNING:
        blockers = unmet_for_execution(run.defn, run.states(), key)
        if blockers:
            raise DomainError(
                ErrorCode.DEPENDENCY_UNMET,
                f"step {key!r} waits for {', '.join(blockers)}",
                "stepId",
                details={"unmet": blockers},
            )
        if run.item.state is ItemState.APPROVED:
            run.move_item(ItemAction.START_EXECUTION)
        elif run.item.state is not ItemState.EXECUTING:
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"cannot start a step of an item that is {run.item.state.value}",
            )
        run.move(key, StepAction.START, attempts=step.attempts + 1)
    elif event.status is ExecutionStatus.COMPLETED:
        result = dict(event.result or {})
        run.move(key, StepAction.COMPLETE, data={"result": result}, result=result, error=None)
        _finish_if_done(run)
    elif event.status is ExecutionStatus.FAILED:
        error = check_justification(True, event.error, why="(the error) to report a failure")
        run.move(
            key,
            StepAction.FAIL,
            data={"error": error, "attempt": step.attempts},
            error=error,
        )
        run.move_item(ItemAction.FAIL, data={"step": key})
        if step.attempts >= run.defn.step(key).max_attempts:
            _retries_exhausted(run, key)
        if run.defn.compensate_on_failure and compensation_order(run):
            order = [s.key for s in compensation_order(run)]
            run.move_item(ItemAction.COMPENSATE, data={"by": "template", "order": order})
    else:
        _compensate_step(run, key)


def _retries_exhausted(run: Run, key: str) -> None:
    """No retry left (seed 004, runbook): the step's escalation chain acts at once. Its
    targets and the override roles are told (they join the step's assignees), and the item's
    priority rises as far as the chain would have raised it."""
    step = run.steps[key]
    levels = run.defn.step(key).escalation
    targets = reduce(
        Assignees.merged,
        [level.targets for level in levels],
        run.override_roles,
    )
    run.note(
        "step.retries_exhausted",
        key,
        data={
            "attempts": step.attempts,
            "max_attempts": run.defn.step(key).max_attempts,
            "escalate_to": targets.to_dict(),
        },
    )
    run.move(
        key,
        StepAction.ESCALATE,
        data={"by": "retries_exhausted", "targets": targets.to_dict()},
        assignees=step.assignees.merged(targets),
        escalation_level=step.escalation_level + 1,
    )
    priority = reduce(next_priority, levels, run.item.priority)
    run.raise_priority(priority if levels else run.item.priority + 1)


def _compensate_step(run: Run, key: str) -> None:
    if run.item.state is not ItemState.COMPENSATING:
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION, f"the item is {run.item.state.value}, not compensating"
        )
    order = compensation_order(run)
    if not order or order[0].key != key:
        expected = order[0].key if order else "none"
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION,
            f"compensate in reverse order: next is {expected!r}",
            "stepId",
        )
    run.move(key, StepAction.COMPENSATE)
    if not compensation_order(run):
        run.move_item(ItemAction.FINISH_COMPENSATION)


def recover(run: Run, event: Recover) -> None:
    """Leave a failed step by retrying it, skipping it, compensating everything done so far, or
    continuing with the steps that do not depend on it."""
    _require_executor(run, event.by)
    key = event.step
    step = run.steps[key]
    if step.state is not StepState.FAILED or run.item.state is not ItemState.FAILED:
        raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "only a failed step can be recovered")
    text = check_justification(True, event.reason, why="to recover a failed step")
    data = {"recovery": event.recovery.value}
    max_attempts = run.defn.step(key).max_attempts
    if event.recovery is Recovery.RETRY:
        if step.attempts >= max_attempts:
            raise DomainError(
                ErrorCode.LIMIT_EXCEEDED,
                f"step {key!r} already ran {step.attempts} of {max_attempts} attempts",
            )
        run.move_item(ItemAction.RECOVER, reason=text, data=data)
        run.move(key, StepAction.RETRY, reason=text, attempts=step.attempts + 1, error=None)
    elif event.recovery is Recovery.SKIP:
        run.move(key, StepAction.SKIP, reason=text)
        run.move_item(ItemAction.RECOVER, reason=text, data=data)
        _finish_if_done(run)
    elif event.recovery is Recovery.COMPENSATE:
        order = [s.key for s in compensation_order(run)]
        run.move_item(ItemAction.COMPENSATE, reason=text, data={"order": order})
        if not order:
            run.move_item(ItemAction.FINISH_COMPENSATION)
    else:
        # Continue: what hard-depends on the failed step can never run; skip it.
        run.move_item(ItemAction.RECOVER, reason=text, data=data)
        for other in run.order:
            if run.steps[other].state is StepState.APPROVED and key in unmet_blocking(
                run.defn, run.states(), other
            ):
                run.move(
                    other,
                    StepAction.SKIP,
                    reason=text,
                    data={"by": "failed_dependency", "failed": key},
                )
        _finish_if_done(run)
