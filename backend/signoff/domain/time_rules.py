"""The progression's rules for time: reminders, deadline warnings, escalation levels, the SLA's
timeout action and the timeout of a held step. A timer acts through the same moves as a person,
and only on a step still in the state it was armed for (else it is void)."""

from __future__ import annotations

from signoff.domain.actors import SYSTEM_USER
from signoff.domain.events import TimerFired
from signoff.domain.records import DecisionOutcome
from signoff.domain.run import Run
from signoff.domain.seats import added, assignees_of, covering
from signoff.domain.states import StepAction, StepState
from signoff.domain.template_model import (
    EscalationActionKind,
    EscalationLevel,
    QuorumMode,
    TimeoutAction,
)
from signoff.domain.timers import EscalationPlan, TimerKind, next_priority


def timer_fired(run: Run, event: TimerFired) -> None:
    """Act on a due timer of a step; nothing happens (a void run) when the step is no longer in
    the state the timer was armed for."""
    key = event.step
    step = run.steps[key]
    if event.kind is TimerKind.HOLD:
        if step.state is StepState.HELD:
            run.move(
                key,
                StepAction.EXPIRE,
                data={"by": "hold_timeout", "timer": event.timer},
                hold=None,
            )
            run.advance()
        return
    if step.state is not StepState.ACTIVE:
        return
    plan = step.escalation_plan or EscalationPlan.from_step(run.defn.step(key))
    base = {
        "timer": event.timer,
        "due_at": event.due_at.isoformat(),
        "lateness_seconds": (run.ctx.now - event.due_at).total_seconds(),
    }
    if event.kind is TimerKind.REMINDER:
        run.note("timer.reminder", key, data={**base, "assignees": step.assignees.to_dict()})
    elif event.kind is TimerKind.DEADLINE_RISK:
        due = step.due_at.isoformat() if step.due_at else None
        run.note("timer.deadline_risk", key, data={**base, "due": due})
    elif event.kind is TimerKind.ESCALATION:
        level = plan.levels[(event.level or 1) - 1]
        _escalate(run, key, level, event.level or 1, base)
    else:
        _time_out(run, key, plan.timeout_action, base)
    run.advance()


def _escalate(
    run: Run, key: str, level: EscalationLevel, number: int, base: dict[str, object]
) -> None:
    """One rung of the escalation chain: its targets join (or replace the unfilled seats), the
    item's priority rises as the level says."""
    step = run.steps[key]
    seats, needed = step.seats, step.needed
    if level.action is EscalationActionKind.ADD_ASSIGNEES:
        seats = added(step.seats, level.targets, run.requester)
    elif level.action is EscalationActionKind.REASSIGN:
        seats = added(tuple(s for s in step.seats if s.filled), level.targets, run.requester)
        if step.quorum.mode is QuorumMode.ALL:
            needed = max(len(seats), 1)
        seats = covering(seats, level.targets, needed, run.override_roles)
    run.move(
        key,
        StepAction.ESCALATE,
        data={
            **base,
            "by": "timer",
            "level": number,
            "action": level.action.value,
            "targets": level.targets.to_dict(),
            "before": step.assignees.to_dict() if seats != step.seats else None,
        },
        seats=seats,
        needed=needed,
        assignees=assignees_of(seats),
        escalation_level=number,
    )
    run.raise_priority(next_priority(run.item.priority, level))


def _time_out(run: Run, key: str, action: TimeoutAction, base: dict[str, object]) -> None:
    """The end of the chain: the SLA deadline applies the step's timeout action."""
    data = {**base, "by": "sla"}
    if action is TimeoutAction.EXPIRE:
        run.move(key, StepAction.EXPIRE, data=data)
    elif action is TimeoutAction.REJECT:
        run.move(key, StepAction.REJECT, reason="SLA breached", data=data)
    elif action is TimeoutAction.APPROVE:
        # Only templates that allow it reach here (refused when the template is saved).
        run.decide(
            key, SYSTEM_USER, DecisionOutcome.APPROVE_BY_POLICY, rule="timeout auto-approval"
        )
        run.move(key, StepAction.APPROVE, data=data)
    else:
        step = run.steps[key]
        roles = run.override_roles
        seats = added(step.seats, roles, run.requester)
        run.move(
            key,
            StepAction.ESCALATE,
            data={**data, "to_roles": list(roles.roles)},
            seats=seats,
            assignees=assignees_of(seats),
        )
