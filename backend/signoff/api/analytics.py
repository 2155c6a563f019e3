"""Approval analytics over GraphQL: one question about a period (read_analytics)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError
from signoff.domain import analytics as model
from signoff.domain.errors import DomainError
from signoff.domain.states import ItemState
from signoff.services import analytics as analytics_services


@strawberry.input(description="What to measure: a period of the caller's tenant.")
class ApprovalAnalyticsInput:
    from_: datetime = strawberry.field(
        name="from", description="Start of the period (inclusive, with a time zone offset)."
    )
    to: datetime = strawberry.field(
        description="End of the period (exclusive); at most 366 days after `from`."
    )
    template_key: str | None = strawberry.field(
        default=None, description="Only items of this template (every version); none: all."
    )
    stuck_after_seconds: int = strawberry.field(
        default=int(model.DEFAULT_STUCK_AFTER.total_seconds()),
        description="An item in review unchanged for longer is stuck (60 to 31536000).",
    )
    top_reasons: int = strawberry.field(
        default=5, description=f"Rejection reasons to list (0 to {model.MAX_TOP_REASONS})."
    )
    reviewers: int = strawberry.field(
        default=20, description=f"Reviewers to list, busiest first (0 to {model.MAX_REVIEWERS})."
    )
    stuck_items: int = strawberry.field(
        default=10, description=f"Stuck items to list, oldest first (0 to {model.MAX_STUCK_ITEMS})."
    )


@strawberry.type(description="How long something took, in seconds.")
class DurationPercentiles:
    count: int = strawberry.field(description="How many durations were measured.")
    p50_seconds: float | None = strawberry.field(
        description="Median (linear interpolation); null when nothing was measured."
    )
    p90_seconds: float | None = strawberry.field(
        description="90th percentile (linear interpolation); null when nothing was measured."
    )


@strawberry.type(description="Step outcomes in the period, and each one's share of all three.")
class StepOutcomeRates:
    approvals: int = strawberry.field(description="Steps approved.")
    rejections: int = strawberry.field(description="Steps rejected.")
    change_requests: int = strawberry.field(description="Steps sent back for changes.")
    approval_rate: float | None = strawberry.field(
        description="approvals / (approvals + rejections + changeRequests); null when none."
    )
    rejection_rate: float | None = strawberry.field(
        description="rejections / (approvals + rejections + changeRequests); null when none."
    )
    change_request_rate: float | None = strawberry.field(
        description="changeRequests / (approvals + rejections + changeRequests); null when none."
    )


@strawberry.type(description="A reason steps were rejected with, and how often.")
class RejectionReason:
    reason: str | None = strawberry.field(description="The reason as written; null: none given.")
    count: int = strawberry.field(description="Rejections with it in the period.")


@strawberry.type(description="Step deadlines that fell in the period and have passed.")
class SlaBreaches:
    due: int = strawberry.field(description="Steps whose SLA deadline fell in the period.")
    breached: int = strawberry.field(
        description="Of those, the steps not decided by their deadline (open, or decided later)."
    )
    breach_rate: float | None = strawberry.field(description="breached / due; null when none.")


@strawberry.type(description="Escalations at one rung of an escalation chain.")
class EscalationLevelCount:
    level: int | None = strawberry.field(
        description="The rung (1 = first); null: not a rung (the SLA's timeout action, or a "
        "quorum nobody can fill)."
    )
    count: int = strawberry.field(description="Escalations in the period.")


@strawberry.type(description="One reviewer's load.")
class ReviewerLoad:
    user_id: str = strawberry.field(description="The reviewer.")
    open_steps: int = strawberry.field(
        description="Active steps naming them now, as a user or a delegate (not through a "
        "group or role)."
    )
    decisions: int = strawberry.field(description="Their decisions (votes) in the period.")
    median_response_seconds: float | None = strawberry.field(
        description="Median time from the step's latest activation to their decision."
    )


@strawberry.type(description="An item in review that has not changed for a while.")
class StuckItem:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    title: str = strawberry.field(description="Item title.")
    item_state: ItemState = strawberry.field(description="`PENDING` or `CHANGES_REQUESTED`.")
    template_key: str = strawberry.field(description="Its template.")
    last_change_at: datetime = strawberry.field(description="When it last changed.")


@strawberry.type(description="Items in review unchanged for longer than the threshold (now).")
class StuckItems:
    count: int = strawberry.field(description="How many there are.")
    stuck_after_seconds: int = strawberry.field(description="The threshold asked for.")
    oldest: list[StuckItem] = strawberry.field(
        description="The longest unchanged first (as many as asked for).",
        metadata={"max_items": model.MAX_STUCK_ITEMS},
    )


@strawberry.type(
    description="Decision fatigue (seed 003: steps requiring decisions / total steps) over the "
    "items submitted in the period."
)
class DecisionFatigue:
    items: int = strawberry.field(description="Items submitted in the period.")
    steps: int = strawberry.field(description="Their steps.")
    decision_steps: int = strawberry.field(
        description="Their steps on which a person decided (not only the system)."
    )
    human_decisions: int = strawberry.field(description="People's decisions on their steps.")
    score: float | None = strawberry.field(description="decisionSteps / steps; null when none.")
    decisions_per_item: float | None = strawberry.field(
        description="humanDecisions / items; null when none."
    )


@strawberry.type(description="Approval analytics of one period (docs/operations/analytics.md).")
class ApprovalAnalytics:
    from_: datetime = strawberry.field(name="from", description="Start of the period.")
    to: datetime = strawberry.field(description="End of the period (exclusive).")
    template_key: str | None = strawberry.field(description="The template measured; null: all.")
    computed_at: datetime = strawberry.field(description="When it was computed (stuck items).")
    submitted: int = strawberry.field(description="Items submitted in the period.")
    time_to_decision: DurationPercentiles = strawberry.field(
        description="From an item's submission to its approval or rejection, for the items "
        "decided in the period."
    )
    outcomes: StepOutcomeRates = strawberry.field(description="Step outcomes in the period.")
    top_rejection_reasons: list[RejectionReason] = strawberry.field(
        description="The most frequent rejection reasons, most frequent first.",
        metadata={"max_items": model.MAX_TOP_REASONS},
    )
    sla: SlaBreaches = strawberry.field(description="SLA deadlines met and missed.")
    escalations_by_level: list[EscalationLevelCount] = strawberry.field(
        description="Escalations in the period per rung.", metadata={"max_items": 50}
    )
    reviewers: list[ReviewerLoad] = strawberry.field(
        description="Reviewers by load, busiest first.",
        metadata={"max_items": model.MAX_REVIEWERS},
    )
    stuck: StuckItems = strawberry.field(description="Stuck items, as of now.")
    decision_fatigue: DecisionFatigue = strawberry.field(description="Decision fatigue.")

    @classmethod
    def from_model(cls, a: model.ApprovalAnalytics) -> ApprovalAnalytics:
        """The GraphQL view of an answer."""
        q, o, f = a.question, a.outcomes, a.fatigue
        return cls(
            from_=q.start,
            to=q.end,
            template_key=q.template_key,
            computed_at=a.computed_at,
            submitted=a.submitted,
            time_to_decision=DurationPercentiles(
                count=a.time_to_decision.count,
                p50_seconds=a.time_to_decision.p50_seconds,
                p90_seconds=a.time_to_decision.p90_seconds,
            ),
            outcomes=StepOutcomeRates(
                approvals=o.approvals,
                rejections=o.rejections,
                change_requests=o.change_requests,
                approval_rate=model.rate(o.approvals, o.total),
                rejection_rate=model.rate(o.rejections, o.total),
                change_request_rate=model.rate(o.change_requests, o.total),
            ),
            top_rejection_reasons=[
                RejectionReason(reason=r.reason, count=r.count) for r in a.top_rejection_reasons
            ],
            sla=SlaBreaches(
                due=a.sla.due,
                breached=a.sla.breached,
                breach_rate=model.rate(a.sla.breached, a.sla.due),
            ),
            escalations_by_level=[
                EscalationLevelCount(level=e.level, count=e.count) for e in a.escalations
            ],
            reviewers=[
                ReviewerLoad(
                    user_id=r.user_id,
                    open_steps=r.open_steps,
                    decisions=r.decisions,
                    median_response_seconds=r.median_response_seconds,
                )
                for r in a.reviewers
            ],
            stuck=StuckItems(
                count=a.stuck_count,
                stuck_after_seconds=int(q.stuck_after.total_seconds()),
                oldest=[
                    StuckItem(
                        item_id=strawberry.ID(ids.encode("WorkflowItem", s.item_id)),
                        title=s.title,
                        item_state=ItemState(s.state),
                        template_key=s.template_key,
                        last_change_at=s.last_change_at,
                    )
                    for s in a.stuck
                ],
            ),
            decision_fatigue=DecisionFatigue(
                items=f.items,
                steps=f.steps,
                decision_steps=f.decision_steps,
                human_decisions=f.human_decisions,
                score=f.score,
                decisions_per_item=f.decisions_per_item,
            ),
        )


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(
        description="Approval analytics of a period of the caller's tenant: time to decision, "
        "outcome rates, rejection reasons, SLA breaches, escalations, reviewer load, stuck "
        "items and decision fatigue. Needs read_analytics; INVALID_INPUT past the input's bounds."
    )
    async def approval_analytics(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ApprovalAnalyticsInput, strawberry.argument(description="The period and options.")
        ],
    ) -> ApprovalAnalytics:
        actor = actor_of(info)
        question = model.AnalyticsQuestion(
            start=input.from_,
            end=input.to,
            template_key=input.template_key,
            stuck_after=timedelta(seconds=max(0, min(input.stuck_after_seconds, 10**9))),
            top_reasons=input.top_reasons,
            reviewers=input.reviewers,
            stuck_items=input.stuck_items,
        )
        try:
            answer = await analytics_services.approval_analytics(actor, services_of(info), question)
        except DomainError as exc:
            raise CodedError(exc) from None
        return ApprovalAnalytics.from_model(answer)
