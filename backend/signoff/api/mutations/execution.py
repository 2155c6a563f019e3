"""Execution reports, recovery and compensation."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.guards import GuardsInput, guards_field, versioned_guards
from signoff.api.mutations.actions import _step
from signoff.api.mutations.common import ItemPayload, item_payload
from signoff.domain.errors import invalid
from signoff.services import execution
from signoff.services.engine import ItemView

ExecutionStatusEnum = described_enum(
    execution.ExecutionStatus,
    "What happened to an approved step.",
    {
        execution.ExecutionStatus.RUNNING: "The executor started the step.",
        execution.ExecutionStatus.COMPLETED: "The step finished; pass its result.",
        execution.ExecutionStatus.FAILED: "The step failed; pass the error.",
        execution.ExecutionStatus.COMPENSATED: "The step's effect was undone.",
    },
)
RecoveryEnum = described_enum(
    execution.Recovery,
    "Ways out of a failed step.",
    {
        execution.Recovery.RETRY: "Run the failed step again (up to its max attempts).",
        execution.Recovery.SKIP: "Skip the failed step and carry on.",
        execution.Recovery.COMPENSATE: "Undo every completed step, newest first.",
        execution.Recovery.CONTINUE: "Carry on with the steps that do not depend on it.",
    },
)


@strawberry.input(description="Report the execution of an approved step.")
class ReportExecutionInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    status: execution.ExecutionStatus = strawberry.field(description="What happened.")
    result: JSON | None = strawberry.field(default=None, description="Result, when completed.")
    error: str | None = strawberry.field(default=None, description="Error, when failed.")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="Recover from a failed step.")
class RecoverStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the failed step.")
    recovery: execution.Recovery = strawberry.field(
        description="Retry, skip, compensate, continue."
    )
    reason: str = strawberry.field(description="Why.")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.type
class ExecutionMutations:
    @strawberry.mutation(
        description="Report that an approved step is running, completed, failed, or was "
        "compensated (compensation goes in reverse order of completion)."
    )
    async def report_execution(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ReportExecutionInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)

        async def call() -> ItemView:
            if input.result is not None and not isinstance(input.result, dict):
                raise invalid("result must be an object", "result")
            return await execution.report_execution(
                actor,
                ctx,
                execution.ReportInput(
                    step_id=_step(input.step_id),
                    status=input.status,
                    result=input.result,
                    error=input.error,
                    guards=versioned_guards(input.guards),
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(description="Retry, skip, compensate or continue after a failed step.")
    async def recover_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            RecoverStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: execution.recover_step(
                actor,
                ctx,
                _step(input.step_id),
                input.recovery,
                input.reason,
                versioned_guards(input.guards),
            )
        )
