"""Histories for the analytics tests, made through the real services with a clock the test
moves: submissions, votes, resubmissions and timers firing, exactly as in production."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from uuid import UUID

from signoff.domain.clock import ManualClock
from signoff.services import actions
from signoff.services import items as item_services
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.templates import save_template
from signoff.settings import Settings
from tests.conftest import actor

ADMIN = ("root", "admin")
REQUESTER = "rita"

FLOW = {
    "key": "flow",
    "name": "Reviewed flow",
    "kind": "approval",
    "max_revisions": 5,
    "steps": [
        {
            "key": "review",
            "assignees": {"users": ["ann"]},
            "sla": "PT4H",
            "escalation": [
                {"after": "PT2H", "action": "add_assignees", "targets": {"users": ["ben"]}}
            ],
            "timeout_action": "escalate",
        }
    ],
}

OTHER = {
    "key": "other",
    "name": "Other flow",
    "kind": "approval",
    "steps": [{"key": "check", "assignees": {"users": ["ann"]}}],
}


class History:
    """One tenant's people acting on its items while the test moves the clock."""

    def __init__(self, tenant: str, settings: Settings, clock: ManualClock) -> None:
        self.tenant = tenant
        self.clock = clock
        # timers fire only for this test's tenant (tests share one database and one instant)
        self.ctx = ServiceContext(
            settings=dataclasses.replace(settings, timer_tenants=(tenant,)), clock=clock
        )

    async def templates(self, *documents: dict[str, Any]) -> None:
        for document in documents or (FLOW, OTHER):
            await save_template(actor(self.tenant, *ADMIN), self.ctx, document, publish=True)

    async def submit(self, template: str = "flow", title: str = "Change") -> ItemView:
        return await item_services.submit_item(
            actor(self.tenant, REQUESTER),
            self.ctx,
            item_services.SubmitItemInput(template_key=template, title=title),
        )

    async def vote(
        self, view: ItemView, user: str, outcome: str, reason: str | None = None, step: str = ""
    ) -> ItemView:
        target = view.step_by_key(step) if step else view.steps[0]
        return await item_services.decide_step(
            actor(self.tenant, user),
            self.ctx,
            item_services.DecideStepInput(target.id, item_services.Outcome(outcome), reason),
        )

    async def resubmit(self, item_id: UUID) -> ItemView:
        return await actions.resubmit_item(
            actor(self.tenant, REQUESTER), self.ctx, actions.ResubmitInput(item_id)
        )

    async def at(self, offset: timedelta, start: Any) -> None:
        """Move the clock to `start + offset` and fire whatever timers are due by then."""
        target = start + offset
        if target > self.clock.now():
            self.clock.advance(target - self.clock.now())
        await timer_services.fire_due(self.ctx)
