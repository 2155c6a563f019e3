"""The maintained aggregates under concurrent decisions: votes on one item (its tally recounted
by every vote's transaction) and outcomes of many items of one template on one day (one
`analytics_day` row added to by each), each call its own transaction on the pool, really at
once. Whatever commits, and in whatever order, the aggregates equal their recomputation and
the figures equal what was done."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from signoff.domain.analytics import AnalyticsQuestion
from signoff.domain.clock import ManualClock
from signoff.services import analytics
from signoff.settings import Settings
from tests.analytics.aggregates import assert_maintained
from tests.analytics.history import History
from tests.analytics.test_analytics_properties import T0
from tests.conftest import actor
from tests.services.test_concurrency import outcome_of

VOTERS = [f"voter{i}" for i in range(6)]
PANEL = {
    "key": "panel",
    "name": "Panel",
    "kind": "approval",
    "steps": [{"key": "vote", "assignees": {"users": VOTERS}, "quorum": {"mode": "all"}}],
}
SOLO = {
    "key": "solo",
    "name": "Solo",
    "kind": "approval",
    "steps": [{"key": "check", "assignees": {"users": ["ann"]}}],
}


async def test_concurrent_votes_and_outcomes_keep_the_aggregates_exact(
    settings: Settings,
) -> None:
    tenant = f"c{uuid.uuid4().hex[:12]}"
    h = History(tenant, settings, ManualClock(T0))
    await h.templates(PANEL, SOLO)
    panel = await h.submit("panel")
    solos = [await h.submit("solo") for _ in range(6)]
    results = await asyncio.gather(
        *(outcome_of(h.vote(panel, voter, "approve")) for voter in VOTERS),
        *(
            outcome_of(h.vote(view, "ann", "reject" if n % 2 else "approve", "no ticket"))
            for n, view in enumerate(solos)
        ),
    )
    # every vote on the panel is a different person's, every solo item a different item:
    # none conflicts with another, so all are recorded (a serialization retry may refuse
    # none of them)
    assert results == ["ok"] * (len(VOTERS) + len(solos))
    await assert_maintained(tenant)
    a = await analytics.approval_analytics(
        actor(tenant, "boss", "admin"),
        h.ctx,
        AnalyticsQuestion(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1)),
    )
    assert a.fatigue.human_decisions == len(VOTERS) + len(solos)
    assert a.fatigue.decision_steps == 1 + len(solos)
    assert (a.outcomes.approvals, a.outcomes.rejections) == (1 + 3, 3)
    assert [(r.reason, r.count) for r in a.top_rejection_reasons] == [("no ticket", 3)]
