"""Overrides: a decision that bypasses the normal review, never a side path. It needs an
elevated role and a strong justification, and on a sensitive step a second person."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from signoff.db import items as items_repo
from signoff.domain.actors import Actor
from signoff.domain.events import Override
from signoff.domain.records import DecisionOutcome
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, change
from signoff.services.uow import Guards


@dataclass(frozen=True)
class OverrideInput:
    """An override request (or, on a sensitive step, the second person's confirmation)."""

    step_id: UUID
    justification: str
    guards: Guards = field(default_factory=Guards)


async def override_step(actor: Actor, ctx: ServiceContext, inp: OverrideInput) -> ItemView:
    """Approve a step by override. On a sensitive step the first call only records the request;
    a second holder of an override role, not the requester of the override, completes it."""

    async def event(view: ItemView) -> Override:
        step = view.step(inp.step_id)
        decisions = await items_repo.decisions_of_step(step.id, view.item.revision)
        requests = [d for d in decisions if d.outcome is DecisionOutcome.OVERRIDE_REQUESTED]
        first = requests[-1].actor_id if requests else None
        return Override(step.key, actor.principal, inp.justification, first)

    return await change(
        actor,
        ctx,
        operation="overrideStep",
        fingerprint={"step": str(inp.step_id), "j": inp.justification},
        idempotency_key=inp.guards.idempotency_key,
        expected_version=inp.guards.expected_version,
        event=event,
        step_id=inp.step_id,
    )
