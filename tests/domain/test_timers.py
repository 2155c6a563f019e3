import json
from datetime import UTC, datetime, timedelta

import pytest

from signoff.domain.calendar import WALL_CLOCK, BusinessCalendar
from signoff.domain.errors import DomainError
from signoff.domain.templates import EscalationActionKind, EscalationLevel, parse_template
from signoff.domain.timers import EscalationPlan, TimerKind, next_priority


def plan_timers(step, at, calendar):
    return EscalationPlan.from_step(step).timers(at, calendar)


T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def make_step(**kw):
    data = {
        "key": "s",
        "assignees": {"roles": ["r"]},
        "sla": "PT8H",
        "reminders": ["PT4H", "PT2H"],
        "escalation": [
            {
                "after": "PT6H",
                "action": "add_assignees",
                "targets": {"groups": ["g"]},
                "priority": 2,
            },
            {"after": "PT8H", "action": "raise_priority"},
        ],
        "timeout_action": "expire",
    }
    data.update(kw)
    return parse_template({"key": "t", "name": "t", "kind": "approval", "steps": [data]}).steps[0]


def test_plan_timers_order_and_contents():
    timers = plan_timers(make_step(), T0, WALL_CLOCK)
    assert [(t.kind, t.due_at - T0, t.level) for t in timers] == [
        (TimerKind.REMINDER, timedelta(hours=2), None),
        (TimerKind.REMINDER, timedelta(hours=4), None),
        (TimerKind.ESCALATION, timedelta(hours=6), 1),
        (TimerKind.DEADLINE_RISK, timedelta(hours=6, minutes=24), None),
        (TimerKind.ESCALATION, timedelta(hours=8), 2),
        (TimerKind.SLA, timedelta(hours=8), None),
    ]
    assert timers[-1].payload == {"action": "expire"}
    assert timers[2].payload["targets"]["groups"] == ["g"]
    assert timers[2].payload["priority"] == 2


def test_no_sla_means_no_deadline_timers():
    timers = plan_timers(make_step(sla=None, escalation=[], reminders=["PT1H"]), T0, WALL_CLOCK)
    assert [t.kind for t in timers] == [TimerKind.REMINDER]


def test_timers_follow_the_business_calendar():
    cal = BusinessCalendar("UTC")
    friday = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)
    timers = plan_timers(make_step(), friday, cal)
    sla = next(t for t in timers if t.kind is TimerKind.SLA)
    assert sla.due_at == datetime(2026, 3, 16, 15, 0, tzinfo=UTC)


def test_escalation_plan_round_trips_through_json():
    plan = EscalationPlan.from_step(make_step())
    again = EscalationPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert again.timers(T0, WALL_CLOCK) == plan_timers(make_step(), T0, WALL_CLOCK)


def test_escalation_plan_from_bad_dict():

    with pytest.raises(DomainError):
        EscalationPlan.from_dict({"levels": []})
    with pytest.raises(DomainError):
        EscalationPlan.from_dict({"step_key": "s", "sla": "soon"})


def test_next_priority():
    raise_ = EscalationLevel(timedelta(hours=1), EscalationActionKind.RAISE_PRIORITY)
    notify = EscalationLevel(timedelta(hours=1), EscalationActionKind.NOTIFY)
    fixed = EscalationLevel(timedelta(hours=1), EscalationActionKind.NOTIFY, priority=3)
    assert next_priority(1, raise_) == 2
    assert next_priority(1, notify) == 1
    assert next_priority(1, fixed) == 3
    assert next_priority(5, fixed) == 5  # never lowers
