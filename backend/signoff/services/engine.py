"""The engine: load an item for a change, hand the event to the progression, write what it says.

It decides nothing. `domain/progression.py` is the one function that knows how an item moves;
this module turns its `Progress` into rows (each changed step once, several in one statement;
the item once), decision rows, timers and audit events, all in the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from signoff import metrics
from signoff.db import items as items_repo
from signoff.db import sql
from signoff.domain.actors import Actor
from signoff.domain.analytics import ACTIVATIONS
from signoff.domain.calendar import WALL_CLOCK, Clockwork
from signoff.domain.errors import DomainError, ErrorCode, not_found
from signoff.domain.events import Event
from signoff.domain.permissions import Grants
from signoff.domain.progression import Context, Progress, Snapshot, progress
from signoff.domain.records import Item, Step
from signoff.domain.states import ItemState
from signoff.domain.templates import TemplateDefinition, parse_template
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.templates import stored_definition, template_limits
from signoff.services.timer_arming import timer_writes
from signoff.services.uow import UnitOfWork, remember_result, replayed_result, unit_of_work


@dataclass(frozen=True)
class ItemView:
    """An item with its steps (in template order) and the definition it runs."""

    item: Item
    steps: tuple[Step, ...]
    definition: TemplateDefinition

    @property
    def id(self) -> UUID:
        """The item id."""
        return self.item.id

    @property
    def state(self) -> ItemState:
        """The item's current state."""
        return self.item.state

    @property
    def snapshot(self) -> Snapshot:
        """The records the progression reads."""
        return Snapshot(self.item, self.steps)

    def step(self, step_id: UUID) -> Step:
        """One of the item's steps by id."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise not_found("step", step_id)

    def step_by_key(self, key: str) -> Step:
        """One of the item's steps by its template key."""
        return self.snapshot.step(key)


async def context_for(ctx: ServiceContext, tenant_id: str, calendar: Clockwork) -> Context:
    """The progression's context now: the tenant's calendar and permission table."""
    return context_with(ctx, calendar, await permissions.grants_of(tenant_id, ctx))


def context_with(ctx: ServiceContext, calendar: Clockwork, grants: Grants) -> Context:
    """The progression's context now, with the calendar and permission table given."""
    return Context(
        now=ctx.clock.now(),
        calendar=calendar,
        grants=grants,
        override_min_justification=ctx.settings.override_min_justification,
    )


async def item_definition(item: Item, ctx: ServiceContext) -> TemplateDefinition:
    """The definition an item runs: its plan's, or its template version's."""
    if item.plan is not None:
        return parse_template(item.plan, template_limits(ctx.settings))
    return await stored_definition(item.tenant_id, item.template_id, ctx.settings)


async def load_view(actor: Actor, ctx: ServiceContext, item_id: UUID) -> ItemView:
    """An item of the actor's tenant with its steps and definition (unlocked; NOT_FOUND)."""
    item = await items_repo.get_item(actor.tenant_id, item_id)
    if item is None:
        raise not_found("item", item_id)
    steps = await items_repo.steps_of(actor.tenant_id, item_id)
    return ItemView(item, tuple(steps), await item_definition(item, ctx))


async def lock_view(
    actor: Actor, ctx: ServiceContext, *, item_id: UUID | None = None, step_id: UUID | None = None
) -> tuple[ItemView, Context]:
    """The item (by id, or by one of its steps' ids) locked until commit, with the context of
    a change to it; NOT_FOUND outside the actor's tenant."""
    basis = await items_repo.lock_for_change(actor.tenant_id, item_id=item_id, step_id=step_id)
    if basis is None:
        raise not_found("step" if step_id else "item", step_id or item_id)
    view = ItemView(basis.item, basis.steps, await item_definition(basis.item, ctx))
    grants = permissions.grants_from(ctx, basis.grants)
    return view, context_with(ctx, basis.calendar or WALL_CLOCK, grants)


def check_version(view: ItemView, expected_version: int | None) -> None:
    """Refuse a change made against a stale copy of the item."""
    if expected_version is not None and expected_version != view.item.version:
        raise DomainError(
            ErrorCode.VERSION_CONFLICT,
            f"item is at version {view.item.version}, not {expected_version}",
            "guards.expectedVersion",
            details={"current_version": view.item.version},
        )


EventOf = Callable[[ItemView], Awaitable[Event]]


async def change(
    actor: Actor,
    ctx: ServiceContext,
    *,
    operation: str,
    fingerprint: Mapping[str, Any],
    idempotency_key: str | None,
    expected_version: int | None,
    event: EventOf,
    item_id: UUID | None = None,
    step_id: UUID | None = None,
) -> ItemView:
    """The frame of every change: replay check, item lock, version check, the progression,
    and the writes, in one unit of work."""
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, idempotency_key, operation, fingerprint)
        if replay is not None:
            return await load_view(actor, ctx, UUID(replay["item_id"]))
        view, context = await lock_view(actor, ctx, item_id=item_id, step_id=step_id)
        check_version(view, expected_version)
        result = progress(view.snapshot, view.definition, await event(view), context)
        view = await apply(uow, view, result)
        await remember_result(uow, idempotency_key, {"item_id": str(view.id)})
        return view


async def apply(
    uow: UnitOfWork, view: ItemView, result: Progress, *, new: bool = False
) -> ItemView:
    """Write what the progression returned: decisions, each changed step once, the item once
    (its version bumped: every change to an item or its steps), timers — all in one statement,
    since none reads what another writes — and the audit events. A `new` item is inserted as
    the progression left it, first."""
    now = uow.ctx.clock.now()
    after = result.after
    steps = {s.key: s for s in after.steps}
    if new:
        await items_repo.insert_item(after.item)
        await items_repo.insert_steps(after.steps)
    activated = {e.step for e in result.entries if e.action in ACTIVATIONS}
    writes = [
        items_repo.write_decisions(
            [
                (
                    steps[d.step],
                    after.item.revision,
                    d.actor,
                    d.outcome,
                    d.acting_for,
                    d.reason,
                    d.rule,
                    d.seat,
                    d.step in activated,
                )
                for d in result.decisions
            ],
            now,
        )
    ]
    changed = {
        s.key: replace(s, version=s.version + 1, updated_at=now)
        for s in ([] if new else result.changed_steps())
    }
    writes.append(items_repo.write_steps(list(changed.values())))
    steps.update(changed)
    item = after.item
    if not new and (changed or result.item_changed):
        item = replace(item, version=item.version + 1, updated_at=now)
        writes.append(items_repo.write_item(item))
    writes += await timer_writes(uow, steps, result.timers)
    await sql.write_all(writes)
    if result.decisions:
        uow.after_commit(_count_decisions([str(d.outcome.value) for d in result.decisions]))
    for entry in result.entries:
        uow.record(
            entry.action,
            item_id=item.id,
            step_id=steps[entry.step].id if entry.step else None,
            reason=entry.reason,
            acting_for=entry.acting_for,
            data=dict(entry.data),
        )
    return ItemView(item, tuple(steps[s.key] for s in after.steps), view.definition)


def _count_decisions(outcomes: list[str]) -> Callable[[], Awaitable[None]]:
    async def count() -> None:
        for outcome in outcomes:
            metrics.DECISIONS.labels(outcome).inc()

    return count
