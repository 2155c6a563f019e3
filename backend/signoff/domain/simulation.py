"""Simulation: a dry run of a template against an input, writing nothing.

It answers "what would happen if this item were submitted now" by running the same progression
the engine runs (`domain/progression.py`) on the records a submission would store
(`domain/intake.py`), with a clock that jumps from one event to the next: decisions as the
scenario says, timers as they come due. What it reports is therefore what the engine would do:
the steps with their assignees, activation, deadlines and end states, the notifications the
audit trail would cause, the auto-approval rules that fire, and the problems (payload, a
requester who would have to decide their own item, steps held for a person). `compare` diffs
two runs, for replaying past items through a changed draft before publishing.

By default every step is decided (approved, or a decision step's first option) the instant it
activates. `decisions` overrides that per step, with one of:

- `approve` / `approved`, `reject` / `rejected`, a decision step's option value;
- `timeout`: nobody acts, the step's timers (reminders, escalations, the SLA) decide;
- any of the above followed by `@` and an ISO-8601 duration (`approve@PT5H`): decided after that
  much counted time (per the calendar) from activation, so deadlines and breaches show.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from signoff.domain.actors import Principal
from signoff.domain.calendar import Clockwork
from signoff.domain.durations import parse_duration
from signoff.domain.errors import DomainError, Problem
from signoff.domain.events import Event, Submit, TimerFired, Vote, VoteOutcome
from signoff.domain.intake import new_item, new_steps
from signoff.domain.limits import DEFAULT_LIMITS
from signoff.domain.notification_policy import KIND_OF_ACTION, concerns_open_step
from signoff.domain.payloads import payload_problems
from signoff.domain.permissions import EVERYONE, Grants, Permission
from signoff.domain.progression import Context, Progress, Snapshot, progress
from signoff.domain.records import DecisionOutcome, Seat, Step
from signoff.domain.states import StepState
from signoff.domain.template_model import Assignees, StepDefinition, StepKind, TemplateDefinition
from signoff.domain.timers import TimerKind, TimerSpec

SIMULATED = UUID(int=0)
_MAX_EVENTS = 10_000


@dataclass(frozen=True)
class Decided:
    """How a step is decided in a scenario: `verdict` after `delay` from its activation
    (`counted` by the calendar, or wall-clock time when replaying real items)."""

    verdict: str
    delay: timedelta | None = None
    counted: bool = True


@dataclass(frozen=True)
class SimulatedStep:
    """One step as it would play out."""

    key: str
    name: str
    kind: StepKind
    assignees: Assignees
    state: StepState
    activated_at: datetime | None = None
    decided_at: datetime | None = None
    sla_due: datetime | None = None
    breached: bool = False
    decision: str | None = None
    auto_approved_by: str | None = None
    timers: tuple[TimerSpec, ...] = ()


@dataclass(frozen=True)
class SimulatedNotification:
    """A notification that would go out: its kind, step, recipients and time."""

    kind: str
    step: str
    recipients: Assignees
    at: datetime
    level: int | None = None


@dataclass(frozen=True)
class AutoApproval:
    """An auto-approval rule that would fire on a step."""

    step: str
    rule: str


@dataclass(frozen=True)
class SimulationResult:
    """Everything a dry run found. `outcome` is the item's would-be state."""

    template_key: str
    outcome: str
    steps: tuple[SimulatedStep, ...]
    notifications: tuple[SimulatedNotification, ...]
    auto_approvals: tuple[AutoApproval, ...]
    problems: tuple[Problem, ...]

    def step(self, key: str) -> SimulatedStep | None:
        """The simulated step with this key, if the template has it."""
        return next((s for s in self.steps if s.key == key), None)


@dataclass(frozen=True)
class Difference:
    """One way two simulation runs differ; `step` is None for item-level differences."""

    kind: str
    step: str | None
    before: Any
    after: Any


_APPROVE = {"approve", "approved"}
_REJECT = {"reject", "rejected"}


def read_decision(step: StepDefinition, raw: str, problems: list[Problem]) -> Decided:
    """Parse a scenario's decision for `step` (`approve@PT5H`, `timeout`, an option...)."""
    default = step.options[0] if step.kind is StepKind.DECISION else "approve"
    verdict, _, delay_text = raw.partition("@")
    verdict = verdict.strip()
    delay = None
    if delay_text:
        try:
            delay = parse_duration(delay_text)
        except DomainError as exc:
            problems.append(Problem(exc.message, f"decisions.{step.key}"))
    allowed = _APPROVE | _REJECT | {"timeout"} | set(step.options)
    if verdict not in allowed:
        problems.append(
            Problem(
                f"unknown decision {verdict!r} for step {step.key!r}; "
                f"expected one of {', '.join(sorted(allowed))}",
                f"decisions.{step.key}",
            )
        )
        return Decided(default, delay)
    if verdict in _APPROVE and step.kind is StepKind.DECISION:
        verdict = default
    return Decided(verdict, delay)


def _voter(seat: Seat, index: int) -> Principal:
    """A stand-in for whoever fills `seat` in a dry run."""
    if seat.holder:
        return Principal(seat.holder, "simulation")
    name = seat.group or seat.role or "someone"
    return Principal(
        f"{name} member {index + 1}",
        "simulation",
        groups=frozenset({seat.group}) if seat.group else frozenset(),
        roles=frozenset({seat.role}) if seat.role else frozenset(),
    )


def _votes(step: Step, verdict: str) -> list[Vote]:
    """Votes on `step`'s unfilled seats, in seat order, enough to carry `verdict`."""
    outcome = VoteOutcome.REJECT if verdict in _REJECT else VoteOutcome.APPROVE
    value = verdict if step.kind is StepKind.DECISION and verdict not in _APPROVE else None
    return [
        Vote(step.key, _voter(seat, i), outcome, "simulated decision", value)
        for i, seat in enumerate(step.seats)
        if not seat.filled
    ]


class _Scenario:
    """The dry run's clock and queue: events in time order, each through the progression."""

    def __init__(
        self,
        defn: TemplateDefinition,
        snapshot: Snapshot,
        context: Context,
        plans: Mapping[str, Decided],
    ) -> None:
        self.defn, self.snapshot, self.context, self.plans = defn, snapshot, context, plans
        self.queue: list[tuple[datetime, int, Any]] = []
        self.counter = itertools.count()
        self.runs: list[tuple[datetime, Progress]] = []
        self.armed: dict[str, tuple[TimerSpec, ...]] = {}
        self.asked: dict[str, Assignees] = {}

    def push(self, at: datetime, item: Any) -> None:
        heapq.heappush(self.queue, (at, next(self.counter), item))

    def apply(self, at: datetime, event: Event) -> Progress | None:
        try:
            result = progress(self.snapshot, self.defn, event, self.context.at(at))
        except DomainError:
            return None
        self.snapshot = result.after
        self.runs.append((at, result))
        self._follow(at, result)
        return result

    def _follow(self, at: datetime, result: Progress) -> None:
        for change in result.timers:
            self.armed.setdefault(change.step, change.arm)
            for spec in change.arm:
                self.push(spec.due_at, TimerFired(change.step, spec.kind, spec.due_at, spec.level))
        for entry in result.entries:
            if entry.action == "step.activate" and entry.step:
                self.asked.setdefault(entry.step, result.after.step(entry.step).assignees.spec)
            if entry.action in ("step.activate", "step.resubmit", "step.reopen") and entry.step:
                plan = self.plans.get(entry.step) or read_decision(
                    self.defn.step(entry.step), "approve", []
                )
                if plan.verdict == "timeout":
                    continue
                due = at
                if plan.delay is not None:
                    due = (
                        self.context.calendar.add(at, plan.delay)
                        if plan.counted
                        else at + plan.delay
                    )
                self.push(due, (entry.step, plan.verdict))

    def run(self) -> None:
        for _ in range(_MAX_EVENTS):
            if not self.queue:
                return
            at, _n, item = heapq.heappop(self.queue)
            if isinstance(item, tuple):
                key, verdict = item
                for vote in _votes(self.snapshot.step(key), verdict):
                    if self.snapshot.step(key).state is not StepState.ACTIVE:
                        break
                    self.apply(at, vote)
            else:
                self.apply(at, item)


def simulate(
    defn: TemplateDefinition,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    calendar: Clockwork,
    requester: str,
    decisions: Mapping[str, str | Decided] | None = None,
    max_payload_bytes: int = DEFAULT_LIMITS.max_payload_bytes,
    override_roles: frozenset[str] = frozenset(),
) -> SimulationResult:
    """Play `defn` forward from `now` for an item with `payload` submitted by `requester`.

    Pure: reads its arguments, returns a value, writes nothing and sends nothing.
    """
    problems: list[Problem] = list(payload_problems(defn.fields, payload, max_payload_bytes))
    plans: dict[str, Decided] = {}
    for key, raw in (decisions or {}).items():
        if not defn.has_step(key):
            problems.append(Problem(f"unknown step {key!r}", f"decisions.{key}"))
        elif isinstance(raw, Decided):
            plans[key] = raw
        else:
            plans[key] = read_decision(defn.step(key), str(raw), problems)
    item = new_item(
        defn,
        tenant_id="simulation",
        template_id=SIMULATED,
        requester_id=requester,
        title=defn.name,
        payload=payload,
        now=now,
        item_id=SIMULATED,
    )
    # A dry run takes the people a step names as allowed to decide it; `override_roles` are
    # the roles granted `override` on the template (the last escalation targets).
    grants = Grants({Permission.DECIDE: frozenset({EVERYONE}), Permission.OVERRIDE: override_roles})
    context = Context(now, calendar, grants=grants)
    scenario = _Scenario(defn, Snapshot(item, new_steps(item, defn)), context, plans)
    scenario.push(now, Submit())
    scenario.run()
    return _result(defn, requester, scenario, problems)


_VERDICT = {
    StepState.APPROVED: "approve",
    StepState.RUNNING: "approve",
    StepState.COMPLETED: "approve",
    StepState.FAILED: "approve",
    StepState.COMPENSATED: "approve",
    StepState.REJECTED: "reject",
}


def real_decisions(steps: Sequence[Step]) -> dict[str, Decided]:
    """How each step of a real item was decided, and how long after it opened (wall-clock
    time), so that a replay shows the deadlines it met or breached. A step nobody decided
    (expired, still open) is left to its timers."""
    decided: dict[str, Decided] = {}
    for step in steps:
        verdict = _VERDICT.get(step.state)
        if verdict is None or step.activated_at is None or step.decided_at is None:
            decided[step.key] = Decided("timeout")
            continue
        delay = max(step.decided_at - step.activated_at, timedelta(0))
        decided[step.key] = Decided(step.decision_value or verdict, delay, counted=False)
    return decided


def replay(
    defn: TemplateDefinition,
    item: Any,
    events: Sequence[tuple[datetime, Event]],
    context: Context,
) -> Snapshot:
    """Fold `events` (each at its time) over a fresh submission of `item`: the snapshot the
    engine reaches after the same events. Refused events change nothing, as in the engine."""
    snapshot = Snapshot(item, new_steps(item, defn))
    for at, event in [(item.created_at, Submit()), *events]:
        try:
            snapshot = progress(snapshot, defn, event, context.at(at)).after
        except DomainError:
            continue
    return snapshot


def _result(
    defn: TemplateDefinition,
    requester: str,
    scenario: _Scenario,
    problems: list[Problem],
) -> SimulationResult:
    final = scenario.snapshot
    notifications: list[SimulatedNotification] = []
    rules: dict[str, str] = {}
    for at, result in scenario.runs:
        after = {s.key: s for s in result.after.steps}
        for entry in result.entries:
            if entry.action == "step.dependency_conflict" and entry.step:
                problems.append(_held(defn, entry.step, entry.data.get("upstreams", ())))
            kind = KIND_OF_ACTION.get(entry.action)
            if kind is None or entry.step is None or kind in ("decision", "failure"):
                continue
            if not concerns_open_step(kind, after[entry.step].state.value, entry.data):
                continue  # the planner drops what concerns a step no longer open
            recipients = after[entry.step].assignees.spec
            level = entry.data.get("level")
            if entry.action == "step.escalate" and entry.data.get("targets"):
                recipients = Assignees.from_dict(entry.data["targets"])
            notifications.append(SimulatedNotification(kind, entry.step, recipients, at, level))
            if entry.data.get("by") == "unfillable_seats":
                problems.append(_unfillable(defn, requester, entry.step))
        for decision in result.decisions:
            if (
                decision.outcome is DecisionOutcome.APPROVE_BY_POLICY
                and decision.rule
                and defn.step(decision.step).kind is not StepKind.MERGE
            ):
                rules[decision.step] = decision.rule
    steps = tuple(
        _simulated(
            s,
            scenario.asked.get(s.key, s.assignees.spec),
            scenario.armed.get(s.key, ()),
            rules.get(s.key),
        )
        for s in final.steps
    )
    order = {k: i for i, k in enumerate(defn.topological_order())}
    return SimulationResult(
        template_key=defn.key,
        outcome=final.item.state.value,
        steps=tuple(sorted(steps, key=lambda s: order[s.key])),
        notifications=tuple(sorted(notifications, key=lambda n: (n.at, n.step, n.kind))),
        auto_approvals=tuple(
            AutoApproval(k, rules[k]) for k in sorted(rules, key=order.__getitem__)
        ),
        problems=tuple(problems),
    )


def _held(defn: TemplateDefinition, key: str, upstreams: Sequence[str]) -> Problem:
    index = [s.key for s in defn.steps].index(key)
    return Problem(
        f"step {key!r} would wait for a person to choose how to go on without "
        + ", ".join(repr(u) for u in upstreams),
        f"steps[{index}].depends_on",
    )


def _unfillable(defn: TemplateDefinition, requester: str, key: str) -> Problem:
    index = [s.key for s in defn.steps].index(key)
    return Problem(
        f"separation of duties: without the requester {requester!r}, step {key!r} has too "
        "few seats for its quorum; it would escalate as soon as it opens",
        f"steps[{index}].assignees",
    )


def _simulated(
    step: Step, asked: Assignees, timers: tuple[TimerSpec, ...], rule: str | None
) -> SimulatedStep:
    """One step as it ended, with the people it was put to when it opened."""
    due = step.due_at
    decided = step.decided_at
    late = due is not None and (decided is None or decided >= due)
    return SimulatedStep(
        key=step.key,
        name=step.name,
        kind=step.kind,
        assignees=asked,
        state=step.state,
        activated_at=step.activated_at,
        decided_at=decided,
        sla_due=due,
        breached=late and step.activated_at is not None and step.state is not StepState.SKIPPED,
        decision=step.decision_value,
        auto_approved_by=rule,
        timers=tuple(t for t in timers if t.kind is not TimerKind.HOLD),
    )


def compare(before: SimulationResult, after: SimulationResult) -> list[Difference]:
    """How `after` differs from `before`: steps added or removed, assignees, states, deadlines,
    breaches, auto-approvals, notification counts and the item outcome.
    """
    diffs: list[Difference] = []
    old = {s.key: s for s in before.steps}
    new = {s.key: s for s in after.steps}
    for key in old.keys() - new.keys():
        diffs.append(Difference("step_removed", key, old[key].state.value, None))
    for key in new.keys() - old.keys():
        diffs.append(Difference("step_added", key, None, new[key].state.value))
    for key in [s.key for s in after.steps if s.key in old]:
        a, b = old[key], new[key]
        for kind, x, y in (
            ("assignees", a.assignees, b.assignees),
            ("state", a.state.value, b.state.value),
            ("deadline", a.sla_due, b.sla_due),
            ("breach", a.breached, b.breached),
            ("auto_approval", a.auto_approved_by, b.auto_approved_by),
        ):
            if x != y:
                diffs.append(Difference(kind, key, x, y))
    count_a = _count_by_step(before.notifications)
    count_b = _count_by_step(after.notifications)
    for key in sorted(count_a.keys() | count_b.keys()):
        if count_a.get(key, 0) != count_b.get(key, 0):
            diffs.append(Difference("notifications", key, count_a.get(key, 0), count_b.get(key, 0)))
    if before.outcome != after.outcome:
        diffs.append(Difference("outcome", None, before.outcome, after.outcome))
    return diffs


def _count_by_step(notifications: tuple[SimulatedNotification, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in notifications:
        counts[n.step] = counts.get(n.step, 0) + 1
    return counts


__all__ = [
    "AutoApproval",
    "Decided",
    "Difference",
    "SimulatedNotification",
    "SimulatedStep",
    "SimulationResult",
    "compare",
    "real_decisions",
    "replay",
    "simulate",
]
