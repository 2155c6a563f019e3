"""Approval analytics: what an operator asks of a period, and the figures that answer it.

The figures are computed in SQL over the audit trail (`db/analytics.py`); this module holds
what does not need the database: the bounds of a question (INVALID_INPUT past them), the
action names each figure counts, and the shape of the answer. Every definition is written
out in docs/operations/analytics.md; a property test recomputes them in plain Python from the
stored rows and compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from signoff.domain.errors import DomainError, ErrorCode, Problem

MAX_PERIOD = timedelta(days=366)
"""The longest period one question may span (its cost grows with the events inside)."""

MIN_STUCK_AFTER = timedelta(minutes=1)
MAX_STUCK_AFTER = timedelta(days=365)
DEFAULT_STUCK_AFTER = timedelta(hours=24)
MAX_TOP_REASONS = 20
MAX_REVIEWERS = 200
MAX_STUCK_ITEMS = 100
MAX_TEMPLATE_KEY = 200

SUBMITTED = "item.submitted"
ITEM_DECISIONS = ("item.approve", "item.reject")
"""An item's review ends (once per item: neither state leads back to pending)."""
STEP_APPROVE, STEP_REJECT, STEP_CHANGES = "step.approve", "step.reject", "step.request_changes"
STEP_OUTCOMES = (STEP_APPROVE, STEP_REJECT, STEP_CHANGES)
ESCALATION = "step.escalate"
ACTIVATIONS = ("step.activate", "step.resubmit", "step.reopen")
"""Moves that make a step active: a reviewer's response time runs from the latest of them."""
OPEN_ITEM_STATES = ("pending", "changes_requested")
"""Items still in review: the ones that can be stuck."""
COUNTED_ACTIONS = (SUBMITTED, *ITEM_DECISIONS, *STEP_OUTCOMES, ESCALATION)
"""Every action the period's counts read: the partial index covers exactly these."""


@dataclass(frozen=True)
class AnalyticsQuestion:
    """One question: a tenant's period [start, end), optionally one template (by key)."""

    start: datetime
    end: datetime
    template_key: str | None = None
    stuck_after: timedelta = DEFAULT_STUCK_AFTER
    top_reasons: int = 5
    reviewers: int = 20
    stuck_items: int = 10


def check_question(question: AnalyticsQuestion) -> AnalyticsQuestion:
    """The question, or INVALID_INPUT listing every bound it breaks: a period of positive
    length up to `MAX_PERIOD` with time zones, the list sizes within their limits."""
    problems: list[Problem] = []
    if question.start.tzinfo is None or question.end.tzinfo is None:
        problems.append(Problem("from and to need a time zone offset", "from"))
    elif question.end <= question.start:
        problems.append(Problem("to must be after from", "to"))
    elif question.end - question.start > MAX_PERIOD:
        problems.append(Problem(f"the period spans at most {MAX_PERIOD.days} days", "to"))
    key = question.template_key
    if key is not None and not (0 < len(key) <= MAX_TEMPLATE_KEY):
        problems.append(
            Problem(f"templateKey is 1 to {MAX_TEMPLATE_KEY} characters", "templateKey")
        )
    if not MIN_STUCK_AFTER <= question.stuck_after <= MAX_STUCK_AFTER:
        problems.append(
            Problem("stuckAfterSeconds is between 60 and 31536000", "stuckAfterSeconds")
        )
    for value, limit, path in (
        (question.top_reasons, MAX_TOP_REASONS, "topReasons"),
        (question.reviewers, MAX_REVIEWERS, "reviewers"),
        (question.stuck_items, MAX_STUCK_ITEMS, "stuckItems"),
    ):
        if not 0 <= value <= limit:
            problems.append(Problem(f"{path} is between 0 and {limit}", path))
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "invalid analytics question: " + problems[0].message,
            problems[0].path,
            problems=problems,
        )
    return question


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, or None when nothing was counted (a rate of nothing is unknown)."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Percentiles:
    """How long something took, in seconds: the median and the 90th percentile (linear
    interpolation between the closest ranks, as PostgreSQL's `percentile_cont`)."""

    count: int
    p50_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class StepOutcomes:
    """Steps approved, rejected and sent back for changes in the period."""

    approvals: int
    rejections: int
    change_requests: int

    @property
    def total(self) -> int:
        """Every outcome counted."""
        return self.approvals + self.rejections + self.change_requests


@dataclass(frozen=True)
class ReasonCount:
    """A rejection reason (as written; None: none given) and how often steps were rejected
    with it."""

    reason: str | None
    count: int


@dataclass(frozen=True)
class SlaFigures:
    """Step deadlines that fell in the period (and have passed), and how many were missed."""

    due: int
    breached: int


@dataclass(frozen=True)
class LevelCount:
    """Escalations at one rung of a chain (None: not a rung, e.g. the SLA's timeout action
    or a quorum nobody can fill)."""

    level: int | None
    count: int


@dataclass(frozen=True)
class ReviewerLoad:
    """One person's load: active steps naming them now, their decisions in the period and
    the median time from a step's activation to their decision on it."""

    user_id: str
    open_steps: int
    decisions: int
    median_response_seconds: float | None


@dataclass(frozen=True)
class StuckItem:
    """An item in review that has not changed for longer than the question's threshold."""

    item_id: str
    title: str
    state: str
    template_key: str
    last_change_at: datetime


@dataclass(frozen=True)
class DecisionFatigue:
    """The seed's decision fatigue signal over the items submitted in the period: how many of
    their steps needed a person's decision, out of all their steps."""

    items: int
    steps: int
    decision_steps: int
    human_decisions: int

    @property
    def score(self) -> float | None:
        """Steps that needed a person's decision / all steps."""
        return rate(self.decision_steps, self.steps)

    @property
    def decisions_per_item(self) -> float | None:
        """People's decisions per item submitted."""
        return rate(self.human_decisions, self.items)


@dataclass(frozen=True)
class ApprovalAnalytics:
    """The answer to one question."""

    question: AnalyticsQuestion
    computed_at: datetime
    submitted: int
    time_to_decision: Percentiles
    outcomes: StepOutcomes
    top_rejection_reasons: tuple[ReasonCount, ...]
    sla: SlaFigures
    escalations: tuple[LevelCount, ...]
    reviewers: tuple[ReviewerLoad, ...]
    stuck_count: int
    stuck: tuple[StuckItem, ...]
    fatigue: DecisionFatigue
