"""Simulation: a dry run of a template against an input, writing nothing.

It answers "what would happen if this item were submitted now": the steps in order, who they go
to, when they activate and fall due, which notifications would go out and which auto-approval
rules would fire, and what is wrong (payload problems, a requester who would approve their own
item). Problems are returned, not raised, so that an editor can show them all beside the plan.
`compare` diffs two runs, for replaying past items through a changed draft before publishing.

By default every step is decided (approved, or a decision step's first option) the instant it
activates. `decisions` overrides that per step, with one of:

- `approve` / `approved`, `reject` / `rejected`, a decision step's option value;
- `timeout`: nobody acts, the SLA deadline applies the step's timeout action;
- any of the above followed by `@` and an ISO-8601 duration (`approve@PT5H`): decided after that
  much counted time (per the calendar) from activation, so deadlines and breaches show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from signoff.domain.calendar import Clockwork
from signoff.domain.dependencies import RESOLVED, evaluate_step, ready_steps, settle
from signoff.domain.dependencies import Readiness as _Readiness
from signoff.domain.durations import parse_duration
from signoff.domain.errors import DomainError, Problem
from signoff.domain.limits import DEFAULT_LIMITS
from signoff.domain.payloads import payload_problems
from signoff.domain.policies import auto_approval_rule
from signoff.domain.quorum import required_approvals, seats_for
from signoff.domain.states import StepState
from signoff.domain.template_model import (
    Assignees,
    EscalationActionKind,
    StepDefinition,
    StepKind,
    TemplateDefinition,
    TemplateKind,
    TimeoutAction,
)
from signoff.domain.timers import TimerKind, TimerSpec, plan_timers


class NotificationKind(StrEnum):
    """The notifications a simulation reports."""

    ASSIGNMENT = "assignment"
    REMINDER = "reminder"
    DEADLINE_RISK = "deadline_risk"
    ESCALATION = "escalation"


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

    kind: NotificationKind
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
    """Everything a dry run found. `outcome` is the item's would-be end state."""

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


@dataclass(frozen=True)
class _Plan:
    verdict: str
    delay: timedelta | None


_APPROVE = {"approve", "approved"}
_REJECT = {"reject", "rejected"}


def _read_decision(step: StepDefinition, raw: str | None, problems: list[Problem]) -> _Plan:
    default = step.options[0] if step.kind is StepKind.DECISION else "approve"
    if raw is None:
        return _Plan(default, None)
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
        return _Plan(default, delay)
    if verdict in _APPROVE and step.kind is StepKind.DECISION:
        verdict = default
    return _Plan(verdict, delay)


def _separation_problems(
    defn: TemplateDefinition, requester: str, skipped: set[str]
) -> list[Problem]:
    problems = []
    for i, step in enumerate(defn.steps):
        if step.kind is StepKind.MERGE or step.key in skipped:
            continue
        a = step.assignees
        if requester not in a.users or a.groups or a.roles:
            continue
        others = len(set(a.users) - {requester})
        if others == 0:
            problems.append(
                Problem(
                    f"separation of duties: requester {requester!r} is the only assignee of "
                    f"step {step.key!r} and may not approve their own item",
                    f"steps[{i}].assignees",
                )
            )
        elif others < required_approvals(step.quorum, seats_for(step.quorum, a)):
            problems.append(
                Problem(
                    f"separation of duties: without the requester {requester!r}, step "
                    f"{step.key!r} has {others} eligible approvers, fewer than its quorum needs",
                    f"steps[{i}].quorum",
                )
            )
    return problems


def _fired(
    step: StepDefinition, timers: list[TimerSpec], until: datetime | None
) -> list[SimulatedNotification]:
    """Notifications from the timers that fire before the step is decided at `until`."""
    out = []
    for timer in timers:
        if timer.kind is TimerKind.SLA or (until is not None and timer.due_at >= until):
            continue
        if timer.kind is TimerKind.ESCALATION:
            targets = Assignees(
                users=tuple(timer.payload["targets"]["users"]),
                groups=tuple(timer.payload["targets"]["groups"]),
                roles=tuple(timer.payload["targets"]["roles"]),
            )
            if timer.payload["action"] == EscalationActionKind.RAISE_PRIORITY.value:
                targets = step.assignees
            out.append(
                SimulatedNotification(
                    NotificationKind.ESCALATION, step.key, targets, timer.due_at, timer.level
                )
            )
        else:
            out.append(
                SimulatedNotification(
                    NotificationKind(timer.kind.value), step.key, step.assignees, timer.due_at
                )
            )
    return out


_TIMEOUT_STATE = {
    TimeoutAction.APPROVE: StepState.APPROVED,
    TimeoutAction.REJECT: StepState.REJECTED,
    TimeoutAction.EXPIRE: StepState.EXPIRED,
    TimeoutAction.ESCALATE: StepState.ACTIVE,
}


def simulate(
    defn: TemplateDefinition,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    calendar: Clockwork,
    requester: str,
    decisions: Mapping[str, str] | None = None,
    max_payload_bytes: int = DEFAULT_LIMITS.max_payload_bytes,
) -> SimulationResult:
    """Play `defn` forward from `now` for an item with `payload` submitted by `requester`.

    Pure: reads its arguments, returns a value, writes nothing and sends nothing.
    """
    decisions = dict(decisions or {})
    problems: list[Problem] = list(payload_problems(defn.fields, payload, max_payload_bytes))
    for key in decisions:
        if not defn.has_step(key):
            problems.append(Problem(f"unknown step {key!r}", f"decisions.{key}"))

    states: dict[str, StepState] = {k: StepState.WAITING for k in defn.topological_order()}
    values: dict[str, str] = {}
    resolved_at: dict[str, datetime] = {}
    results: dict[str, SimulatedStep] = {}
    notifications: list[SimulatedNotification] = []
    autos: list[AutoApproval] = []

    def start_time(step: StepDefinition) -> datetime:
        ups = [resolved_at[d.step] for d in step.depends_on if d.step in resolved_at]
        return max([now, *ups])

    while True:
        settled = settle(defn, states, values)
        for key, state in settled.items():
            if state is StepState.SKIPPED and states[key] is not StepState.SKIPPED:
                resolved_at[key] = start_time(defn.step(key))
        states = settled
        ready = ready_steps(defn, states, values)
        if not ready:
            break
        for key in ready:
            step = defn.step(key)
            results[key] = _run_step(
                step, defn, start_time(step), calendar, decisions.get(key), problems, notifications
            )
            if results[key].auto_approved_by:
                autos.append(AutoApproval(key, results[key].auto_approved_by or ""))
            states[key] = results[key].state
            if results[key].decision is not None:
                values[key] = results[key].decision or ""
            if states[key] in RESOLVED and results[key].decided_at is not None:
                resolved_at[key] = results[key].decided_at or now

    for i, key in enumerate(defn.topological_order()):
        if states[key] is StepState.WAITING:
            verdict = evaluate_step(defn, states, values, key)
            if verdict.readiness is _Readiness.ASK_USER:
                problems.append(
                    Problem(
                        f"step {key!r} would wait for a person to choose how to go on without "
                        + ", ".join(repr(s) for s in verdict.waiting_on),
                        f"steps[{i}].depends_on",
                    )
                )
    skipped = {k for k, s in states.items() if s is StepState.SKIPPED}
    problems.extend(_separation_problems(defn, requester, skipped))

    steps = tuple(
        results.get(key)
        or SimulatedStep(
            key, defn.step(key).name, defn.step(key).kind, defn.step(key).assignees, states[key]
        )
        for key in defn.topological_order()
    )
    return SimulationResult(
        template_key=defn.key,
        outcome=_outcome(defn, states),
        steps=steps,
        notifications=tuple(sorted(notifications, key=lambda n: (n.at, n.step, n.kind.value))),
        auto_approvals=tuple(autos),
        problems=tuple(problems),
    )


def _run_step(
    step: StepDefinition,
    defn: TemplateDefinition,
    at: datetime,
    calendar: Clockwork,
    raw_decision: str | None,
    problems: list[Problem],
    notifications: list[SimulatedNotification],
) -> SimulatedStep:
    base = SimulatedStep(
        step.key, step.name, step.kind, step.assignees, StepState.ACTIVE, activated_at=at
    )
    if step.kind is StepKind.MERGE:
        return replace(base, state=StepState.APPROVED, decided_at=at)
    rule = auto_approval_rule(defn.auto_approval, step)
    if rule is not None and raw_decision is None:
        return replace(base, state=StepState.APPROVED, decided_at=at, auto_approved_by=rule)
    timers = plan_timers(step, at, calendar)
    sla_due = next((t.due_at for t in timers if t.kind is TimerKind.SLA), None)
    notifications.append(
        SimulatedNotification(NotificationKind.ASSIGNMENT, step.key, step.assignees, at)
    )
    plan = _read_decision(step, raw_decision, problems)
    decided_at: datetime | None = at if plan.delay is None else calendar.add(at, plan.delay)
    verdict = plan.verdict
    timed_out = verdict == "timeout" or (
        sla_due is not None
        and decided_at is not None
        and decided_at > sla_due
        and step.timeout_action is not TimeoutAction.ESCALATE
    )
    if timed_out:
        decided_at = sla_due  # None: no SLA, nobody acts, the step waits for ever
        state = _TIMEOUT_STATE[step.timeout_action] if sla_due else StepState.ACTIVE
        if state is StepState.ACTIVE:
            decided_at = None
        decision = None
    elif verdict in _REJECT:
        state, decision = StepState.REJECTED, None
    else:
        state = StepState.APPROVED
        decision = verdict if step.kind is StepKind.DECISION else None
    notifications.extend(_fired(step, timers, decided_at))
    return replace(
        base,
        state=state,
        decided_at=decided_at,
        sla_due=sla_due,
        breached=sla_due is not None and (timed_out or decided_at is None or decided_at > sla_due),
        decision=decision,
        timers=tuple(timers),
    )


def _outcome(defn: TemplateDefinition, states: Mapping[str, StepState]) -> str:
    values = set(states.values())
    approved = bool(values & {StepState.APPROVED, StepState.COMPLETED, StepState.RUNNING})
    failed = "rejected" if StepState.REJECTED in values else None
    failed = failed or ("expired" if StepState.EXPIRED in values else None)
    if failed and defn.kind is not TemplateKind.PLAN:
        return failed  # an ordinary item is all or nothing: one refusal decides it
    if values & {StepState.ACTIVE, StepState.CHANGES_REQUESTED}:
        return "pending"
    if StepState.WAITING in values and not failed:
        return "pending"  # held for a person (ask_user)
    if failed:
        # a plan goes ahead with the steps people approved
        return "partially_approved" if approved else failed
    return "approved" if approved else "skipped"


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
    "Difference",
    "NotificationKind",
    "SimulatedNotification",
    "SimulatedStep",
    "SimulationResult",
    "compare",
    "simulate",
]
