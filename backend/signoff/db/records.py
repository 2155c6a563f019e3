"""The one place where database rows become typed records (`signoff.domain.records`).

Every query of `db/` that returns items, steps, decisions, timers or template versions passes
its rows through these functions; nothing else reads their columns by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from signoff.domain.calendar import BusinessCalendar
from signoff.domain.records import (
    Decision,
    DecisionOutcome,
    Hold,
    Item,
    OverdueStep,
    Seat,
    Step,
    StepAssignees,
    TemplateStatus,
    TemplateVersion,
    Timer,
    TimerStatus,
)
from signoff.domain.states import ItemState, StepState
from signoff.domain.template_model import Quorum, QuorumMode, RiskLevel, StepKind, TemplateKind
from signoff.domain.timers import EscalationPlan, TimerKind

ITEM_JSON = ("payload", "plan")
STEP_JSON = (
    "assignees",
    "quorum",
    "params",
    "original_params",
    "result",
    "escalation_plan",
    "seats",
    "hold",
)
TIMER_JSON = ("payload",)
TEMPLATE_JSON = ("definition",)


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text unless a codec is set; accept both
    return json.loads(value) if isinstance(value, str) else value


def _escalation_plan(value: Any) -> EscalationPlan | None:
    if isinstance(value, str):
        return _escalation_plan_of_text(value)
    return EscalationPlan.from_dict(value) if value else None


# A step's escalation plan is frozen when it activates: every step of a template version
# carries one of a few identical texts, so a page of steps parses each once. The plan is an
# immutable value, safe to share.
@lru_cache(maxsize=1024)
def _escalation_plan_of_text(text: str) -> EscalationPlan | None:
    plan = json.loads(text)
    return EscalationPlan.from_dict(plan) if plan else None


def item_of(row: Mapping[str, Any]) -> Item:
    """An item record from a `workflow_item` row (extra columns are ignored)."""
    plan = _json(row["plan"])
    return Item(
        id=row["id"],
        tenant_id=row["tenant_id"],
        environment=row["environment"],
        template_id=row["template_id"],
        kind=TemplateKind(row["kind"]),
        title=row["title"],
        state=ItemState(row["state"]),
        priority=row["priority"],
        risk=RiskLevel(row["risk"]),
        requester_id=row["requester_id"],
        payload=_json(row["payload"]) or {},
        plan=plan,
        external_ref=row["external_ref"],
        revision=row["revision"],
        version=row["version"],
        due_at=row["due_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def step_of(row: Mapping[str, Any]) -> Step:
    """A step record from a `step` row."""
    quorum = _json(row["quorum"]) or {}
    hold = _json(row["hold"])
    return Step(
        id=row["id"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        key=row["key"],
        name=row["name"],
        kind=StepKind(row["kind"]),
        position=row["position"],
        state=StepState(row["state"]),
        assignees=StepAssignees.from_dict(_json(row["assignees"]) or {}),
        quorum=Quorum(QuorumMode(quorum.get("mode", "any")), quorum.get("n")),
        risk=RiskLevel(row["risk"]),
        sensitive=row["sensitive"],
        action=row["action"],
        params=_json(row["params"]) or {},
        original_params=_json(row["original_params"]),
        claimed_by=row["claimed_by"],
        decision_value=row["decision_value"],
        result=_json(row["result"]),
        error=row["error"],
        attempts=row["attempts"],
        escalation_level=row["escalation_level"],
        escalation_plan=_escalation_plan(row["escalation_plan"]),
        activated_at=row["activated_at"],
        due_at=row["due_at"],
        decided_at=row["decided_at"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        seats=tuple(Seat.from_dict(s) for s in _json(row["seats"]) or ()),
        needed=row["needed"],
        declared_risk=RiskLevel(row["declared_risk"]) if row["declared_risk"] else None,
        waived=tuple(row["waived"] or ()),
        hold=Hold.from_dict(hold) if hold else None,
    )


def decision_of(row: Mapping[str, Any]) -> Decision:
    """A decision record from a `decision` row."""
    return Decision(
        id=row["id"],
        seq=row["seq"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        step_id=row["step_id"],
        revision=row["revision"],
        actor_id=row["actor_id"],
        acting_for=row["acting_for"],
        outcome=DecisionOutcome(row["outcome"]),
        reason=row["reason"],
        rule=row["rule"],
        created_at=row["created_at"],
        seat=row["seat"],
    )


def timer_of(row: Mapping[str, Any]) -> Timer:
    """A timer record from a `timer` row."""
    return Timer(
        id=row["id"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        step_id=row["step_id"],
        kind=TimerKind(row["kind"]),
        level=row["level"],
        due_at=row["due_at"],
        token=row["token"],
        status=TimerStatus(row["status"]),
        payload=_json(row["payload"]) or {},
        fired_at=row["fired_at"],
        created_at=row["created_at"],
    )


def template_of(row: Mapping[str, Any]) -> TemplateVersion:
    """A template version record from a `template` row."""
    return TemplateVersion(
        id=row["id"],
        tenant_id=row["tenant_id"],
        key=row["key"],
        version=row["version"],
        name=row["name"],
        kind=TemplateKind(row["kind"]),
        status=TemplateStatus(row["status"]),
        definition=_json(row["definition"]) or {},
        created_by=row["created_by"],
        created_at=row["created_at"],
        published_at=row["published_at"],
    )


def overdue_step_of(row: Mapping[str, Any]) -> OverdueStep:
    """An overdue-step record from the overdue query's row."""
    return OverdueStep(
        step_id=row["step_id"],
        item_id=row["item_id"],
        key=row["key"],
        title=row["title"],
        due_at=row["due_at"],
        next_timer_at=row["next_timer_at"],
        stuck_timers=int(row["stuck_timers"]),
    )


def calendar_of(row: Mapping[str, Any], prefix: str = "") -> BusinessCalendar:
    """A tenant's business calendar from its `business_calendar` row (columns named with
    `prefix` when joined to another table)."""
    return BusinessCalendar(
        timezone=row[prefix + "timezone"],
        workdays=frozenset(row[prefix + "workdays"]),
        start=row[prefix + "day_start"],
        end=row[prefix + "day_end"],
        holidays=frozenset(row[prefix + "holidays"] or ()),
    )
