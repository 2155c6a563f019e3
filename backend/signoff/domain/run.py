"""One run of the progression over an item snapshot: the moves every event is made of.

`Run` holds a working copy of the item and its steps. Event handlers (`domain/progression*.py`)
call its moves; each move checks the state machines, changes the copy, and notes what the
engine must write: an audit entry, a decision row, a timer to arm or void. `advance` carries the
item forward (skips, activations, holds, the item's outcome) and `result` returns the whole as a
`Progress`. Nothing here performs I/O: the engine applies a `Progress`, the simulator keeps its
`after` snapshot, and the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from signoff.domain.actors import SYSTEM_USER, Principal
from signoff.domain.dependencies import (
    FAILED_FINALLY,
    SUCCEEDED,
    Outcome,
    Readiness,
    evaluate_step,
    failure_outcome,
)
from signoff.domain.permissions import Permission, require
from signoff.domain.policies import auto_approval_rule
from signoff.domain.records import DecisionOutcome, Hold, Step
from signoff.domain.seats import added, assignees_of, covering, seats_for, shortfall
from signoff.domain.snapshot import (
    Context,
    Entry,
    HoldOption,
    NewDecision,
    Progress,
    Snapshot,
    TimerChange,
)
from signoff.domain.states import (
    ITEM_MACHINE,
    STEP_MACHINE,
    ItemAction,
    ItemState,
    StepAction,
    StepState,
)
from signoff.domain.template_model import Assignees, StepKind, TemplateDefinition, TemplateKind
from signoff.domain.timers import EscalationPlan, TimerKind, TimerSpec, hold_timer, next_priority


@dataclass
class _Timers:
    had: bool
    cancel: bool = False
    keep: bool = False
    arm: list[TimerSpec] = field(default_factory=list)


def with_values(params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with values standing in for upstream steps (fallbacks, values given by hand): a
    mapping is merged into the params, anything else is stored under the upstream's key."""
    out = dict(params)
    for upstream, value in values.items():
        if isinstance(value, Mapping):
            out.update(value)
        else:
            out[upstream] = value
    return out


class Run:
    """A working copy of one item and the record of every move made on it."""

    def __init__(self, snapshot: Snapshot, defn: TemplateDefinition, ctx: Context) -> None:
        self.before = snapshot
        self.defn = defn
        self.ctx = ctx
        self.item = snapshot.item
        self.steps = {s.key: s for s in snapshot.steps}
        self.order = defn.topological_order()
        self.entries: list[Entry] = []
        self.decisions: list[NewDecision] = []
        self.moved: set[str] = set()
        self._timers = {
            s.key: _Timers(had=s.state in (StepState.ACTIVE, StepState.HELD))
            for s in snapshot.steps
        }

    # ---------------------------------------------------------------- reading

    @property
    def requester(self) -> str:
        """The item's requester."""
        return self.item.requester_id

    @property
    def override_roles(self) -> Assignees:
        """The roles granted `override` on this item's template, as assignees (who steps fall
        back on)."""
        return Assignees(
            roles=tuple(sorted(self.ctx.grants.roles(Permission.OVERRIDE, self.defn.key)))
        )

    def may(self, who: Principal, permission: Permission) -> bool:
        """Whether `who` holds `permission` on this item (its template, its requester)."""
        return self.ctx.may(who, permission, self.defn.key, self.requester)

    def require(self, who: Principal, permission: Permission, what: str) -> None:
        """FORBIDDEN unless `who` holds `permission` on this item."""
        require(
            self.ctx.grants,
            who,
            permission,
            what,
            template_key=self.defn.key,
            requester=self.requester,
        )

    @property
    def is_plan(self) -> bool:
        """Whether the item is an agent plan (goes ahead with what people approved)."""
        return self.defn.kind is TemplateKind.PLAN

    def states(self) -> dict[str, StepState]:
        """Template key → current state."""
        return {k: s.state for k, s in self.steps.items()}

    def values(self) -> dict[str, str]:
        """Values chosen on decided `decision` steps, for branch selection."""
        return {k: s.decision_value for k, s in self.steps.items() if s.decision_value}

    # ---------------------------------------------------------------- moves

    def move(
        self,
        key: str,
        action: StepAction,
        *,
        reason: str | None = None,
        acting_for: str | None = None,
        data: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Step:
        """Move step `key` by `action` (ILLEGAL_TRANSITION when the table has no such move),
        apply `changes`, arm or void its timers, and note the audit entry."""
        step = self.steps[key]
        old = step.state
        new = STEP_MACHINE.next_state(old, action)
        values: dict[str, Any] = dict(changes)
        if new != old:
            if new is StepState.ACTIVE:
                values.setdefault("decided_at", None)
            elif new not in (StepState.WAITING, StepState.RUNNING, StepState.HELD):
                values.setdefault("decided_at", self.ctx.now)
        if new is StepState.ACTIVE and old is not StepState.ACTIVE:
            plan = step.escalation_plan or EscalationPlan.from_step(self.defn.step(key))
            specs = plan.timers(self.ctx.now, self.ctx.calendar)
            values["escalation_plan"] = plan
            values["due_at"] = next((t.due_at for t in specs if t.kind is TimerKind.SLA), None)
            self._timers[key].arm.extend(specs)
        elif old is StepState.ACTIVE and new is not StepState.ACTIVE:
            self._void(key)
        elif action is StepAction.REASSIGN:
            timers = self._timers[key]
            timers.keep = timers.had and not timers.cancel
        if new is StepState.HELD:
            self._timers[key].arm.append(
                hold_timer(self.defn.step(key), self.ctx.now, self.ctx.calendar)
            )
        elif old is StepState.HELD and new is not StepState.HELD:
            self._void(key)
        self.steps[key] = replace(step, state=new, **values)
        self.moved.add(key)
        self.entries.append(
            Entry(
                f"step.{action.value}",
                key,
                reason,
                acting_for,
                {"step": key, "from": old.value, "to": new.value, **(data or {})},
            )
        )
        return self.steps[key]

    def _void(self, key: str) -> None:
        timers = self._timers[key]
        timers.arm.clear()
        timers.cancel = timers.had
        timers.keep = False

    def change(self, key: str, **changes: Any) -> Step:
        """Change fields of step `key` without a transition (recorded by the caller)."""
        self.steps[key] = replace(self.steps[key], **changes)
        return self.steps[key]

    def move_item(
        self,
        action: ItemAction,
        *,
        reason: str | None = None,
        acting_for: str | None = None,
        data: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        """Move the item by `action` (ILLEGAL_TRANSITION otherwise) and note the entry."""
        old = self.item.state
        new = ITEM_MACHINE.next_state(old, action)
        self.item = replace(self.item, state=new, **changes)
        self.entries.append(
            Entry(
                f"item.{action.value}",
                None,
                reason,
                acting_for,
                {"from": old.value, "to": new.value, **(data or {})},
            )
        )

    def note(
        self,
        action: str,
        key: str | None,
        *,
        reason: str | None = None,
        acting_for: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """An audit entry for something that moves nothing (a reminder, a request)."""
        data = {"step": key, **(data or {})} if key else dict(data or {})
        self.entries.append(Entry(action, key, reason, acting_for, data))

    def decide(
        self,
        key: str,
        actor: str,
        outcome: DecisionOutcome,
        *,
        reason: str | None = None,
        rule: str | None = None,
        acting_for: str | None = None,
        seat: int | None = None,
    ) -> None:
        """A decision row to store for step `key`."""
        self.decisions.append(NewDecision(key, actor, outcome, reason, rule, acting_for, seat))

    def raise_priority(self, priority: int) -> None:
        """Raise the item's priority (never lowers it)."""
        if priority > self.item.priority:
            self.item = replace(self.item, priority=priority)

    # ---------------------------------------------------------------- progression

    def activate(self, key: str, fallbacks: Mapping[str, Any]) -> None:
        """Open a step: seats fixed from the template (never the requester's), fallback values
        into its params, timers armed; then a merge resolves, an auto-approval rule approves,
        or a step whose seats cannot reach its quorum escalates."""
        definition = self.defn.step(key)
        step = self.steps[key]
        changes: dict[str, Any] = {"activated_at": self.ctx.now}
        data: dict[str, Any] = {}
        if fallbacks:
            changes["params"] = with_values(step.params, fallbacks)
            changes["original_params"] = step.original_params or step.params
            data["fallbacks"] = dict(fallbacks)
        if definition.kind is StepKind.MERGE:
            self.move(key, StepAction.ACTIVATE, data=data, **changes)
            self.decide(
                key, SYSTEM_USER, DecisionOutcome.APPROVE_BY_POLICY, rule="merge: branches resolved"
            )
            self.move(key, StepAction.APPROVE, data={"by": "merge"})
            return
        seats = seats_for(definition.assignees, self.requester)
        self.move(
            key,
            StepAction.ACTIVATE,
            data={**data, "seats": len(seats), "needed": definition.needed},
            seats=seats,
            needed=definition.needed,
            assignees=assignees_of(seats),
            claimed_by=None,
            **changes,
        )
        rule = auto_approval_rule(self.defn.auto_approval, definition, step.risk)
        if rule is not None:
            self.decide(key, SYSTEM_USER, DecisionOutcome.APPROVE_BY_POLICY, rule=rule)
            self.move(
                key,
                StepAction.APPROVE,
                data={
                    "by": "policy",
                    "rule": rule,
                    "risk": step.risk.value,
                    "declared_risk": step.declared_risk.value if step.declared_risk else None,
                },
            )
        elif shortfall(seats, definition.needed):
            self.escalate_unfillable(key)

    def escalate_unfillable(self, key: str) -> None:
        """A step whose seats cannot reach its quorum (the requester's seats are never created)
        does not wait for ever: its first escalation level's targets (or the override roles)
        join with enough seats, and the item's priority rises."""
        step = self.steps[key]
        plan = step.escalation_plan
        level = plan.levels[0] if plan and plan.levels else None
        targets = (
            level.targets
            if level is not None and not level.targets.is_empty
            else self.override_roles
        )
        seats = covering(
            added(step.seats, targets, self.requester), targets, step.needed, self.override_roles
        )
        self.move(
            key,
            StepAction.ESCALATE,
            data={
                "by": "unfillable_seats",
                "needed": step.needed,
                "seats_before": len(step.seats),
                "seats": len(seats),
                "targets": targets.to_dict(),
            },
            seats=seats,
            assignees=assignees_of(seats),
            escalation_level=step.escalation_level + 1,
        )
        self.raise_priority(
            next_priority(self.item.priority, level) if level else self.item.priority + 1
        )

    def hold(self, key: str, upstreams: tuple[str, ...]) -> None:
        """Hold a step for a person: its upstream did not succeed and the template says
        `ask_user`. Its assignees are told (`step.dependency_conflict`) and a timer runs."""
        self.move(
            key,
            StepAction.HOLD,
            data={"upstreams": list(upstreams)},
            hold=Hold(upstreams, self.ctx.now),
        )
        self.note(
            "step.dependency_conflict",
            key,
            data={"upstreams": list(upstreams), "options": [o.value for o in HoldOption]},
        )

    def advance(self) -> None:
        """Carry a pending item forward until nothing more changes: skip steps that will never
        run, activate ready ones, hold those that need a person; then settle the item."""
        if self.item.state is not ItemState.PENDING:
            return
        while self._advance_one():
            pass
        self.settle()

    def _advance_one(self) -> bool:
        states, values = self.states(), self.values()
        for key in self.order:
            step = self.steps[key]
            if step.state is not StepState.WAITING:
                continue
            verdict = evaluate_step(self.defn, states, values, key, step.waived)
            if verdict.readiness is Readiness.SKIP:
                self.move(key, StepAction.SKIP, data={"by": "dependency"})
            elif verdict.readiness is Readiness.READY:
                self.activate(key, verdict.fallbacks)
            elif verdict.readiness is Readiness.ASK_USER:
                self.hold(key, verdict.waiting_on)
            else:
                continue
            return True
        return False

    def settle(self) -> None:
        """Decide a pending item whose steps allow it.

        A review chain ends REJECTED (EXPIRED when every decisive failure expired) as soon as a
        failed step is decisive, cancelling what is still open. Once no step is open the item
        is APPROVED when at least one step succeeded, REJECTED otherwise; a plan goes ahead
        with what people approved, and steps still waiting on failed upstreams are skipped.
        """
        if self.item.state is not ItemState.PENDING:
            return
        states = self.states()
        failed = [k for k in self.order if states[k] in (StepState.REJECTED, StepState.EXPIRED)]
        if not self.is_plan:
            decisive = [k for k in failed if self._absorbed(k, states) is False]
            if decisive:
                for key in self.order:
                    if self.steps[key].state in (
                        StepState.WAITING,
                        StepState.HELD,
                        StepState.ACTIVE,
                    ):
                        self.move(key, StepAction.CANCEL, data={"by": "item"})
                expired = all(states[k] is StepState.EXPIRED for k in decisive)
                action = ItemAction.EXPIRE if expired else ItemAction.REJECT
                self.move_item(action, data={"steps": decisive})
                return
        busy = (StepState.ACTIVE, StepState.HELD, StepState.CHANGES_REQUESTED)
        if any(s in busy for s in states.values()):
            return
        for key in self.order:
            if self.steps[key].state is StepState.WAITING:
                # nothing is open that could still unblock it
                self.move(key, StepAction.SKIP, data={"by": "upstream_failed"})
        states = self.states()
        if any(s in SUCCEEDED for s in states.values()):
            self.move_item(ItemAction.APPROVE)
            return
        expired = bool(failed) and all(states[k] is StepState.EXPIRED for k in failed)
        action = ItemAction.EXPIRE if expired else ItemAction.REJECT
        self.move_item(action, data={"steps": failed, "nothing_approved": True})

    def _absorbed(self, key: str, states: Mapping[str, StepState]) -> bool | None:
        """Whether the chain goes on without failed step `key`: every dependent proceeds on its
        own terms (fallback, a value given by hand, a nice-to-have, a person's choice, a merge
        that went ahead). False when something needed it (a leaf, a blocking wait, a skip that
        leads nowhere); None while that is not known yet."""
        dependents = self.defn.dependents(key)
        if not dependents:
            return False
        final = states[key] in FAILED_FINALLY
        verdict: bool | None = True
        for dependent in dependents:
            state = states[dependent.key]
            result: bool | None
            if dependent.kind is StepKind.MERGE:
                if state is StepState.WAITING:
                    result = None
                elif state is StepState.SKIPPED:
                    result = self._absorbed(dependent.key, states)
                else:
                    result = True
            elif key in self.steps[dependent.key].waived:
                result = True
            else:
                dep = next(d for d in dependent.depends_on if d.step == key)
                outcome = failure_outcome(dep, final)
                if outcome is Outcome.WAIT:
                    return False
                if outcome is Outcome.SKIP and state is StepState.SKIPPED:
                    result = self._absorbed(dependent.key, states)
                elif outcome is Outcome.SKIP and state is StepState.WAITING:
                    result = None
                else:
                    result = True
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    # ---------------------------------------------------------------- result

    def result(self) -> Progress:
        """Everything this run did."""
        after = Snapshot(self.item, tuple(self.steps[s.key] for s in self.before.steps))
        timers = tuple(
            TimerChange(key, t.cancel, t.keep, tuple(t.arm))
            for key, t in self._timers.items()
            if t.cancel or t.keep or t.arm
        )
        return Progress(
            self.before,
            after,
            tuple(self.entries),
            tuple(self.decisions),
            timers,
            frozenset(self.moved),
        )
