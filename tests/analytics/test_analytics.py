"""Approval analytics: exact figures of a hand-built history (the clock moved by the test),
period boundaries, the template filter, tenant isolation in the database, permissions and
bounded input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff.db import analytics as repo
from signoff.db import feed
from signoff.domain.analytics import AnalyticsQuestion
from signoff.domain.clock import ManualClock
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import analytics, scopes
from signoff.settings import Settings
from tests.analytics.history import History
from tests.conftest import actor

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


async def build(tenant: str, settings: Settings, clock: ManualClock) -> History:
    """The hand-built history, all of template `flow` (review by ann, SLA 4 h, ben added at
    2 h, the override roles at the SLA) but one `other` item:

    - i1 submitted T0, approved by ann at 1 h (time to decision 1 h)
    - i2 submitted 1 h, rejected by ann at 1.5 h "too risky" (0.5 h)
    - i3 submitted 1.5 h, changes requested at 2 h, resubmitted 2.5 h, rejected at 3 h
      "too risky" (1.5 h)
    - i4 submitted 3 h, never decided: escalated at 5 h (level 1) and at its SLA, 7 h
      (timeout action, no level)
    - o1 (template `other`) submitted 3 h, approved by ann at 3.5 h
    """
    h = History(tenant, settings, clock)
    await h.templates()
    i1 = await h.submit()
    await h.at(1 * H, T0)
    await h.vote(i1, "ann", "approve")
    i2 = await h.submit()
    await h.at(1.5 * H, T0)
    await h.vote(i2, "ann", "reject", "too risky")
    i3 = await h.submit()
    await h.at(2 * H, T0)
    await h.vote(i3, "ann", "request_changes", "add a rollback plan")
    await h.at(2.5 * H, T0)
    i3 = await h.resubmit(i3.item.id)
    await h.at(3 * H, T0)
    await h.vote(i3, "ann", "reject", "too risky")
    await h.submit()
    o1 = await h.submit("other")
    await h.at(3.5 * H, T0)
    await h.vote(o1, "ann", "approve")
    await h.at(5 * H, T0)
    await h.at(7 * H, T0)
    await h.at(2 * DAY + 8 * H, T0)
    return h


async def ask(tenant: str, h: History, **changes: Any) -> Any:
    question = AnalyticsQuestion(start=T0, end=T0 + DAY, template_key="flow")
    question = AnalyticsQuestion(**{**question.__dict__, **changes})
    return await analytics.approval_analytics(actor(tenant, "boss", "admin"), h.ctx, question)


async def test_exact_figures_of_a_hand_built_history(tenant, settings, clock):
    h = await build(tenant, settings, clock)
    a = await ask(tenant, h)

    assert a.submitted == 4
    assert a.time_to_decision.count == 3
    # 0.5 h, 1 h, 1.5 h: the median 1 h; p90 at rank 1.8 = 1 h + 0.8 * 0.5 h
    assert a.time_to_decision.p50_seconds == pytest.approx(3600)
    assert a.time_to_decision.p90_seconds == pytest.approx(5040)
    assert (a.outcomes.approvals, a.outcomes.rejections, a.outcomes.change_requests) == (1, 2, 1)
    assert [(r.reason, r.count) for r in a.top_rejection_reasons] == [("too risky", 2)]
    # deadlines at 4 h, 5 h, 6.5 h (i3's second activation) and 7 h: only i4's is missed
    assert (a.sla.due, a.sla.breached) == (4, 1)
    assert [(e.level, e.count) for e in a.escalations] == [(1, 1), (None, 1)]
    # ann: 4 votes, 1 h, 0.5 h, 0.5 h, 0.5 h after each activation; both name i4's open step
    assert [(r.user_id, r.open_steps, r.decisions) for r in a.reviewers] == [
        ("ann", 1, 4),
        ("ben", 1, 0),
    ]
    assert a.reviewers[0].median_response_seconds == pytest.approx(1800)
    assert a.reviewers[1].median_response_seconds is None
    assert a.stuck_count == 1
    assert [s.state for s in a.stuck] == ["pending"]
    assert a.stuck[0].template_key == "flow"
    f = a.fatigue
    assert (f.items, f.steps, f.decision_steps, f.human_decisions) == (4, 4, 3, 4)
    assert f.score == pytest.approx(0.75)
    assert f.decisions_per_item == pytest.approx(1.0)


async def test_every_template_and_the_period_boundaries(tenant, settings, clock):
    h = await build(tenant, settings, clock)
    every = await ask(tenant, h, template_key=None)
    assert every.submitted == 5
    assert every.outcomes.approvals == 2
    assert every.fatigue.human_decisions == 5
    assert [(r.user_id, r.decisions) for r in every.reviewers][0] == ("ann", 5)
    assert every.stuck_count == 1

    # [1 h, 2 h): the approval at 1 h counts, the request for changes at 2 h does not
    window = await ask(tenant, h, start=T0 + H, end=T0 + 2 * H)
    assert window.submitted == 2
    outcomes = window.outcomes
    assert (outcomes.approvals, outcomes.rejections, outcomes.change_requests) == (1, 1, 0)
    assert window.time_to_decision.count == 2
    assert window.sla.due == 0

    unknown = await ask(tenant, h, template_key="nothing-like-it")
    assert (unknown.submitted, unknown.stuck_count, unknown.reviewers) == (0, 0, ())
    assert unknown.time_to_decision.p50_seconds is None


async def test_stuck_is_measured_from_the_last_change(tenant, settings, clock):
    h = await build(tenant, settings, clock)
    # i4 last changed at its SLA (7 h): stuck after 2 days, not after 3
    assert (await ask(tenant, h, stuck_after=timedelta(days=1))).stuck_count == 1
    assert (await ask(tenant, h, stuck_after=timedelta(days=3))).stuck_count == 0


async def test_another_tenants_events_are_never_counted(settings, clock):
    ours, theirs = f"a{uuid.uuid4().hex[:12]}", f"b{uuid.uuid4().hex[:12]}"
    await build(theirs, settings, clock)
    h = History(ours, settings, clock)
    await h.templates()
    a = await ask(ours, h)
    assert (a.submitted, a.reviewers, a.stuck_count, a.sla.due) == (0, (), 0, 0)
    # the database itself hides them: a statement bound to our tenant asking for theirs
    with scopes.for_tenant(ours):
        async with feed.snapshot_read(ours):
            counts = await repo.action_counts(theirs, T0, T0 + DAY, None)
            reviewers = await repo.reviewer_load(theirs, T0, T0 + DAY, None, 10)
            stuck, _ = await repo.stuck_items(theirs, T0 + 10 * DAY, None, 10)
    assert (counts, reviewers, stuck) == ({}, [], 0)
    with scopes.for_tenant(theirs):
        async with feed.snapshot_read(theirs):
            assert (await repo.action_counts(theirs, T0, T0 + DAY, None))["item.submitted"] == 5


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"end": T0}, "to"),
        ({"end": T0 + timedelta(days=367)}, "to"),
        ({"start": datetime(2026, 1, 5)}, "from"),
        ({"top_reasons": 21}, "topReasons"),
        ({"reviewers": -1}, "reviewers"),
        ({"stuck_items": 101}, "stuckItems"),
        ({"stuck_after": timedelta(seconds=59)}, "stuckAfterSeconds"),
        ({"template_key": ""}, "templateKey"),
    ],
)
async def test_questions_past_their_bounds_are_invalid_input(tenant, services, changes, field):
    question = AnalyticsQuestion(start=T0, end=T0 + DAY)
    question = AnalyticsQuestion(**{**question.__dict__, **changes})
    with pytest.raises(DomainError) as refused:
        await analytics.approval_analytics(actor(tenant, "boss", "admin"), services, question)
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert refused.value.field == field


QUERY = """query($input: ApprovalAnalyticsInput!) { approvalAnalytics(input: $input) {
  from to templateKey submitted
  timeToDecision { count p50Seconds p90Seconds }
  outcomes { approvals rejections changeRequests approvalRate rejectionRate changeRequestRate }
  topRejectionReasons { reason count }
  sla { due breached breachRate }
  escalationsByLevel { level count }
  reviewers { userId openSteps decisions medianResponseSeconds }
  stuck { count stuckAfterSeconds oldest { itemId title itemState templateKey lastChangeAt } }
  decisionFatigue { items steps decisionSteps humanDecisions score decisionsPerItem }
} }"""


def period(**extra: Any) -> dict[str, Any]:
    return {"input": {"from": T0.isoformat(), "to": (T0 + DAY).isoformat(), **extra}}


async def test_the_graphql_query_for_admins_and_auditors_only(gql, tenant, settings, clock):
    h = await build(tenant, settings, clock)
    for roles in (("admin",), ("auditor",)):
        data = await gql.data(QUERY, period(templateKey="flow"), as_user="boss", roles=roles)
        a = data["approvalAnalytics"]
        assert a["submitted"] == 4
        assert a["outcomes"]["rejectionRate"] == pytest.approx(0.5)
        assert a["sla"]["breachRate"] == pytest.approx(0.25)
        assert a["escalationsByLevel"] == [{"level": 1, "count": 1}, {"level": None, "count": 1}]
        assert a["decisionFatigue"]["score"] == pytest.approx(0.75)
        assert a["stuck"]["oldest"][0]["itemState"] == "PENDING"
    assert h.tenant == tenant
    for roles in ((), ("change-approver",)):
        response = await gql.run(QUERY, period(), token=gql.token("ann", *roles))
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unauthenticated = (await gql.run(QUERY, period())).json()
    assert unauthenticated["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "extra",
    [
        {"to": T0.isoformat()},
        {"to": (T0 + timedelta(days=400)).isoformat()},
        {"topReasons": 1000},
        {"stuckAfterSeconds": -5},
        {"stuckAfterSeconds": 2**31 - 1},
    ],
)
async def test_graphql_refuses_unbounded_questions_as_invalid_input(gql, extra):
    response = await gql.run(QUERY, period(**extra), token=gql.token("boss", "admin"))
    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
