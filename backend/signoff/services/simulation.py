"""Dry runs: play a template against an input, or replay recent items through a changed draft.
Both run the engine's own progression on records that are never stored. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.db import templates as template_repo
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.permissions import Permission
from signoff.domain.simulation import (
    Difference,
    SimulationResult,
    compare,
    real_decisions,
    simulate,
)
from signoff.domain.templates import TemplateDefinition, parse_template
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.templates import definition_of, template_limits
from signoff.services.timer_arming import tenant_calendar


async def _require_template_admin(actor: Actor, ctx: ServiceContext, what: str) -> None:
    await permissions.require(actor, ctx, Permission.ADMINISTER_TEMPLATES, what)


async def _override_roles(actor: Actor, ctx: ServiceContext, key: str) -> frozenset[str]:
    grants = await permissions.grants_of(actor.tenant_id, ctx)
    return grants.roles(Permission.OVERRIDE, key)


async def resolve_definition(
    actor: Actor,
    ctx: ServiceContext,
    *,
    key: str | None,
    version: int | None,
    document: dict[str, Any] | None,
) -> TemplateDefinition:
    """A draft document given inline (anyone may try their own), or a published version by
    key (template admins only: a published template is the tenant's, not the caller's)."""
    if document is not None:
        return parse_template(document, template_limits(ctx.settings))
    if not key:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "give a template key or a definition", "templateKey"
        )
    await _require_template_admin(actor, ctx, "simulating a published template")
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
    """What would happen if `actor` submitted `payload` now: steps, assignees, deadlines (by the
    tenant's calendar), escalations, notifications and the rules that would fail."""
    return simulate(
        defn,
        payload,
        now=ctx.clock.now(),
        calendar=await tenant_calendar(actor.tenant_id),
        requester=actor.user_id,
        decisions=decisions,
        max_payload_bytes=ctx.settings.max_payload_bytes,
        override_roles=await _override_roles(actor, ctx, defn.key),
    )


@dataclass(frozen=True)
class ReplayedItem:
    """One real item played through the published template and through the draft."""

    item_id: UUID
    title: str
    differences: list[Difference]


async def replay_recent(
    actor: Actor,
    ctx: ServiceContext,
    key: str,
    draft: TemplateDefinition,
    last: int,
) -> list[ReplayedItem]:
    """Replay the last `last` items of template `key` through `draft` and report what would
    have differed (assignees, deadlines and breaches, outcomes). Template admins only: it
    reads every item of the template."""
    await _require_template_admin(actor, ctx, "replaying a template's items")
    override_roles = await _override_roles(actor, ctx, key)
    calendar = await tenant_calendar(actor.tenant_id)
    items = await items_repo.recent_items_of_template(actor.tenant_id, key, max(1, min(last, 200)))
    replayed = []
    for item in items:
        version = await template_repo.get(actor.tenant_id, item.template_id)
        assert version is not None
        steps = await items_repo.steps_of(actor.tenant_id, item.id)
        decisions = real_decisions(steps)
        kwargs: dict[str, Any] = {
            "now": item.created_at,
            "calendar": calendar,
            "requester": item.requester_id,
            "max_payload_bytes": ctx.settings.max_payload_bytes,
            "override_roles": override_roles,
        }
        before = simulate(
            definition_of(version, ctx.settings), item.payload, decisions=decisions, **kwargs
        )
        after = simulate(
            draft,
            item.payload,
            decisions={k: v for k, v in decisions.items() if draft.has_step(k)},
            **kwargs,
        )
        replayed.append(ReplayedItem(item.id, item.title, compare(before, after)))
    return replayed
