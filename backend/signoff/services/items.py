"""Item use cases: submit, read, and the reviewer decisions on a step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.db import templates as template_repo
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, forbidden, invalid, not_found
from signoff.domain.permissions import can_read_item
from signoff.domain.policies import check_can_decide
from signoff.domain.quorum import QuorumOutcome, evaluate
from signoff.domain.records import DecisionOutcome, Item, Step, people_of
from signoff.domain.states import STEP_MACHINE, ItemAction, ItemState, StepAction, StepState
from signoff.domain.templates import (
    TemplateDefinition,
    TemplateKind,
    parse_template,
    plan_to_template,
    template_to_dict,
    validate_payload,
)
from signoff.services.context import ServiceContext
from signoff.services.engine import (
    ItemView,
    advance,
    save_item,
    transition_item,
    transition_step,
)
from signoff.services.templates import definition_of, template_limits
from signoff.services.uow import UnitOfWork, remember_result, replayed_result, unit_of_work

MAX_TITLE = 300
MAX_REASON = 4000


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


class Outcome(StrEnum):
    """A reviewer's decision on a step."""

    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"


@dataclass(frozen=True)
class DecideStepInput:
    """A reviewer's decision, with the guards every mutation takes."""

    step_id: UUID
    outcome: Outcome
    reason: str | None = None
    value: str | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None


def _fingerprint(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("idempotency_key", None)
    return data


async def load_view(actor: Actor, ctx: ServiceContext, item_id: UUID, *, lock: bool) -> ItemView:
    """An item with its steps and definition; NOT_FOUND when it is not the caller's tenant's."""
    item = await items_repo.get_item(actor.tenant_id, item_id, lock=lock)
    if item is None:
        raise not_found("item", item_id)
    steps = await items_repo.steps_of(actor.tenant_id, item_id)
    return ItemView(item, steps, await item_definition(item, ctx))


async def item_definition(item: Item, ctx: ServiceContext) -> TemplateDefinition:
    """The definition an item runs: its plan's, or its template version's."""
    if item.plan is not None:
        return parse_template(item.plan, template_limits(ctx.settings))
    row = await template_repo.get(item.tenant_id, item.template_id)
    assert row is not None
    return definition_of(row, ctx.settings)


def check_readable(
    actor: Actor, ctx: ServiceContext, view: ItemView, participants: list[str]
) -> None:
    """Refuse (as NOT_FOUND, to reveal nothing) an item the actor may not read."""
    if not can_read_item(
        actor.principal,
        tenant_id=view.item.tenant_id,
        requester_id=view.item.requester_id,
        step_assignees=[s.assignees for s in view.steps],
        participants=participants,
        admin_roles=ctx.settings.admin_roles,
    ):
        raise not_found("item", view.id)


async def get_item(actor: Actor, ctx: ServiceContext, item_id: UUID) -> ItemView:
    """Read one item the actor may see."""
    view = await load_view(actor, ctx, item_id, lock=False)
    decisions = await items_repo.decisions_of_items(actor.tenant_id, [item_id])
    check_readable(actor, ctx, view, [d.actor_id for d in decisions])
    return view


async def submit_item(actor: Actor, ctx: ServiceContext, inp: SubmitItemInput) -> ItemView:
    """Open an item from a published template (or an agent plan based on one)."""
    title = inp.title.strip()
    if not title or len(title) > MAX_TITLE:
        raise invalid(f"title must be 1 to {MAX_TITLE} characters", "title")
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "submitItem", _fingerprint(inp))
        if replay is not None:
            return await load_view(actor, ctx, UUID(replay["item_id"]), lock=False)
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
        now = ctx.clock.now()
        risk = max((s.risk for s in defn.steps), key=lambda r: r.rank)
        item = await items_repo.insert_item(
            tenant_id=actor.tenant_id,
            environment=inp.environment,
            template_id=row.id,
            kind=defn.kind,
            title=title,
            state=ItemState.PENDING,
            priority=inp.priority,
            risk=risk,
            requester_id=actor.user_id,
            payload=inp.payload,
            plan=plan_doc,
            external_ref=inp.external_ref,
            now=now,
        )
        steps = await items_repo.insert_steps(item, defn.steps, StepState.WAITING, now)
        uow.record(
            "item.submitted",
            item_id=item.id,
            data={
                "template": row.key,
                "template_version": row.version,
                "title": title,
                "external_ref": inp.external_ref,
                "steps": [s.key for s in defn.steps],
            },
        )
        view = ItemView(item, steps, defn)
        await advance(uow, view)
        await remember_result(uow, inp.idempotency_key, {"item_id": str(item.id)})
        return view


StepBody = Callable[[UnitOfWork, ItemView, Step], Awaitable[None]]


async def act_on_step(
    actor: Actor,
    ctx: ServiceContext,
    *,
    operation: str,
    step_id: UUID,
    fingerprint: dict[str, Any],
    idempotency_key: str | None,
    expected_version: int | None,
    body: StepBody,
) -> ItemView:
    """The frame of every step action: replay check, item lock, version check, body, advance."""
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, idempotency_key, operation, fingerprint)
        if replay is not None:
            return await load_view(actor, ctx, UUID(replay["item_id"]), lock=False)
        item_id = await items_repo.item_id_of_step(actor.tenant_id, step_id)
        if item_id is None:
            raise not_found("step", step_id)
        view = await load_view(actor, ctx, item_id, lock=True)
        check_version(view, expected_version)
        await body(uow, view, view.step(step_id))
        await advance(uow, view)
        await remember_result(uow, idempotency_key, {"item_id": str(item_id)})
        return view


async def escalate_for_revisions(
    uow: UnitOfWork, view: ItemView, step: Step, reason: str | None
) -> None:
    """Escalate a step whose request-changes loop exceeded the template's maximum revisions:
    raise the item's priority and add the first escalation level's targets as assignees."""
    defn = view.definition.step(step.key)
    assignees = step.assignees
    if defn.escalation:
        assignees = assignees.merged(defn.escalation[0].targets)
    await transition_step(
        uow,
        view,
        step,
        StepAction.ESCALATE,
        reason=reason,
        changes={"assignees": assignees, "escalation_level": step.escalation_level + 1},
        data={"by": "revision_limit", "max_revisions": view.definition.max_revisions},
    )
    await save_item(uow, view, priority=view.item.priority + 1)


def check_version(view: ItemView, expected_version: int | None) -> None:
    """Refuse a change made against a stale copy of the item."""
    if expected_version is not None and expected_version != view.item.version:
        raise DomainError(
            ErrorCode.VERSION_CONFLICT,
            f"item is at version {view.item.version}, not {expected_version}",
            "expectedVersion",
            details={"current_version": view.item.version},
        )


def require_assignee(actor: Actor, step: Step) -> str | None:
    """Only a step's assignees (or their delegates) may act on it; returns the delegator."""
    if not step.assignees.matches(actor.principal):
        raise forbidden(f"you are not an assignee of step {step.key!r}")
    return step.assignees.delegator_of(actor.principal)


def require_reason(reason: str | None, why: str) -> str:
    """A non-empty, bounded reason, or JUSTIFICATION_REQUIRED."""
    text = (reason or "").strip()
    if not text:
        raise DomainError(ErrorCode.JUSTIFICATION_REQUIRED, f"a reason is required {why}", "reason")
    if len(text) > MAX_REASON:
        raise invalid(f"reason is longer than {MAX_REASON} characters", "reason")
    return text


async def decide_step(actor: Actor, ctx: ServiceContext, inp: DecideStepInput) -> ItemView:
    """Approve, reject or request changes on a step, counting towards its quorum."""

    async def body(uow: UnitOfWork, view: ItemView, step: Step) -> None:
        action = {
            Outcome.APPROVE: StepAction.APPROVE,
            Outcome.REJECT: StepAction.REJECT,
            Outcome.REQUEST_CHANGES: StepAction.REQUEST_CHANGES,
        }[inp.outcome]
        # Legality first: a decided step refuses every further decision the same way.
        STEP_MACHINE.next_state(step.state, action)
        acting_for = require_assignee(actor, step)
        defn = view.definition.step(step.key)
        reason = inp.reason
        if inp.outcome != Outcome.APPROVE:
            reason = require_reason(reason, f"to {inp.outcome.value.replace('_', ' ')}")
        elif defn.justification_required:
            reason = require_reason(reason, f"to approve step {step.key!r}")
        revision = view.item.revision
        decisions = await items_repo.decisions_of_step(step.id, revision)
        check_can_decide(
            actor=actor.user_id,
            requester=view.item.requester_id,
            delegator=acting_for,
            previous_voters=people_of(decisions),
        )
        value = None
        if defn.options:
            if inp.outcome == Outcome.APPROVE and inp.value not in defn.options:
                raise invalid(f"value must be one of {list(defn.options)}", "value")
            value = inp.value
        await items_repo.insert_decision(
            step=step,
            revision=revision,
            actor_id=actor.user_id,
            acting_for=acting_for,
            outcome=DecisionOutcome(inp.outcome.value),
            reason=reason,
            now=ctx.clock.now(),
        )
        if inp.outcome == Outcome.REQUEST_CHANGES:
            if revision > view.definition.max_revisions:
                # The loop has gone round too often: escalate instead of asking again.
                await escalate_for_revisions(uow, view, step, reason)
                return
            await transition_step(
                uow, view, step, StepAction.REQUEST_CHANGES, reason=reason, acting_for=acting_for
            )
            await transition_item(uow, view, ItemAction.REQUEST_CHANGES, reason=reason)
            return
        approvals = sum(d.outcome == DecisionOutcome.APPROVE for d in decisions) + (
            inp.outcome == Outcome.APPROVE
        )
        rejections = sum(d.outcome == DecisionOutcome.REJECT for d in decisions) + (
            inp.outcome == Outcome.REJECT
        )
        result = evaluate(
            defn.quorum,
            seats=defn.seats,
            approvals=approvals,
            rejections=rejections,
            any_rejection_rejects=defn.any_rejection_rejects,
        )
        tally = {"approvals": approvals, "rejections": rejections, "vote": inp.outcome.value}
        action = {
            QuorumOutcome.PENDING: StepAction.VOTE,
            QuorumOutcome.APPROVED: StepAction.APPROVE,
            QuorumOutcome.REJECTED: StepAction.REJECT,
        }[result]
        changes = {"decision_value": value} if value and action == StepAction.APPROVE else None
        await transition_step(
            uow,
            view,
            step,
            action,
            reason=reason,
            changes=changes,
            data=tally,
            acting_for=acting_for,
        )

    return await act_on_step(
        actor,
        ctx,
        operation=f"decideStep:{inp.outcome.value}",
        step_id=inp.step_id,
        fingerprint=_fingerprint(inp),
        idempotency_key=inp.idempotency_key,
        expected_version=inp.expected_version,
        body=body,
    )
