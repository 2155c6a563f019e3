"""Timers of a step: what fires when, planned from the step definition at activation.

The plan is frozen onto the item when the step activates (`EscalationPlan`), so that editing a
template later never changes the deadlines of work already in flight, and so that a worker that
fires a timer reads the chain it was armed with, not today's template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from signoff.domain.calendar import Clockwork
from signoff.domain.durations import format_duration, parse_duration
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.template_model import (
    Assignees,
    EscalationActionKind,
    EscalationLevel,
    StepDefinition,
    TimeoutAction,
)


class TimerKind(StrEnum):
    """Why a timer fires."""

    SLA = "sla"
    REMINDER = "reminder"
    DEADLINE_RISK = "deadline_risk"
    ESCALATION = "escalation"
    HOLD = "hold"


DEFAULT_HOLD_TIMEOUT = timedelta(days=1)
"""How long a step held for a person waits when it has no SLA of its own."""

# at the same instant, nudge before warning, warn before escalating, escalate before timing out
_KIND_ORDER = {
    TimerKind.REMINDER: 0,
    TimerKind.DEADLINE_RISK: 1,
    TimerKind.ESCALATION: 2,
    TimerKind.SLA: 3,
    TimerKind.HOLD: 4,
}


@dataclass(frozen=True)
class TimerSpec:
    """One timer to arm: its kind, when it is due, the escalation level (1-based) if any."""

    kind: TimerKind
    due_at: datetime
    level: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[datetime, int, int]:
        """Due time, then kind order, then level: a total, stable order."""
        return (self.due_at, _KIND_ORDER[self.kind], self.level or 0)


@dataclass(frozen=True)
class EscalationPlan:
    """A frozen snapshot of a step's time rules, stored on the item when the step activates."""

    step_key: str
    sla: timedelta | None
    reminders: tuple[timedelta, ...]
    deadline_risk_ratio: float | None
    levels: tuple[EscalationLevel, ...]
    timeout_action: TimeoutAction

    @classmethod
    def from_step(cls, step: StepDefinition) -> EscalationPlan:
        """Snapshot the time rules of `step`."""
        return cls(
            step_key=step.key,
            sla=step.sla,
            reminders=step.reminders,
            deadline_risk_ratio=step.deadline_risk_ratio,
            levels=step.escalation,
            timeout_action=step.timeout_action,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (durations as ISO-8601 strings)."""
        return {
            "step_key": self.step_key,
            "sla": format_duration(self.sla) if self.sla is not None else None,
            "reminders": [format_duration(r) for r in self.reminders],
            "deadline_risk_ratio": self.deadline_risk_ratio,
            "levels": [
                {
                    "after": format_duration(level.after),
                    "action": level.action.value,
                    "targets": level.targets.to_dict(),
                    "priority": level.priority,
                }
                for level in self.levels
            ],
            "timeout_action": self.timeout_action.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EscalationPlan:
        """Read back what `to_dict` wrote; INVALID_INPUT if it is not such a document."""
        try:
            return cls(
                step_key=str(data["step_key"]),
                sla=parse_duration(data["sla"]) if data.get("sla") else None,
                reminders=tuple(parse_duration(r) for r in data.get("reminders", ())),
                deadline_risk_ratio=data.get("deadline_risk_ratio"),
                levels=tuple(
                    EscalationLevel(
                        after=parse_duration(level["after"]),
                        action=EscalationActionKind(level.get("action", "notify")),
                        targets=Assignees.from_dict(level.get("targets") or {}),
                        priority=level.get("priority"),
                    )
                    for level in data.get("levels", ())
                ),
                timeout_action=TimeoutAction(data.get("timeout_action", "expire")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"not an escalation plan: {exc}", field="escalation_plan"
            ) from None

    def timers(self, activated_at: datetime, calendar: Clockwork) -> list[TimerSpec]:
        """Every timer of this plan for a step activated at `activated_at`, sorted by due time."""
        out: list[TimerSpec] = []
        for i, reminder in enumerate(self.reminders):
            out.append(
                TimerSpec(
                    TimerKind.REMINDER,
                    calendar.add(activated_at, reminder),
                    payload={"index": i, "after": format_duration(reminder)},
                )
            )
        if self.sla is not None and self.deadline_risk_ratio is not None:
            at_risk = self.sla * self.deadline_risk_ratio
            out.append(
                TimerSpec(
                    TimerKind.DEADLINE_RISK,
                    calendar.add(activated_at, at_risk),
                    payload={"ratio": self.deadline_risk_ratio},
                )
            )
        for number, level in enumerate(self.levels, start=1):
            out.append(
                TimerSpec(
                    TimerKind.ESCALATION,
                    calendar.add(activated_at, level.after),
                    level=number,
                    payload={
                        "action": level.action.value,
                        "targets": level.targets.to_dict(),
                        "priority": level.priority,
                    },
                )
            )
        if self.sla is not None:
            out.append(
                TimerSpec(
                    TimerKind.SLA,
                    calendar.add(activated_at, self.sla),
                    payload={"action": self.timeout_action.value},
                )
            )
        return sorted(out, key=lambda t: t.sort_key)


def hold_timer(step: StepDefinition, since: datetime, calendar: Clockwork) -> TimerSpec:
    """The timer of a step held for a person: due after the step's SLA (or a day)."""
    return TimerSpec(TimerKind.HOLD, calendar.add(since, step.sla or DEFAULT_HOLD_TIMEOUT))


def next_priority(current: int, level: EscalationLevel) -> int:
    """The item priority after `level` fires (higher is more urgent); never lowers it.

    A level with an explicit priority raises to it; a `raise_priority` level without one adds 1.
    """
    if level.priority is not None:
        return max(current, level.priority)
    if level.action is EscalationActionKind.RAISE_PRIORITY:
        return current + 1
    return current
