"""Execution of approved steps as reported by the requester (a service or an agent), recovery
from a failed step, and compensation of completed steps in reverse order. The rules live in
`domain/execution_rules.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from signoff.domain.actors import Actor
from signoff.domain.errors import invalid
from signoff.domain.events import ExecutionStatus, Recover, Recovery, Report
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, change
from signoff.services.uow import Guards

__all__ = ["ExecutionStatus", "Recovery", "ReportInput", "recover_step", "report_execution"]


@dataclass(frozen=True)
class ReportInput:
    """An execution report for one step."""

    step_id: UUID
    status: ExecutionStatus
    result: Mapping[str, Any] | None = None
    error: str | None = None
    guards: Guards = field(default_factory=Guards)


async def report_execution(actor: Actor, ctx: ServiceContext, inp: ReportInput) -> ItemView:
    """Record that a step started, completed (with its result), failed, or was compensated."""

    async def event(view: ItemView) -> Report:
        key = view.step(inp.step_id).key
        return Report(key, actor.principal, inp.status, inp.result, inp.error)

    return await change(
        actor,
        ctx,
        operation="reportExecution",
        fingerprint={
            "step": str(inp.step_id),
            "status": inp.status.value,
            "result": inp.result,
            "error": inp.error,
        },
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        event=event,
        step_id=inp.step_id,
    )


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
    if recovery not in Recovery:
        raise invalid("unknown recovery", "recovery")

    async def event(view: ItemView) -> Recover:
        return Recover(view.step(step_id).key, actor.principal, recovery, reason)

    return await change(
        actor,
        ctx,
        operation="recoverStep",
        fingerprint={"step": str(step_id), "recovery": recovery.value, "reason": reason},
        idempotency_key=g.idempotency_key,
        expected_version=g.expected_version,
        event=event,
        step_id=step_id,
    )
