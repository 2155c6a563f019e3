"""Claim, reassign, delegate, modify, resubmit, cancel, approve all, resolve, override."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.guards import GuardsInput, guards_field, versioned_guards
from signoff.api.mutations.common import ItemPayload, item_payload
from signoff.domain.errors import invalid
from signoff.domain.snapshot import HoldOption
from signoff.services import actions, overrides
from signoff.services.engine import ItemView


def _step(global_id: strawberry.ID) -> Any:
    return ids.decode_uuid(global_id, "Step", "stepId")


def _item(global_id: strawberry.ID) -> Any:
    return ids.decode_uuid(global_id, "WorkflowItem", "itemId")


@strawberry.input(description="Replace a step's assignees.")
class ReassignStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    users: list[str] = strawberry.field(default_factory=list, description="User ids.")
    groups: list[str] = strawberry.field(default_factory=list, description="Group names.")
    roles: list[str] = strawberry.field(default_factory=list, description="Role names.")
    reason: str = strawberry.field(description="Why (recorded in the audit trail).")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="Hand one's own seat on a step to another user.")
class DelegateStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    delegate_to: str = strawberry.field(description="User who will act for you.")
    reason: str = strawberry.field(description="Why (recorded in the audit trail).")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="New parameters for a step; the originals are kept.")
class ModifyStepParamsInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    params: JSON = strawberry.field(description="The full new parameters.")
    reason: str = strawberry.field(description="Why.")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="A new revision after changes were requested.")
class ResubmitItemInput:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    payload: JSON | None = strawberry.field(default=None, description="New payload, if changed.")
    title: str | None = strawberry.field(default=None, description="New title, if changed.")
    reason: str | None = strawberry.field(default=None, description="What changed.")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="An action on a whole item that needs a reason.")
class ItemReasonInput:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    reason: str | None = strawberry.field(default=None, description="Why.")
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="An action on one step that needs a reason.")
class StepReasonInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    reason: str | None = strawberry.field(
        default=None, description="Why; recorded as the reason of the step's audit event."
    )
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="Choose what happens to a step held by an `ask_user` dependency.")
class ResolveHeldStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the held step.")
    option: HoldOption = strawberry.field(
        description="Retry the failed upstream steps, skip this step, provide the value by "
        "hand, or cancel the item."
    )
    reason: str = strawberry.field(description="Why.")
    value: JSON | None = strawberry.field(
        default=None,
        description="With PROVIDE: the value the upstream steps would have provided (an "
        "object, merged into the step's params).",
    )
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="Override a step (approve it bypassing review).")
class OverrideStepInput:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    justification: str = strawberry.field(
        description="Strong justification (minimum length configured by the operator)."
    )
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.type
class ActionMutations:
    @strawberry.mutation(description="Claim a step so other assignees see you are on it.")
    async def claim_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            StepReasonInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.claim_step(
                actor, ctx, _step(input.step_id), versioned_guards(input.guards), input.reason
            )
        )

    @strawberry.mutation(description="Release a claim.")
    async def unclaim_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            StepReasonInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.unclaim_step(
                actor, ctx, _step(input.step_id), versioned_guards(input.guards), input.reason
            )
        )

    @strawberry.mutation(
        description="Replace a step's assignees (an assignee, or a holder of manage_items)."
    )
    async def reassign_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ReassignStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.reassign_step(
                actor,
                ctx,
                actions.ReassignInput(
                    step_id=_step(input.step_id),
                    users=tuple(input.users),
                    groups=tuple(input.groups),
                    roles=tuple(input.roles),
                    reason=input.reason,
                    guards=versioned_guards(input.guards),
                ),
            )
        )

    @strawberry.mutation(description="Delegate your seat on a step; the delegate acts for you.")
    async def delegate_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DelegateStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.reassign_step(
                actor,
                ctx,
                actions.ReassignInput(
                    step_id=_step(input.step_id),
                    delegate_to=input.delegate_to,
                    reason=input.reason,
                    guards=versioned_guards(input.guards),
                ),
            )
        )

    @strawberry.mutation(description="Change a step's parameters before deciding it.")
    async def modify_step_params(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ModifyStepParamsInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)

        async def call() -> ItemView:
            if not isinstance(input.params, dict):
                raise invalid("params must be an object", "params")
            return await actions.modify_step_params(
                actor,
                ctx,
                actions.ModifyParamsInput(
                    step_id=_step(input.step_id),
                    params=input.params,
                    reason=input.reason,
                    guards=versioned_guards(input.guards),
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(description="Resubmit an item after changes were requested.")
    async def resubmit_item(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ResubmitItemInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)

        async def call() -> ItemView:
            if input.payload is not None and not isinstance(input.payload, dict):
                raise invalid("payload must be an object", "payload")
            return await actions.resubmit_item(
                actor,
                ctx,
                actions.ResubmitInput(
                    item_id=_item(input.item_id),
                    payload=input.payload,
                    title=input.title,
                    reason=input.reason,
                    guards=versioned_guards(input.guards),
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(description="Cancel an item (for a plan: cancel all); reason required.")
    async def cancel_item(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ItemReasonInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.cancel_item(
                actor, ctx, _item(input.item_id), input.reason, versioned_guards(input.guards)
            )
        )

    @strawberry.mutation(description="Approve every open step of a plan that you may approve.")
    async def approve_all(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ItemReasonInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: actions.approve_all(
                actor, ctx, _item(input.item_id), input.reason, versioned_guards(input.guards)
            )
        )

    @strawberry.mutation(
        description="Decide a step held by an ask_user dependency (the requester, or a holder of "
        "manage_items)."
    )
    async def resolve_held_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ResolveHeldStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)

        async def call() -> ItemView:
            if input.value is not None and not isinstance(input.value, dict):
                raise invalid("value must be an object", "value")
            return await actions.resolve_held_step(
                actor,
                ctx,
                actions.ResolveHeldInput(
                    step_id=_step(input.step_id),
                    option=input.option,
                    reason=input.reason,
                    value=input.value,
                    guards=versioned_guards(input.guards),
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(
        description="Override a step: needs an override role and a strong justification; on a "
        "sensitive step the first call requests, a second person's call confirms."
    )
    async def override_step(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            OverrideStepInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor, ctx = actor_of(info), services_of(info)
        return await item_payload(
            lambda: overrides.override_step(
                actor,
                ctx,
                overrides.OverrideInput(
                    step_id=_step(input.step_id),
                    justification=input.justification,
                    guards=versioned_guards(input.guards),
                ),
            )
        )
