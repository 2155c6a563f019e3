"""Batch decisions: a reviewer clearing a queue approves or rejects several steps at once."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import UserError, user_error
from signoff.api.mutations.actions import GuardsInput
from signoff.api.types import WorkflowItem
from signoff.domain.errors import DomainError, invalid
from signoff.domain.events import DecisionChoice
from signoff.services import items as item_services


@strawberry.input(description="One decision of a batch: as `approveStep` or `rejectStep` takes it.")
class StepDecisionInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    outcome: DecisionChoice = strawberry.field(description="Approve or reject.")
    reason: str | None = strawberry.field(
        default=None,
        description="Why; required to reject, and where the template asks for a justification.",
    )
    value: str | None = strawberry.field(
        default=None, description="The chosen option, on a `decision` step."
    )
    guards: GuardsInput | None = strawberry.field(
        default=None,
        description="This decision's idempotency key and the item version it expects (keys "
        "are shared with `approveStep`/`rejectStep`: the same key and input replay there too).",
    )


@strawberry.input(description="Several decisions, made in order, each on its own.")
class DecideStepsInput:
    decisions: list[StepDecisionInput] = strawberry.field(
        description="The decisions, at most `SIGNOFF_MAX_BATCH_DECISIONS` (default 50)."
    )
    guards: GuardsInput | None = strawberry.field(
        default=None,
        description="An idempotency key for the batch: each decision without a key of its "
        "own gets one derived from it and its place, so a replayed batch replays each "
        "decision it made. No expectedVersion here (a batch spans items): give it per "
        "decision.",
    )


@strawberry.type(description="What became of one decision of a batch.")
class StepDecisionResult:
    step_id: strawberry.ID = strawberry.field(description="The step, as it was given.")
    outcome: DecisionChoice = strawberry.field(description="The decision, as it was given.")
    item: WorkflowItem | None = strawberry.field(
        description="The step's item after the decision; null when it was refused."
    )
    errors: list[UserError] = strawberry.field(
        description="Why this decision was refused (nothing of it was changed); empty on success."
    )


@strawberry.type(
    description="Result of a batch: one result per decision, in the order given. Some may "
    "succeed while others are refused."
)
class DecideStepsPayload:
    results: list[StepDecisionResult] = strawberry.field(
        description="One per decision, in order; empty when the whole batch was refused."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the whole batch was refused (empty, or too many decisions); nothing "
        "was decided then. Empty otherwise, even when single decisions were refused."
    )


def _entry(decision: StepDecisionInput) -> item_services.DecideStepInput | DomainError:
    guards = decision.guards or GuardsInput()
    try:
        step_id = ids.decode_uuid(decision.step_id, "Step", "stepId")
    except DomainError as exc:
        return exc
    return item_services.DecideStepInput(
        step_id=step_id,
        outcome=decision.outcome.vote,
        reason=decision.reason,
        value=decision.value,
        expected_version=guards.expected_version,
        idempotency_key=guards.idempotency_key,
    )


@strawberry.type
class BatchMutations:
    @strawberry.mutation(
        description="Approve or reject several steps in one request. Each decision goes "
        "through exactly what `approveStep`/`rejectStep` do (rules, idempotency, version "
        "check, audit) in a transaction of its own and has its own result: a refused one "
        "changes nothing and does not stop the others."
    )
    async def decide_steps(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DecideStepsInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> DecideStepsPayload:
        actor = actor_of(info)
        entries = [_entry(d) for d in input.decisions]
        guards = input.guards or GuardsInput()
        try:
            if guards.expected_version is not None:
                raise invalid(
                    "a batch spans items: give expectedVersion per decision",
                    "guards.expectedVersion",
                )
            outcomes = await item_services.decide_steps(
                actor, services_of(info), entries, guards.idempotency_key
            )
        except DomainError as exc:
            return DecideStepsPayload(results=[], errors=[user_error(exc)])
        return DecideStepsPayload(
            results=[
                StepDecisionResult(
                    step_id=d.step_id,
                    outcome=d.outcome,
                    item=None if isinstance(o, DomainError) else WorkflowItem.from_view(o),
                    errors=[user_error(o)] if isinstance(o, DomainError) else [],
                )
                for d, o in zip(input.decisions, outcomes, strict=True)
            ],
            errors=[],
        )
