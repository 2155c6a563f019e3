"""Item use cases: submit, read, and the reviewer decisions on a step."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.db import templates as template_repo
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, invalid, not_found
from signoff.domain.events import Submit, Vote, VoteOutcome
from signoff.domain.intake import new_item, new_steps
from signoff.domain.permissions import Permission, can_read_item
from signoff.domain.progression import Snapshot, progress
from signoff.domain.retention import digest_of
from signoff.domain.templates import (
    TemplateKind,
    plan_to_template,
    template_to_dict,
    validate_payload,
)
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, apply, change, context_for, load_view
from signoff.services.templates import definition_of, template_limits
from signoff.services.timer_arming import tenant_calendar
from signoff.services.uow import remember_result, replayed_result, unit_of_work

__all__ = [
    "DecideStepInput",
    "ItemView",
    "Outcome",
    "SubmitItemInput",
    "decide_step",
    "decide_steps",
    "get_item",
    "invalid",
    "submit_item",
]

MAX_TITLE = 300

Outcome = VoteOutcome
"""A reviewer's decision on a step (approve, reject, request changes)."""


@dataclass(frozen=True)
class SubmitItemInput:
    """What a requester sends to open an item."""

    template_key: str
    title: str
    payload: dict[str, Any] = field(default_factory=dict)
    template_version: int | None = None
    priority: int = 0
    external_ref: str | None = None
    plan: dict[str, Any] | None = None
    environment: str = "production"
    idempotency_key: str | None = None


@dataclass(frozen=True)
class DecideStepInput:
    """A reviewer's decision, with the guards every mutation takes."""

    step_id: UUID
    outcome: VoteOutcome
    reason: str | None = None
    value: str | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None


def _fingerprint(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("idempotency_key", None)
    return data


async def get_item(actor: Actor, ctx: ServiceContext, item_id: UUID) -> ItemView:
    """Read one item the actor may see: its requester, its assignees, anyone who decided on
    it, holders of `read_all_items`. Anyone else gets NOT_FOUND, which reveals nothing."""
    view = await load_view(actor, ctx, item_id)
    decisions = await items_repo.decisions_of_items(actor.tenant_id, [item_id])
    if not can_read_item(
        actor.principal,
        tenant_id=view.item.tenant_id,
        requester_id=view.item.requester_id,
        step_assignees=[s.assignees for s in view.steps],
        participants=[d.actor_id for d in decisions],
        grants=await permissions.grants_of(actor.tenant_id, ctx),
    ):
        raise not_found("item", view.id)
    return view


async def submit_item(actor: Actor, ctx: ServiceContext, inp: SubmitItemInput) -> ItemView:
    """Open an item from a published template (or an agent plan based on one)."""
    title = inp.title.strip()
    if not title or len(title) > MAX_TITLE:
        raise invalid(f"title must be 1 to {MAX_TITLE} characters", "title")
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "submitItem", _fingerprint(inp))
        if replay is not None:
            return await load_view(actor, ctx, UUID(replay["item_id"]))
        await permissions.require(
            actor,
            ctx,
            Permission.SUBMIT,
            f"submitting a {inp.template_key!r} item",
            template_key=inp.template_key,
        )
        row = await template_repo.find_published(
            actor.tenant_id, inp.template_key, inp.template_version
        )
        if row is None:
            raise DomainError(
                ErrorCode.TEMPLATE_NOT_PUBLISHED,
                f"no published template {inp.template_key!r}"
                + (f" version {inp.template_version}" if inp.template_version else ""),
                "templateKey",
            )
        limits = template_limits(ctx.settings)
        base = definition_of(row, ctx.settings)
        validate_payload(base.fields, inp.payload, limits.max_payload_bytes)
        defn, plan_doc = base, None
        if inp.plan is not None:
            if base.kind != TemplateKind.PLAN:
                raise invalid("a plan can only be submitted with a plan template", "plan")
            defn = plan_to_template(inp.plan, base, limits)
            plan_doc = template_to_dict(defn)
        elif base.kind == TemplateKind.PLAN:
            raise invalid("a plan template needs a plan", "plan")
        open_items = await items_repo.count_open_items(actor.tenant_id, actor.user_id)
        if open_items >= ctx.settings.max_open_items_per_requester:
            raise DomainError(
                ErrorCode.LIMIT_EXCEEDED,
                f"you already have {open_items} open items (limit "
                f"{ctx.settings.max_open_items_per_requester})",
            )
        item = new_item(
            defn,
            tenant_id=actor.tenant_id,
            template_id=row.id,
            requester_id=actor.user_id,
            title=title,
            payload=inp.payload,
            now=ctx.clock.now(),
            plan=plan_doc,
            environment=inp.environment,
            priority=inp.priority,
            external_ref=inp.external_ref,
        )
        steps = new_steps(item, defn)
        submitted = Submit(
            {
                "template": row.key,
                "template_version": row.version,
                "title": title,
                "external_ref": inp.external_ref,
                "steps": [s.key for s in defn.steps],
                # the chain keeps the payload's digest: retention may remove the payload
                "payload_sha256": digest_of(inp.payload),
            }
        )
        context = await context_for(ctx, actor.tenant_id, await tenant_calendar(actor.tenant_id))
        result = progress(Snapshot(item, steps), defn, submitted, context)
        view = await apply(uow, ItemView(item, steps, defn), result, new=True)
        await remember_result(uow, inp.idempotency_key, {"item_id": str(item.id)})
        return view


async def decide_step(actor: Actor, ctx: ServiceContext, inp: DecideStepInput) -> ItemView:
    """Approve, reject or request changes on a step: the vote fills the voter's seat and
    counts towards its quorum."""

    async def event(view: ItemView) -> Vote:
        key = view.step(inp.step_id).key
        return Vote(key, actor.principal, inp.outcome, inp.reason, inp.value)

    return await change(
        actor,
        ctx,
        operation=f"decideStep:{inp.outcome.value}",
        # only a keyed request is compared with an earlier one
        fingerprint=_fingerprint(inp) if inp.idempotency_key else {},
        idempotency_key=inp.idempotency_key,
        expected_version=inp.expected_version,
        event=event,
        step_id=inp.step_id,
    )


async def decide_steps(
    actor: Actor,
    ctx: ServiceContext,
    decisions: Sequence[DecideStepInput | DomainError],
    idempotency_key: str | None = None,
) -> list[ItemView | DomainError]:
    """Several decisions of one reviewer, in order, each exactly as `decide_step` makes it
    (its own unit of work, rules, idempotency key, version check and audit events), so a
    batch can do nothing the single decisions refuse. Each entry's result is the item after
    it, or the refusal that left it unchanged; a refused entry does not stop the others. An
    entry the caller could not even parse arrives as its refusal and keeps its place. The
    whole batch is refused (nothing decided) when it is empty or longer than
    `max_batch_decisions`.

    The batch's `idempotency_key` gives each decision without a key of its own one derived
    from it and the decision's place, so a replayed batch replays each decision it made."""
    if not decisions:
        raise invalid("at least one decision is needed", "decisions")
    limit = ctx.settings.max_batch_decisions
    if len(decisions) > limit:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED,
            f"{len(decisions)} decisions in one batch; at most {limit}",
            "decisions",
        )
    results: list[ItemView | DomainError] = []
    batch_key = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32] if idempotency_key else ""
    for index, decision in enumerate(decisions):
        if isinstance(decision, DomainError):
            results.append(decision)
            continue
        if batch_key and not decision.idempotency_key:
            decision = replace(decision, idempotency_key=f"batch:{batch_key}:{index}")
        try:
            results.append(await decide_step(actor, ctx, decision))
        except DomainError as exc:
            results.append(exc)
    return results
