"""Submitting items and deciding steps."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.agent_plan_input import AgentPlanInput, plan_document
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.guards import GuardsInput, guards_field, key_guards, versioned_guards
from signoff.api.mutations.common import ItemPayload, item_payload
from signoff.services import items as item_services


@strawberry.input(description="Open an item from a published template.")
class SubmitItemInput:
    template_key: str = strawberry.field(description="Key of a published template.")
    title: str = strawberry.field(description="Short title shown in inboxes.")
    payload: JSON | None = strawberry.field(
        default=None, description="Data checked against the template's fields."
    )
    template_version: int | None = strawberry.field(
        default=None, description="A specific published version (default: the newest)."
    )
    priority: int = strawberry.field(default=0, description="Higher is more urgent.")
    external_ref: str | None = strawberry.field(
        default=None, description="An external trace or decision id this item is about."
    )
    plan: JSON | None = strawberry.field(
        default=None,
        description="Steps of an agent plan, for `plan` templates.",
        deprecation_reason="Untyped; use `agentPlan`, the same plan typed.",
    )
    agent_plan: AgentPlanInput | None = strawberry.field(
        default=None, description="An agent plan, for `plan` templates."
    )
    environment: str = strawberry.field(default="production", description="Environment.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="A reviewer's decision on a step.")
class DecideStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    reason: str | None = strawberry.field(
        default=None,
        description="Why; required to reject, to request changes, and where the "
        "template asks for a justification.",
    )
    value: str | None = strawberry.field(
        default=None, description="The chosen option, on a `decision` step."
    )
    guards: GuardsInput | None = guards_field(versioned=True)


async def _decide(
    info: Info[SignoffContext, Any],
    input: Annotated[
        DecideStepInput, strawberry.argument(description="The input of the mutation.")
    ],
    outcome: item_services.Outcome,
) -> ItemPayload:
    actor = actor_of(info)

    async def call() -> item_services.ItemView:
        guards = versioned_guards(input.guards)
        return await item_services.decide_step(
            actor,
            services_of(info),
            item_services.DecideStepInput(
                step_id=ids.decode_uuid(input.step_id, "Step", "stepId"),
                outcome=outcome,
                reason=input.reason,
                value=input.value,
                expected_version=guards.expected_version,
                idempotency_key=guards.idempotency_key,
            ),
        )

    return await item_payload(call)


@strawberry.type
class ItemMutations:
    @strawberry.mutation(description="Submit an item for review.")
    async def submit_item(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            SubmitItemInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor = actor_of(info)
        payload: Any = input.payload if input.payload is not None else {}

        async def call() -> item_services.ItemView:
            if not isinstance(payload, dict):
                raise item_services.invalid("payload must be an object", "payload")
            plan: Any = input.plan
            if input.agent_plan is not None:
                if plan is not None:
                    raise item_services.invalid("give `agentPlan` or `plan`, not both", "plan")
                plan = plan_document(input.agent_plan)
            elif plan is not None and not isinstance(plan, dict):
                raise item_services.invalid("plan must be an object", "plan")
            guards = key_guards(input.guards)
            return await item_services.submit_item(
                actor,
                services_of(info),
                item_services.SubmitItemInput(
                    template_key=input.template_key,
                    title=input.title,
                    payload=payload,
                    template_version=input.template_version,
                    priority=input.priority,
                    external_ref=input.external_ref,
                    plan=plan,
                    environment=input.environment,
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(description="Approve a step (counts towards its quorum).")
    async def approve_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DecideStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        return await _decide(info, input, item_services.Outcome.APPROVE)

    @strawberry.mutation(description="Reject a step; a reason is required.")
    async def reject_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DecideStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        return await _decide(info, input, item_services.Outcome.REJECT)

    @strawberry.mutation(description="Send the item back to its requester; a reason is required.")
    async def request_changes(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DecideStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        return await _decide(info, input, item_services.Outcome.REQUEST_CHANGES)
