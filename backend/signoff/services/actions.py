"""Reviewer and requester actions besides deciding: claim, reassign, delegate, modify, resubmit,
cancel, approve all, resolve a held dependency."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from signoff.domain.actors import Actor
from signoff.domain.dependencies import steps_needing_user
from signoff.domain.errors import DomainError, ErrorCode, forbidden, invalid
from signoff.domain.records import Step, StepAssignees
from signoff.domain.states import (
    ITEM_MACHINE,
    STEP_MACHINE,
    ItemAction,
    StepAction,
    StepState,
)
from signoff.domain.templates import TemplateKind, validate_payload
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, advance, transition_item, transition_step
from signoff.services.items import (
    DecideStepInput,
    Outcome,
    act_on_step,
    check_version,
    decide_step,
    load_view,
    require_assignee,
    require_reason,
)
from signoff.services.templates import template_limits
from signoff.services.uow import UnitOfWork, remember_result, replayed_result, unit_of_work


@dataclass(frozen=True)
class Guards:
    """What every mutation may carry: an idempotency key and the item version it expects."""

    idempotency_key: str | None = None
    expected_version: int | None = None


def _is_admin(actor: Actor, ctx: ServiceContext) -> bool:
    return actor.principal.has_any_role(ctx.settings.admin_roles)


async def claim_step(actor: Actor, ctx: ServiceContext, step_id: UUID, g: Guards) -> ItemView:
    """Take a step so that other assignees see somebody is on it."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        STEP_MACHINE.next_state(step.state, StepAction.CLAIM)
        require_assignee(actor, step)
        if step.claimed_by and step.claimed_by != actor.user_id:
            raise DomainError(
                ErrorCode.ALREADY_CLAIMED, f"step is claimed by {step.claimed_by}", "stepId"
            )
        await transition_step(
            uow, view, step, StepAction.CLAIM, changes={"claimed_by": actor.user_id}
        )

    return await act_on_step(
        actor,
        ctx,
        operation="claimStep",
        step_id=step_id,
        fingerprint={"step": str(step_id)},
        idempotency_key=g.idempotency_key,
        expected_version=g.expected_version,
        body=body,
    )


async def unclaim_step(actor: Actor, ctx: ServiceContext, step_id: UUID, g: Guards) -> ItemView:
    """Release a claim (the claimer, or an admin)."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        STEP_MACHINE.next_state(step.state, StepAction.UNCLAIM)
        if step.claimed_by is None:
            raise invalid("step is not claimed", "stepId")
        if step.claimed_by != actor.user_id and not _is_admin(actor, ctx):
            raise forbidden("only the claimer or an admin can release a claim")
        await transition_step(
            uow,
            view,
            step,
            StepAction.UNCLAIM,
            changes={"claimed_by": None},
            data={"was": step.claimed_by},
        )

    return await act_on_step(
        actor,
        ctx,
        operation="unclaimStep",
        step_id=step_id,
        fingerprint={"step": str(step_id)},
        idempotency_key=g.idempotency_key,
        expected_version=g.expected_version,
        body=body,
    )


@dataclass(frozen=True)
class ReassignInput:
    """Move a step to other people, or hand one's own seat to a delegate."""

    step_id: UUID
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    delegate_to: str | None = None
    reason: str | None = None
    guards: Guards = field(default_factory=Guards)


async def reassign_step(actor: Actor, ctx: ServiceContext, inp: ReassignInput) -> ItemView:
    """Reassign (an assignee or admin replaces the assignees) or delegate (an assignee hands
    their own seat to one user, who then acts for them)."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        STEP_MACHINE.next_state(step.state, StepAction.REASSIGN)
        reason = require_reason(inp.reason, "to reassign or delegate")
        assignees = step.assignees
        if inp.delegate_to:
            acting_for = require_assignee(actor, step)
            if acting_for is not None:
                raise forbidden("a delegate cannot delegate further")
            if inp.delegate_to == actor.user_id:
                raise invalid("cannot delegate to yourself", "delegateTo")
            assignees = assignees.with_delegate(inp.delegate_to, actor.user_id)
            data: dict[str, Any] = {"delegate": inp.delegate_to, "delegator": actor.user_id}
        else:
            if not _is_admin(actor, ctx):
                require_assignee(actor, step)
            if not (inp.users or inp.groups or inp.roles):
                raise invalid("name at least one user, group or role", "users")
            assignees = StepAssignees(
                users=tuple(sorted(set(inp.users))),
                groups=tuple(sorted(set(inp.groups))),
                roles=tuple(sorted(set(inp.roles))),
            )
            data = {"before": step.assignees.to_dict(), "after": assignees.to_dict()}
        await transition_step(
            uow,
            view,
            step,
            StepAction.REASSIGN,
            reason=reason,
            changes={"assignees": assignees, "claimed_by": None},
            data=data,
        )

    return await act_on_step(
        actor,
        ctx,
        operation="reassignStep",
        step_id=inp.step_id,
        fingerprint=_fp(inp),
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        body=body,
    )


def _fp(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("guards", None)
    return data


@dataclass(frozen=True)
class ModifyParamsInput:
    """New parameters for a step; the originals are kept for the diff."""

    step_id: UUID
    params: dict[str, Any]
    reason: str | None = None
    guards: Guards = field(default_factory=Guards)


async def modify_step_params(actor: Actor, ctx: ServiceContext, inp: ModifyParamsInput) -> ItemView:
    """A reviewer changes what a step will do before deciding it (seed: MODIFY_STEP)."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        STEP_MACHINE.next_state(step.state, StepAction.MODIFY)
        acting_for = require_assignee(actor, step)
        reason = require_reason(inp.reason, "to modify a step")
        original = step.original_params if step.original_params is not None else step.params
        await transition_step(
            uow,
            view,
            step,
            StepAction.MODIFY,
            reason=reason,
            acting_for=acting_for,
            changes={"params": inp.params, "original_params": original},
            data={"before": dict(step.params), "after": inp.params},
        )

    return await act_on_step(
        actor,
        ctx,
        operation="modifyStepParams",
        step_id=inp.step_id,
        fingerprint=_fp(inp),
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        body=body,
    )


async def _item_action(
    actor: Actor,
    ctx: ServiceContext,
    item_id: UUID,
    operation: str,
    fingerprint: dict[str, Any],
    g: Guards,
    body: Any,
) -> ItemView:
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, g.idempotency_key, operation, fingerprint)
        if replay is not None:
            return await load_view(actor, ctx, UUID(replay["item_id"]), lock=False)
        view = await load_view(actor, ctx, item_id, lock=True)
        check_version(view, g.expected_version)
        await body(uow, view)
        await remember_result(uow, g.idempotency_key, {"item_id": str(item_id)})
        return view


@dataclass(frozen=True)
class ResubmitInput:
    """A requester's new revision after changes were requested."""

    item_id: UUID
    payload: dict[str, Any] | None = None
    title: str | None = None
    reason: str | None = None
    guards: Guards = field(default_factory=Guards)


async def resubmit_item(actor: Actor, ctx: ServiceContext, inp: ResubmitInput) -> ItemView:
    """Open a new revision: steps that asked for changes review again; history is kept."""

    async def body(uow: UnitOfWork, view: ItemView) -> None:
        if view.item.requester_id != actor.user_id:
            raise forbidden("only the requester can resubmit")
        ITEM_MACHINE.next_state(view.state, ItemAction.RESUBMIT)
        changes: dict[str, Any] = {"revision": view.item.revision + 1}
        if inp.payload is not None:
            validate_payload(
                view.definition.fields, inp.payload, template_limits(ctx.settings).max_payload_bytes
            )
            changes["payload"] = inp.payload
        if inp.title is not None:
            if not inp.title.strip():
                raise invalid("title must not be empty", "title")
            changes["title"] = inp.title.strip()
        await transition_item(
            uow,
            view,
            ItemAction.RESUBMIT,
            changes=changes,
            reason=inp.reason,
            data={"revision": changes["revision"], "previous_payload": dict(view.item.payload)},
        )
        for step in view.steps:
            if step.state == StepState.CHANGES_REQUESTED:
                await transition_step(
                    uow, view, step, StepAction.RESUBMIT, changes={"claimed_by": None}
                )
        await advance(uow, view)

    return await _item_action(actor, ctx, inp.item_id, "resubmitItem", _fp(inp), inp.guards, body)


async def cancel_item(
    actor: Actor, ctx: ServiceContext, item_id: UUID, reason: str | None, g: Guards
) -> ItemView:
    """Withdraw an item (its requester, or an admin); open steps are cancelled. For a plan this is
    'cancel all'."""

    async def body(uow: UnitOfWork, view: ItemView) -> None:
        if view.item.requester_id != actor.user_id and not _is_admin(actor, ctx):
            raise forbidden("only the requester or an admin can cancel an item")
        text = require_reason(reason, "to cancel")
        await transition_item(uow, view, ItemAction.CANCEL, reason=text)
        for step in view.steps:
            if (step.state, StepAction.CANCEL) in STEP_MACHINE.table:
                await transition_step(uow, view, step, StepAction.CANCEL, data={"by": "item"})

    return await _item_action(
        actor, ctx, item_id, "cancelItem", {"item": str(item_id), "reason": reason}, g, body
    )


async def approve_all(
    actor: Actor, ctx: ServiceContext, item_id: UUID, reason: str | None, g: Guards
) -> ItemView:
    """Approve every open step of a plan that the actor may approve, in one transaction."""
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(
            uow, g.idempotency_key, "approveAll", {"item": str(item_id), "reason": reason}
        )
        if replay is not None:
            return await load_view(actor, ctx, item_id, lock=False)
        view = await load_view(actor, ctx, item_id, lock=True)
        check_version(view, g.expected_version)
        if view.definition.kind != TemplateKind.PLAN:
            raise invalid("approve all applies to plans", "itemId")
        approved = 0
        # Steps open up as their dependencies are approved: repeat until nothing is left.
        while True:
            view = await load_view(actor, ctx, item_id, lock=True)
            candidates = [
                s for s in view.steps if s.state == StepState.ACTIVE and _can_approve(actor, s)
            ]
            if not candidates:
                break
            for step in candidates:
                # Joins this transaction: a nested transaction is not a new one.
                await decide_step(
                    actor,
                    ctx,
                    DecideStepInput(step_id=step.id, outcome=Outcome.APPROVE, reason=reason),
                )
                approved += 1
        if approved == 0:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "no open step you can approve")
        uow.record("item.approve_all", item_id=item_id, data={"steps": approved})
        await remember_result(uow, g.idempotency_key, {"item_id": str(item_id)})
        return await load_view(actor, ctx, item_id, lock=False)


def _can_approve(actor: Actor, step: Step) -> bool:
    try:
        require_assignee(actor, step)
    except DomainError:
        return False
    return True


async def resolve_held_step(
    actor: Actor, ctx: ServiceContext, step_id: UUID, skip: bool, reason: str | None, g: Guards
) -> ItemView:
    """The requester decides a step held by an `ask_user` dependency: skip it, or keep waiting
    (for an upstream override)."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        if view.item.requester_id != actor.user_id and not _is_admin(actor, ctx):
            raise forbidden("only the requester or an admin can resolve a held step")
        held = steps_needing_user(view.definition, view.step_states(), view.decision_values())
        if step.key not in held:
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"step {step.key!r} is not waiting for a decision of yours",
            )
        text = require_reason(reason, "to resolve a held step")
        if skip:
            await transition_step(
                uow, view, step, StepAction.SKIP, reason=text, data={"by": "requester"}
            )
        else:
            uow.record("step.hold_kept", item_id=view.id, step_id=step.id, reason=text)
        await advance(uow, view)

    return await act_on_step(
        actor,
        ctx,
        operation="resolveHeldStep",
        step_id=step_id,
        fingerprint={"step": str(step_id), "skip": skip, "reason": reason},
        idempotency_key=g.idempotency_key,
        expected_version=g.expected_version,
        body=body,
    )
