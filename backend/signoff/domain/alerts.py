"""Alert rules as data: what a rule watches, when it fires and when it clears.

A rule measures one figure of the approval analytics (docs/operations/analytics.md) over its
tenant, optionally one template, and compares it with its threshold. It fires once per episode:
the evaluation that first finds the figure past the threshold raises an alert, later ones
leave it be while it stays past, and the first that finds it back within clears the episode
and re-arms the rule. The service (`services/alerts.py`) does this under the rule's row lock,
so evaluators running at once raise one alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from signoff.domain.errors import DomainError, ErrorCode, Problem

MAX_NAME = 200
MAX_RECIPIENTS = 50
MAX_COUNT_THRESHOLD = 1_000_000
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=366)
MAX_RULES_PER_TENANT = 100
MAX_NOTE = 2000


class AlertRuleKind(StrEnum):
    """What a rule watches."""

    STUCK_ITEMS = "stuck_items"
    REJECTION_RATE = "rejection_rate"
    BACKLOG = "backlog"
    BREACH_RATE = "breach_rate"

    @property
    def is_rate(self) -> bool:
        """Whether the figure is a rate (0 to 1) over a window, else a count of items."""
        return self in (AlertRuleKind.REJECTION_RATE, AlertRuleKind.BREACH_RATE)

    @property
    def needs_window(self) -> bool:
        """Whether the rule has a window: the period of a rate, the age of a stuck item."""
        return self is not AlertRuleKind.BACKLOG


class Move(StrEnum):
    """What an evaluation does to a rule."""

    FIRE = "fire"
    CLEAR = "clear"
    STAY = "stay"


@dataclass(frozen=True)
class Recipients:
    """Who an alert notifies: people, groups and roles of the tenant's user directory."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        """The stored (and audited) form."""
        return {"users": list(self.users), "groups": list(self.groups), "roles": list(self.roles)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Recipients:
        """From the stored form."""
        return cls(
            tuple(raw.get("users") or ()),
            tuple(raw.get("groups") or ()),
            tuple(raw.get("roles") or ()),
        )


@dataclass(frozen=True)
class AlertRuleSpec:
    """A rule as an administrator writes it."""

    name: str
    kind: AlertRuleKind
    threshold: float
    window: timedelta | None
    notify: Recipients
    template_key: str | None = None
    min_samples: int = 1
    enabled: bool = True


def check_rule(spec: AlertRuleSpec) -> AlertRuleSpec:
    """The rule with names trimmed and de-duplicated, or INVALID_INPUT listing every problem:
    a name; a rate's threshold in [0, 1), a count's a whole number from 0; a window for every
    kind but the backlog (1 minute to 366 days); at least one recipient."""
    problems: list[Problem] = []
    name = spec.name.strip()
    if not 0 < len(name) <= MAX_NAME:
        problems.append(Problem(f"name is 1 to {MAX_NAME} characters", "name"))
    if spec.kind.is_rate:
        if not 0 <= spec.threshold < 1:
            problems.append(
                Problem("a rate's threshold is from 0 up to (not including) 1", "threshold")
            )
    elif not (0 <= spec.threshold <= MAX_COUNT_THRESHOLD and float(spec.threshold).is_integer()):
        problems.append(
            Problem(
                f"a count's threshold is a whole number from 0 to {MAX_COUNT_THRESHOLD}",
                "threshold",
            )
        )
    if spec.kind.needs_window:
        if spec.window is None or not MIN_WINDOW <= spec.window <= MAX_WINDOW:
            problems.append(Problem("windowSeconds is from 60 to 31622400", "windowSeconds"))
    elif spec.window is not None:
        problems.append(Problem("a backlog rule has no window", "windowSeconds"))
    if not 1 <= spec.min_samples <= MAX_COUNT_THRESHOLD:
        problems.append(Problem(f"minSamples is from 1 to {MAX_COUNT_THRESHOLD}", "minSamples"))
    key = spec.template_key.strip() if spec.template_key is not None else None
    if key is not None and not 0 < len(key) <= MAX_NAME:
        problems.append(Problem(f"templateKey is 1 to {MAX_NAME} characters", "templateKey"))

    def clean(values: tuple[str, ...], path: str) -> tuple[str, ...]:
        out = tuple(sorted({v.strip() for v in values if v.strip()}))
        if len(out) > MAX_RECIPIENTS or any(len(v) > MAX_NAME for v in out):
            problems.append(Problem(f"at most {MAX_RECIPIENTS} names of 1 to {MAX_NAME}", path))
        return out

    notify = Recipients(
        clean(spec.notify.users, "notify.users"),
        clean(spec.notify.groups, "notify.groups"),
        clean(spec.notify.roles, "notify.roles"),
    )
    if not (notify.users or notify.groups or notify.roles):
        problems.append(Problem("an alert must notify somebody", "notify"))
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "invalid alert rule: " + problems[0].message,
            problems[0].path,
            problems=problems,
        )
    return AlertRuleSpec(
        name=name,
        kind=spec.kind,
        threshold=float(spec.threshold),
        window=spec.window,
        notify=notify,
        template_key=key,
        min_samples=spec.min_samples,
        enabled=spec.enabled,
    )


@dataclass(frozen=True)
class Measurement:
    """A rule's figure now: its value and how many things it was measured over (the
    denominator of a rate; the count itself for a count)."""

    value: float
    samples: int


def past_threshold(spec: AlertRuleSpec, measured: Measurement) -> bool:
    """Whether the figure is past the rule's threshold: strictly above it, and for a rate only
    when measured over at least `min_samples` things (one rejection of one is not a trend)."""
    if spec.kind.is_rate and measured.samples < spec.min_samples:
        return False
    return measured.value > spec.threshold


def next_move(firing: bool, past: bool) -> Move:
    """One alert per episode: fire on entering it, clear (and re-arm) on leaving it."""
    if past and not firing:
        return Move.FIRE
    if firing and not past:
        return Move.CLEAR
    return Move.STAY


@dataclass(frozen=True)
class AlertRule:
    """A stored rule, with where its episode stands."""

    id: str
    tenant_id: str
    spec: AlertRuleSpec
    firing: bool
    episode: int
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Alert:
    """One episode of a rule: raised when it fired, cleared when the figure came back."""

    id: str
    tenant_id: str
    rule_id: str
    rule_name: str
    kind: AlertRuleKind
    episode: int
    value: float
    samples: int
    threshold: float
    fired_at: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledgement: str | None


def describe(kind: AlertRuleKind, value: float, threshold: float, window: timedelta | None) -> str:
    """The alert in words, for notifications."""
    if kind is AlertRuleKind.STUCK_ITEMS:
        age = _span(window)
        return f"{value:.0f} items in review unchanged for over {age} (threshold {threshold:.0f})."
    if kind is AlertRuleKind.BACKLOG:
        return f"{value:.0f} items in review (threshold {threshold:.0f})."
    what = "Rejection rate" if kind is AlertRuleKind.REJECTION_RATE else "SLA breach rate"
    return f"{what} {value:.0%} over the last {_span(window)} (threshold {threshold:.0%})."


def describe_resolution(
    kind: AlertRuleKind, value: float | None, threshold: float, window: timedelta | None
) -> str:
    """Why an alert ended, in words, for its "resolved" notification: the figure back within
    the threshold (`value`), or None when its rule was disabled."""
    if value is None:
        return "The rule was disabled; the alert is closed."
    return "Back within the threshold: " + describe(kind, value, threshold, window)


def _span(window: timedelta | None) -> str:
    seconds = int(window.total_seconds()) if window else 0
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def check_note(note: str | None) -> str | None:
    """An acknowledgement's note, trimmed (INVALID_INPUT when too long)."""
    text = (note or "").strip() or None
    if text is not None and len(text) > MAX_NOTE:
        raise DomainError(ErrorCode.INVALID_INPUT, f"note is at most {MAX_NOTE} characters", "note")
    return text
