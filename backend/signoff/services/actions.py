"""Reviewer and requester actions besides deciding: claim, reassign (hand over one's seat,
delegate it, or replace seats), modify, resubmit, cancel, approve all, resolve a held step.

Each builds one event for the progression and leaves every rule to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from signoff.domain.actors import Actor
from signoff.domain.events import (
    ApproveAll,
    Cancel,
    Claim,
    Delegate,
    Event,
    Modify,
    Reassign,
    ResolveHold,
    Resubmit,
    Unclaim,
)
from signoff.domain.snapshot import HoldOption
from signoff.domain.template_model import Assignees
from signoff.domain.templates import validate_payload
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, change
from signoff.services.templates import template_limits
from signoff.services.uow import Guards


def _fp(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("guards", None)
    return data


async def _on_step(
    actor: Actor,
    ctx: ServiceContext,
    operation: str,
    step_id: UUID,
    fingerprint: Mapping[str, Any],
    guards: Guards,
    make: Any,
) -> ItemView:
    async def event(view: ItemView) -> Event:
        event_: Event = make(view.step(step_id).key, view)
        return event_

    return await change(
        actor,
        ctx,
        operation=operation,
        fingerprint=fingerprint,
        idempotency_key=guards.idempotency_key,
        expected_version=guards.expected_version,
        event=event,
        step_id=step_id,
    )


async def _on_item(
    actor: Actor,
    ctx: ServiceContext,
    operation: str,
    item_id: UUID,
    fingerprint: Mapping[str, Any],
    guards: Guards,
    event: Event,
) -> ItemView:
    async def make(view: ItemView) -> Event:
        return event

    return await change(
        actor,
        ctx,
        operation=operation,
        fingerprint=fingerprint,
        idempotency_key=guards.idempotency_key,
        expected_version=guards.expected_version,
        event=make,
        item_id=item_id,
    )


async def claim_step(
    actor: Actor, ctx: ServiceContext, step_id: UUID, g: Guards, reason: str | None = None
) -> ItemView:
    """Take a step so that other assignees see somebody is on it. The reason is recorded on
    the `step.claim` audit event (and is part of the request a key guards: a reused key with
    another reason is refused)."""
    return await _on_step(
        actor,
        ctx,
        "claimStep",
        step_id,
        {"step": str(step_id), "reason": reason},
        g,
        lambda key, view: Claim(key, actor.principal, reason),
    )


async def unclaim_step(
    actor: Actor, ctx: ServiceContext, step_id: UUID, g: Guards, reason: str | None = None
) -> ItemView:
    """Release a claim (the claimer, or an admin). The reason is recorded on the
    `step.unclaim` audit event (and is part of the request a key guards: a reused key with
    another reason is refused)."""
    return await _on_step(
        actor,
        ctx,
        "unclaimStep",
        step_id,
        {"step": str(step_id), "reason": reason},
        g,
        lambda key, view: Unclaim(key, actor.principal, reason),
    )


@dataclass(frozen=True)
class ReassignInput:
    """Move a step's seats: delegate one's own seat, hand it over to one user, or (an admin,
    or a role the template names) replace the unfilled seats with these users, groups, roles."""

    step_id: UUID
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    delegate_to: str | None = None
    reason: str | None = None
    guards: Guards = field(default_factory=Guards)


async def reassign_step(actor: Actor, ctx: ServiceContext, inp: ReassignInput) -> ItemView:
    """Delegate, hand over one's own seat, or replace seats (see `ReassignInput`)."""

    def make(key: str, view: ItemView) -> Event:
        if inp.delegate_to:
            return Delegate(key, actor.principal, inp.delegate_to, inp.reason)
        spec = Assignees(users=inp.users, groups=inp.groups, roles=inp.roles)
        return Reassign(key, actor.principal, spec, inp.reason)

    return await _on_step(actor, ctx, "reassignStep", inp.step_id, _fp(inp), inp.guards, make)


@dataclass(frozen=True)
class ModifyParamsInput:
    """New parameters for a step; the originals are kept for the diff."""

    step_id: UUID
    params: dict[str, Any]
    reason: str | None = None
    guards: Guards = field(default_factory=Guards)


async def modify_step_params(actor: Actor, ctx: ServiceContext, inp: ModifyParamsInput) -> ItemView:
    """A reviewer changes what a step will do before deciding it (seed: MODIFY_STEP)."""
    return await _on_step(
        actor,
        ctx,
        "modifyStepParams",
        inp.step_id,
        _fp(inp),
        inp.guards,
        lambda key, view: Modify(key, actor.principal, inp.params, inp.reason),
    )


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

    async def make(view: ItemView) -> Event:
        if inp.payload is not None:
            limit = template_limits(ctx.settings).max_payload_bytes
            validate_payload(view.definition.fields, inp.payload, limit)
        return Resubmit(actor.principal, inp.payload, inp.title, inp.reason)

    return await change(
        actor,
        ctx,
        operation="resubmitItem",
        fingerprint=_fp(inp),
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        event=make,
        item_id=inp.item_id,
    )


async def cancel_item(
    actor: Actor, ctx: ServiceContext, item_id: UUID, reason: str | None, g: Guards
) -> ItemView:
    """Withdraw an item (its requester, or an admin); open steps are cancelled. For a plan this
    is 'cancel all'."""
    fingerprint = {"item": str(item_id), "reason": reason}
    event = Cancel(actor.principal, reason)
    return await _on_item(actor, ctx, "cancelItem", item_id, fingerprint, g, event)


async def approve_all(
    actor: Actor, ctx: ServiceContext, item_id: UUID, reason: str | None, g: Guards
) -> ItemView:
    """Approve every open step of a plan that the actor holds a seat on, in one transaction."""
    fingerprint = {"item": str(item_id), "reason": reason}
    event = ApproveAll(actor.principal, reason)
    return await _on_item(actor, ctx, "approveAll", item_id, fingerprint, g, event)


@dataclass(frozen=True)
class ResolveHeldInput:
    """The requester's choice on a step held by an `ask_user` dependency."""

    step_id: UUID
    option: HoldOption
    reason: str | None = None
    value: dict[str, Any] | None = None
    guards: Guards = field(default_factory=Guards)


async def resolve_held_step(actor: Actor, ctx: ServiceContext, inp: ResolveHeldInput) -> ItemView:
    """Retry the failed upstream steps, skip the held step, give the missing value by hand, or
    cancel the item (the requester, or an admin)."""
    return await _on_step(
        actor,
        ctx,
        "resolveHeldStep",
        inp.step_id,
        _fp(inp),
        inp.guards,
        lambda key, view: ResolveHold(key, actor.principal, inp.option, inp.reason, inp.value),
    )
