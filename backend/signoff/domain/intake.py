"""A new item and its steps, as records: what a submission stores before the progression runs.

The service stores exactly these records and the simulator starts from exactly these, so a dry
run begins where a real item begins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from signoff.domain.records import Item, Step, StepAssignees
from signoff.domain.states import ItemState, StepState
from signoff.domain.template_model import RiskLevel, TemplateDefinition


def new_item(
    defn: TemplateDefinition,
    *,
    tenant_id: str,
    template_id: UUID,
    requester_id: str,
    title: str,
    payload: Mapping[str, Any],
    now: datetime,
    plan: Mapping[str, Any] | None = None,
    environment: str = "production",
    priority: int = 0,
    external_ref: str | None = None,
    item_id: UUID | None = None,
) -> Item:
    """A pending item of `defn`; its risk is the highest (assessed) risk of its steps."""
    return Item(
        id=item_id or uuid4(),
        tenant_id=tenant_id,
        environment=environment,
        template_id=template_id,
        kind=defn.kind,
        title=title,
        state=ItemState.PENDING,
        priority=priority,
        risk=max((s.risk for s in defn.steps), key=lambda r: r.rank, default=RiskLevel.LOW),
        requester_id=requester_id,
        payload=dict(payload),
        plan=dict(plan) if plan is not None else None,
        external_ref=external_ref,
        revision=1,
        version=1,
        due_at=None,
        created_at=now,
        updated_at=now,
    )


def new_steps(item: Item, defn: TemplateDefinition) -> tuple[Step, ...]:
    """The waiting steps of `item`, in template order, named by the template until each
    activates (when its seats are fixed)."""
    return tuple(
        Step(
            id=uuid4(),
            tenant_id=item.tenant_id,
            item_id=item.id,
            key=s.key,
            name=s.name,
            kind=s.kind,
            position=i,
            state=StepState.WAITING,
            assignees=StepAssignees.of(s.assignees),
            quorum=s.quorum,
            risk=s.risk,
            sensitive=s.sensitive,
            action=s.action,
            params=dict(s.params),
            original_params=None,
            claimed_by=None,
            decision_value=None,
            result=None,
            error=None,
            attempts=0,
            escalation_level=0,
            escalation_plan=None,
            activated_at=None,
            due_at=None,
            decided_at=None,
            version=1,
            created_at=item.created_at,
            updated_at=item.created_at,
            needed=s.needed,
            declared_risk=s.declared_risk,
        )
        for i, s in enumerate(defn.steps)
    )
