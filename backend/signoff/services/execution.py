"""Execution of approved steps as reported by the requester (a service or an agent), recovery
from a failed step, and compensation of completed steps in reverse order.

Execution starts once review is over (the item is approved): a step may start only when the
steps it hard-depends on have succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.domain.actors import Actor
from signoff.domain.dependencies import unmet_blocking, unmet_for_execution
from signoff.domain.errors import DomainError, ErrorCode, forbidden, invalid
from signoff.domain.records import Step
from signoff.domain.states import ItemAction, ItemState, StepAction, StepState
from signoff.services.actions import Guards
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, transition_item, transition_step
from signoff.services.items import act_on_step, require_reason
from signoff.services.uow import UnitOfWork

EXECUTOR_ROLE = "executor"


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
class ReportInput:
    """An execution report for one step."""

    step_id: UUID
    status: ExecutionStatus
    result: dict[str, Any] | None = None
    error: str | None = None
    guards: Guards = field(default_factory=Guards)


def _require_executor(actor: Actor, view: ItemView) -> None:
    if actor.user_id != view.item.requester_id and EXECUTOR_ROLE not in actor.principal.roles:
        raise forbidden("only the requester or an executor reports execution")


def _done(state: StepState) -> bool:
    return state in (
        StepState.COMPLETED,
        StepState.SKIPPED,
        StepState.REJECTED,
        StepState.CANCELLED,
        StepState.EXPIRED,
        StepState.FAILED,
    )


async def _finish_if_done(uow: UnitOfWork, view: ItemView) -> None:
    """Complete an executing item once no approved step is left to run."""
    if view.state != ItemState.EXECUTING:
        return
    states = [s.state for s in view.steps]
    if any(s in (StepState.APPROVED, StepState.RUNNING) for s in states):
        runnable = [
            s
            for s in view.steps
            if s.state == StepState.APPROVED
            and not unmet_blocking(view.definition, view.step_states(), s.key)
        ]
        if runnable or any(s == StepState.RUNNING for s in states):
            return
    await transition_item(uow, view, ItemAction.COMPLETE)


def compensation_order(view: ItemView) -> list[Step]:
    """Completed steps still to compensate, most recently completed first."""
    done = [s for s in view.steps if s.state == StepState.COMPLETED]
    return sorted(done, key=lambda s: (s.decided_at, s.position), reverse=True)


async def report_execution(actor: Actor, ctx: ServiceContext, inp: ReportInput) -> ItemView:
    """Record that a step started, completed (with its result), failed, or was compensated."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        _require_executor(actor, view)
        if inp.status == ExecutionStatus.RUNNING:
            blockers = unmet_for_execution(view.definition, view.step_states(), step.key)
            if blockers:
                raise DomainError(
                    ErrorCode.DEPENDENCY_UNMET,
                    f"step {step.key!r} waits for {', '.join(blockers)}",
                    "stepId",
                    details={"unmet": blockers},
                )
            if view.state == ItemState.APPROVED:
                await transition_item(uow, view, ItemAction.START_EXECUTION)
            elif view.state != ItemState.EXECUTING:
                raise DomainError(
                    ErrorCode.ILLEGAL_TRANSITION,
                    f"cannot start a step of an item that is {view.state.value}",
                )
            await transition_step(
                uow, view, step, StepAction.START, changes={"attempts": step.attempts + 1}
            )
        elif inp.status == ExecutionStatus.COMPLETED:
            await transition_step(
                uow,
                view,
                step,
                StepAction.COMPLETE,
                changes={"result": inp.result or {}, "error": None},
                data={"result": inp.result or {}},
            )
            await _finish_if_done(uow, view)
        elif inp.status == ExecutionStatus.FAILED:
            error = require_reason(inp.error, "(the error) to report a failure")
            await transition_step(
                uow,
                view,
                step,
                StepAction.FAIL,
                changes={"error": error},
                data={"error": error, "attempt": step.attempts},
            )
            await transition_item(uow, view, ItemAction.FAIL, data={"step": step.key})
            max_attempts = view.definition.step(step.key).max_attempts
            if step.attempts >= max_attempts:
                # No retry left (seed 004): escalate to the override holders.
                uow.record(
                    "step.retries_exhausted",
                    item_id=view.id,
                    step_id=step.id,
                    data={
                        "step": step.key,
                        "attempts": step.attempts,
                        "max_attempts": max_attempts,
                        "escalate_to_roles": sorted(uow.ctx.settings.override_roles),
                    },
                )
            if view.definition.compensate_on_failure and compensation_order(view):
                await transition_item(
                    uow,
                    view,
                    ItemAction.COMPENSATE,
                    data={"by": "template", "order": [s.key for s in compensation_order(view)]},
                )
        else:
            await _compensate_step(uow, view, step)

    return await act_on_step(
        actor,
        ctx,
        operation="reportExecution",
        step_id=inp.step_id,
        fingerprint={
            "step": str(inp.step_id),
            "status": inp.status.value,
            "result": inp.result,
            "error": inp.error,
        },
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        body=body,
    )


async def _compensate_step(uow: UnitOfWork, view: ItemView, step: Step) -> None:
    if view.state != ItemState.COMPENSATING:
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION, f"the item is {view.state.value}, not compensating"
        )
    order = compensation_order(view)
    if not order or order[0].id != step.id:
        expected = order[0].key if order else "none"
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION,
            f"compensate in reverse order: next is {expected!r}",
            "stepId",
        )
    await transition_step(uow, view, step, StepAction.COMPENSATE)
    if not compensation_order(view):
        await transition_item(uow, view, ItemAction.FINISH_COMPENSATION)


async def recover_step(
    actor: Actor,
    ctx: ServiceContext,
    step_id: UUID,
    recovery: Recovery,
    reason: str | None,
    g: Guards,
) -> ItemView:
    """Leave a failed step by retrying it, skipping it, compensating everything done so far, or
    continuing with the steps that do not depend on it."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        _require_executor(actor, view)
        if step.state != StepState.FAILED or view.state != ItemState.FAILED:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "only a failed step can be recovered")
        text = require_reason(reason, "to recover a failed step")
        defn = view.definition.step(step.key)
        if recovery == Recovery.RETRY:
            if step.attempts >= defn.max_attempts:
                raise DomainError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"step {step.key!r} already ran {step.attempts} of "
                    f"{defn.max_attempts} attempts",
                )
            await transition_item(
                uow, view, ItemAction.RECOVER, reason=text, data={"recovery": recovery.value}
            )
            await transition_step(
                uow,
                view,
                step,
                StepAction.RETRY,
                reason=text,
                changes={"attempts": step.attempts + 1, "error": None},
            )
        elif recovery == Recovery.SKIP:
            await transition_step(uow, view, step, StepAction.SKIP, reason=text)
            await transition_item(
                uow, view, ItemAction.RECOVER, reason=text, data={"recovery": recovery.value}
            )
            await _finish_if_done(uow, view)
        elif recovery == Recovery.COMPENSATE:
            await transition_item(
                uow,
                view,
                ItemAction.COMPENSATE,
                reason=text,
                data={"order": [s.key for s in compensation_order(view)]},
            )
            if not compensation_order(view):
                await transition_item(uow, view, ItemAction.FINISH_COMPENSATION)
        else:
            # Continue: what hard-depends on the failed step can never run; skip it.
            await transition_item(
                uow, view, ItemAction.RECOVER, reason=text, data={"recovery": recovery.value}
            )
            for other in view.steps:
                if other.state == StepState.APPROVED and step.key in unmet_blocking(
                    view.definition, view.step_states(), other.key
                ):
                    await transition_step(
                        uow,
                        view,
                        other,
                        StepAction.SKIP,
                        reason=text,
                        data={"by": "failed_dependency", "failed": step.key},
                    )
            await _finish_if_done(uow, view)

    if recovery not in Recovery:
        raise invalid("unknown recovery", "recovery")
    return await act_on_step(
        actor,
        ctx,
        operation="recoverStep",
        step_id=step_id,
        fingerprint={"step": str(step_id), "recovery": recovery.value, "reason": reason},
        idempotency_key=g.idempotency_key,
        expected_version=g.expected_version,
        body=body,
    )
