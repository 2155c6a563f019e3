"""Overrides: a decision that bypasses the normal review, never a side path. It needs an
elevated role and a strong justification, and on a sensitive step a second person."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from signoff.db import items as items_repo
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.policies import check_override
from signoff.domain.records import DecisionOutcome, Step
from signoff.domain.states import STEP_MACHINE, ItemAction, ItemState, StepAction
from signoff.services.actions import Guards
from signoff.services.context import ServiceContext
from signoff.services.engine import RESOLVED_OK, ItemView, transition_item, transition_step
from signoff.services.items import act_on_step
from signoff.services.uow import UnitOfWork


@dataclass(frozen=True)
class OverrideInput:
    """An override request (or, on a sensitive step, the second person's confirmation)."""

    step_id: UUID
    justification: str
    guards: Guards = field(default_factory=Guards)


async def override_step(actor: Actor, ctx: ServiceContext, inp: OverrideInput) -> ItemView:
    """Approve a step by override. On a sensitive step the first call only records the request;
    a second holder of an override role, not the requester of the override, completes it."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        STEP_MACHINE.next_state(step.state, StepAction.OVERRIDE)
        if view.state not in (ItemState.PENDING, ItemState.REJECTED, ItemState.EXPIRED):
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"cannot override a step of an item that is {view.state.value}",
            )
        if view.state in (ItemState.REJECTED, ItemState.EXPIRED):
            # Reviving a refused item must not skip the reviews that never happened.
            unreviewed = [
                s.key for s in view.steps if s.id != step.id and s.state not in RESOLVED_OK
            ]
            if unreviewed:
                raise DomainError(
                    ErrorCode.ILLEGAL_TRANSITION,
                    "overriding this step would approve the item without the reviews of "
                    + ", ".join(unreviewed),
                    details={"unreviewed": unreviewed},
                )
        if actor.user_id == view.item.requester_id:
            raise DomainError(
                ErrorCode.SEPARATION_OF_DUTIES, "the requester cannot override their own item"
            )
        revision = view.item.revision
        decisions = await items_repo.decisions_of_step(step.id, revision)
        pending = [d for d in decisions if d.outcome == DecisionOutcome.OVERRIDE_REQUESTED]
        first = pending[-1].actor_id if pending else None
        second = actor.user_id if (step.sensitive and first) else None
        check_override(
            actor.principal.roles,
            ctx.settings.override_roles,
            inp.justification,
            ctx.settings.override_min_justification,
            False,
            None,
            actor.user_id,
        )
        if step.sensitive and first is None:
            await _decision(
                uow, view, step, actor, DecisionOutcome.OVERRIDE_REQUESTED, inp.justification
            )
            uow.record(
                "step.override_requested",
                item_id=view.id,
                step_id=step.id,
                reason=inp.justification,
                data={"step": step.key},
            )
            return
        if step.sensitive:
            check_override(
                actor.principal.roles,
                ctx.settings.override_roles,
                inp.justification,
                ctx.settings.override_min_justification,
                True,
                second,
                first or "",
            )
        await _decision(uow, view, step, actor, DecisionOutcome.OVERRIDE, inp.justification)
        await transition_step(
            uow,
            view,
            step,
            StepAction.OVERRIDE,
            reason=inp.justification,
            data={"requested_by": first or actor.user_id, "confirmed_by": second},
        )
        if view.state in (ItemState.REJECTED, ItemState.EXPIRED):
            await transition_item(
                uow, view, ItemAction.OVERRIDE, reason=inp.justification, data={"step": step.key}
            )

    return await act_on_step(
        actor,
        ctx,
        operation="overrideStep",
        step_id=inp.step_id,
        fingerprint={"step": str(inp.step_id), "j": inp.justification},
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        body=body,
    )


async def _decision(
    uow: UnitOfWork,
    view: ItemView,
    step: Step,
    actor: Actor,
    outcome: DecisionOutcome,
    reason: str,
) -> None:
    await items_repo.insert_decision(
        step=step,
        revision=view.item.revision,
        actor_id=actor.user_id,
        outcome=outcome,
        reason=reason,
        now=uow.ctx.clock.now(),
    )
