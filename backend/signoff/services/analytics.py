"""Approval analytics: one question about a period of the caller's tenant, answered from one
snapshot of the audit trail and the current state (read_analytics)."""

from __future__ import annotations

from signoff.db import analytics as repo
from signoff.db import feed
from signoff.domain.actors import Actor
from signoff.domain.analytics import (
    STEP_APPROVE,
    STEP_CHANGES,
    STEP_REJECT,
    SUBMITTED,
    AnalyticsQuestion,
    ApprovalAnalytics,
    StepOutcomes,
    check_question,
)
from signoff.domain.permissions import Permission
from signoff.services import permissions, scopes
from signoff.services.context import ServiceContext


async def require_analytics_reader(actor: Actor, ctx: ServiceContext) -> None:
    """Refuse (FORBIDDEN) anyone without `read_analytics` (by default auditors and admins)."""
    await permissions.require(actor, ctx, Permission.READ_ANALYTICS, "reading approval analytics")


async def approval_analytics(
    actor: Actor, ctx: ServiceContext, question: AnalyticsQuestion
) -> ApprovalAnalytics:
    """Answer `question` for the actor's tenant (INVALID_INPUT past its bounds). Every figure
    is read from one snapshot, so they agree with each other."""
    await require_analytics_reader(actor, ctx)
    q = check_question(question)
    tenant = actor.tenant_id
    now = ctx.clock.now()
    with scopes.acting_as(actor):
        async with feed.snapshot_read(tenant):
            templates = None
            if q.template_key is not None:
                templates = await repo.template_versions(tenant, q.template_key)
            counts = await repo.action_counts(tenant, q.start, q.end, templates)
            decision_times = await repo.time_to_decision(tenant, q.start, q.end, templates)
            reasons = await repo.rejection_reasons(tenant, q.start, q.end, templates, q.top_reasons)
            sla = await repo.sla_figures(tenant, q.start, q.end, now, templates)
            levels = await repo.escalation_levels(tenant, q.start, q.end, templates)
            reviewers = await repo.reviewer_load(tenant, q.start, q.end, templates, q.reviewers)
            stuck_count, stuck = await repo.stuck_items(
                tenant, now - q.stuck_after, templates, q.stuck_items
            )
            fatigue = await repo.decision_fatigue(tenant, q.start, q.end, templates)
    return ApprovalAnalytics(
        question=q,
        computed_at=now,
        submitted=counts.get(SUBMITTED, 0),
        time_to_decision=decision_times,
        outcomes=StepOutcomes(
            approvals=counts.get(STEP_APPROVE, 0),
            rejections=counts.get(STEP_REJECT, 0),
            change_requests=counts.get(STEP_CHANGES, 0),
        ),
        top_rejection_reasons=tuple(reasons),
        sla=sla,
        escalations=tuple(levels),
        reviewers=tuple(reviewers),
        stuck_count=stuck_count,
        stuck=tuple(stuck),
        fatigue=fatigue,
    )
