"""The transition functions of the item and step machines, and the progression of an item.

Every state change of an item or a step goes through `transition_item` / `transition_step`:
they check legality against the tables in `domain/states.py`, write the change, bump the
versions and record the audit event, all inside the caller's unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.domain.actors import SYSTEM_USER
from signoff.domain.dependencies import ready_steps, steps_to_skip
from signoff.domain.policies import auto_approval_rule
from signoff.domain.records import DecisionOutcome, Item, Step
from signoff.domain.states import (
    ITEM_MACHINE,
    STEP_MACHINE,
    ItemAction,
    ItemState,
    StepAction,
    StepState,
)
from signoff.domain.templates import StepKind, TemplateDefinition, TemplateKind
from signoff.domain.timers import EscalationPlan
from signoff.services.timer_arming import arm_step_timers, disarm_step_timers, rearm_remaining
from signoff.services.uow import UnitOfWork

RESOLVED_OK = frozenset({StepState.APPROVED, StepState.SKIPPED, StepState.COMPLETED})


@dataclass
class ItemView:
    """An item with its steps and definition, loaded (and locked) for one change.

    The records are immutable; a change replaces them here (`replace_item`, `replace_step`) so
    that the view always holds what was last written.
    """

    item: Item
    steps: list[Step]
    definition: TemplateDefinition

    @property
    def id(self) -> UUID:
        """The item id."""
        return self.item.id

    @property
    def state(self) -> ItemState:
        """The item's current state."""
        return self.item.state

    def step(self, step_id: UUID) -> Step:
        """One of the item's steps by id."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def step_by_key(self, key: str) -> Step:
        """One of the item's steps by its template key."""
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def replace_step(self, step: Step) -> Step:
        """Hold `step` instead of the step with its id; returns it."""
        self.steps = [step if s.id == step.id else s for s in self.steps]
        return step

    def step_states(self) -> dict[str, StepState]:
        """Template key → current state, for the dependency rules."""
        return {s.key: s.state for s in self.steps}

    def decision_values(self) -> dict[str, str]:
        """Values chosen on decided `decision` steps, for branch selection."""
        return {s.key: s.decision_value for s in self.steps if s.decision_value}


async def save_item(uow: UnitOfWork, view: ItemView, **changes: Any) -> Item:
    """Write `changes` to the item, bumping its version (every change to an item or its steps)."""
    item = replace(
        view.item, **changes, version=view.item.version + 1, updated_at=uow.ctx.clock.now()
    )
    await items_repo.save_item(item)
    view.item = item
    return item


async def save_step(uow: UnitOfWork, view: ItemView, step: Step, **changes: Any) -> Step:
    """Write `changes` to a step, bumping its version."""
    current = view.step(step.id)
    new = replace(current, **changes, version=current.version + 1, updated_at=uow.ctx.clock.now())
    await items_repo.save_step(new)
    return view.replace_step(new)


async def transition_item(
    uow: UnitOfWork,
    view: ItemView,
    action: ItemAction,
    *,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    acting_for: str | None = None,
) -> None:
    """Move the item by `action` (or raise ILLEGAL_TRANSITION) and audit it."""
    old = view.state
    new = ITEM_MACHINE.next_state(old, action)
    await save_item(uow, view, **(changes or {}), state=new)
    uow.record(
        f"item.{action.value}",
        item_id=view.id,
        reason=reason,
        acting_for=acting_for,
        data={"from": old.value, "to": new.value, **(data or {})},
    )


async def transition_step(
    uow: UnitOfWork,
    view: ItemView,
    step: Step,
    action: StepAction,
    *,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    acting_for: str | None = None,
) -> Step:
    """Move one step by `action` (or raise ILLEGAL_TRANSITION), bump the item, audit it."""
    step = view.step(step.id)
    old = step.state
    new = STEP_MACHINE.next_state(old, action)
    values: dict[str, Any] = {**(changes or {}), "state": new}
    now = uow.ctx.clock.now()
    if new != old and new not in (StepState.ACTIVE, StepState.WAITING, StepState.RUNNING):
        values.setdefault("decided_at", now)
    # Time rules follow the review state: armed on entering review, void on leaving it.
    if new == StepState.ACTIVE and old != StepState.ACTIVE:
        source = EscalationPlan.from_step(view.definition.step(step.key))
        values["escalation_plan"], values["due_at"] = await arm_step_timers(uow, step, source)
    step = await save_step(uow, view, step, **values)
    await save_item(uow, view)
    if old == StepState.ACTIVE and new != StepState.ACTIVE:
        await disarm_step_timers(uow, step)
    elif action == StepAction.REASSIGN:
        await rearm_remaining(uow, step)
    uow.record(
        f"step.{action.value}",
        item_id=view.id,
        step_id=step.id,
        reason=reason,
        acting_for=acting_for,
        data={"step": step.key, "from": old.value, "to": new.value, **(data or {})},
    )
    return step


async def activate_step(uow: UnitOfWork, view: ItemView, step: Step) -> None:
    """Open a step for its assignees: deadline, then policy auto-approval or merge completion."""
    now = uow.ctx.clock.now()
    defn = view.definition.step(step.key)
    step = await transition_step(
        uow, view, step, StepAction.ACTIVATE, changes={"activated_at": now}
    )
    if defn.kind == StepKind.MERGE:
        await record_system_decision(uow, view, step, "all inbound branches resolved")
        await transition_step(uow, view, step, StepAction.APPROVE, data={"by": "merge"})
        return
    policy = view.definition.auto_approval
    rule = auto_approval_rule(policy, defn) if policy is not None else None
    if rule:
        await record_system_decision(uow, view, step, rule)
        await transition_step(
            uow, view, step, StepAction.APPROVE, data={"by": "policy", "rule": rule}
        )


async def record_system_decision(uow: UnitOfWork, view: ItemView, step: Step, rule: str) -> None:
    """Store an approval made by the system (policy, merge), with the rule that made it."""
    await items_repo.insert_decision(
        step=step,
        revision=view.item.revision,
        actor_id=SYSTEM_USER,
        outcome=DecisionOutcome.APPROVE_BY_POLICY,
        rule=rule,
        now=uow.ctx.clock.now(),
    )


async def advance(uow: UnitOfWork, view: ItemView) -> None:
    """Carry the item forward after a change: skip untaken branches, open ready steps, and
    settle the item once its steps are resolved. Repeats until nothing more changes."""
    if view.state != ItemState.PENDING:
        return
    changed = True
    while changed:
        changed = False
        states, values = view.step_states(), view.decision_values()
        for key in steps_to_skip(view.definition, states, values):
            step = view.step_by_key(key)
            if step.state in (StepState.WAITING, StepState.ACTIVE):
                await transition_step(uow, view, step, StepAction.SKIP, data={"by": "dependency"})
                changed = True
        states = view.step_states()
        for key in ready_steps(view.definition, states, values):
            await activate_step(uow, view, view.step_by_key(key))
            changed = True
    await settle_item(uow, view)


async def settle_item(uow: UnitOfWork, view: ItemView) -> None:
    """Approve, reject or expire a pending item whose steps have all been resolved."""
    if view.state != ItemState.PENDING:
        return
    states = view.step_states()
    is_plan = view.definition.kind == TemplateKind.PLAN
    failed = [k for k, s in states.items() if s in (StepState.REJECTED, StepState.EXPIRED)]
    if failed and not is_plan:
        # In a review chain one refusal ends the item; what was still open is cancelled.
        for step in view.steps:
            if step.state in (StepState.WAITING, StepState.ACTIVE):
                await transition_step(uow, view, step, StepAction.CANCEL, data={"by": "item"})
        expired = all(states[k] == StepState.EXPIRED for k in failed)
        action = ItemAction.EXPIRE if expired else ItemAction.REJECT
        await transition_item(uow, view, action, data={"steps": failed})
        return
    open_states = (StepState.WAITING, StepState.ACTIVE, StepState.CHANGES_REQUESTED)
    if any(s in open_states for s in states.values()):
        return
    if is_plan and not any(s in RESOLVED_OK - {StepState.SKIPPED} for s in states.values()):
        await transition_item(uow, view, ItemAction.REJECT, data={"steps": failed})
        return
    await transition_item(uow, view, ItemAction.APPROVE)
