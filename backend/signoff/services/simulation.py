"""Dry runs: play a template against an input, or replay recent items through a changed draft.
Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.db import templates as template_repo
from signoff.domain.actors import Actor
from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.simulation import Difference, SimulationResult, compare, simulate
from signoff.domain.states import StepState
from signoff.domain.templates import TemplateDefinition, parse_template
from signoff.services.context import ServiceContext
from signoff.services.templates import definition_of, template_limits


async def resolve_definition(
    actor: Actor,
    ctx: ServiceContext,
    *,
    key: str | None,
    version: int | None,
    document: dict[str, Any] | None,
) -> TemplateDefinition:
    """A draft document given inline, or a published version by key."""
    if document is not None:
        return parse_template(document, template_limits(ctx.settings))
    if not key:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "give a template key or a definition", "templateKey"
        )
    row = await template_repo.find_published(actor.tenant_id, key, version)
    if row is None:
        raise DomainError(
            ErrorCode.TEMPLATE_NOT_PUBLISHED, f"no published template {key!r}", "templateKey"
        )
    return definition_of(row, ctx.settings)


async def simulate_template(
    actor: Actor,
    ctx: ServiceContext,
    defn: TemplateDefinition,
    payload: dict[str, Any],
    decisions: dict[str, str] | None = None,
) -> SimulationResult:
    """What would happen if `actor` submitted `payload` now: steps, assignees, deadlines,
    escalations, notifications and the rules that would fail."""
    return simulate(
        defn,
        payload,
        now=ctx.clock.now(),
        calendar=WALL_CLOCK,
        requester=actor.user_id,
        decisions=decisions,
        max_payload_bytes=ctx.settings.max_payload_bytes,
    )


@dataclass(frozen=True)
class ReplayedItem:
    """One real item played through the published template and through the draft."""

    item_id: UUID
    title: str
    differences: list[Difference]


_DECIDED = {
    StepState.APPROVED: "approve",
    StepState.COMPLETED: "approve",
    StepState.REJECTED: "reject",
    StepState.EXPIRED: "timeout",
}


async def replay_recent(
    actor: Actor,
    ctx: ServiceContext,
    key: str,
    draft: TemplateDefinition,
    last: int,
) -> list[ReplayedItem]:
    """Replay the last `last` items of template `key` through `draft` and report what would
    have differed (assignees, deadlines and breaches, outcomes)."""
    items = await items_repo.recent_items_of_template(actor.tenant_id, key, max(1, min(last, 200)))
    replayed = []
    for item in items:
        template_row = await template_repo.get(actor.tenant_id, item.template_id)
        assert template_row is not None
        before_defn = definition_of(template_row, ctx.settings)
        steps = await items_repo.steps_of(actor.tenant_id, item.id)
        decisions = {}
        for step in steps:
            verdict = _DECIDED.get(step.state)
            if verdict is not None:
                decisions[step.key] = step.decision_value or verdict
        kwargs: dict[str, Any] = {
            "now": item.created_at,
            "calendar": WALL_CLOCK,
            "requester": item.requester_id,
            "max_payload_bytes": ctx.settings.max_payload_bytes,
        }
        before = simulate(before_defn, item.payload, decisions=decisions, **kwargs)
        after = simulate(
            draft,
            item.payload,
            decisions={k: v for k, v in decisions.items() if draft.has_step(k)},
            **kwargs,
        )
        replayed.append(ReplayedItem(item.id, item.title, compare(before, after)))
    return replayed
