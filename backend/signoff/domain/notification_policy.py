"""Notification rules without I/O: which audit events notify whom, per-user preferences,
quiet hours, priorities and retry backoff.

The delivery pipeline (`signoff.services.notifications`) applies these rules; keeping them
pure makes them testable without a database and usable by the simulation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signoff.domain.errors import DomainError, ErrorCode, Problem
from signoff.domain.records import StepAssignees

#: Audit action → notification kind. Actions not listed notify nobody.
KIND_OF_ACTION: Mapping[str, str] = {
    "step.activate": "assignment",
    "step.reassign": "assignment",
    "step.escalate": "escalation",
    "step.dependency_conflict": "dependency_conflict",
    "item.approve": "decision",
    "item.reject": "decision",
    "step.fail": "failure",
    "item.fail": "failure",
    "timer.reminder": "reminder",
    "timer.deadline_risk": "deadline_risk",
    # Only the people a comment newly `@mentions` (and who may read the item) are told.
    "comment.created": "mention",
    "comment.edited": "mention",
    # An alert rule's episode began, or ended (resolved): its recipients are named in the
    # event (no item).
    "alert.fired": "alert",
    "alert.cleared": "alert",
}

#: Priority of each notification kind (`NotificationEvent.priority`).
PRIORITY_OF_KIND: Mapping[str, str] = {
    "deadline_risk": "urgent",
    "escalation": "high",
    "dependency_conflict": "high",
    "failure": "high",
    "assignment": "normal",
    "mention": "normal",
    "alert": "high",
    "decision": "low",
    "reminder": "low",
    "digest": "normal",
}

#: Critical kinds bypass quiet hours, digests and burst folding.
CRITICAL_KINDS: frozenset[str] = frozenset({"deadline_risk"})

#: Priorities that may be folded into a digest when a recipient gets a burst.
FOLDABLE_PRIORITIES: frozenset[str] = frozenset({"low", "normal"})

#: Kinds that concern an open step: they are dropped when the step is no longer open.
STEP_KINDS: frozenset[str] = frozenset({"assignment", "escalation", "reminder", "deadline_risk"})

NOTIFIABLE_KINDS: frozenset[str] = frozenset(PRIORITY_OF_KIND) - {"digest"}

_CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_ADDRESS = 500


def priority_of(kind: str) -> str:
    """The priority of a notification kind (normal for kinds added later)."""
    return PRIORITY_OF_KIND.get(kind, "normal")


def is_critical(kind: str) -> bool:
    """Whether a kind bypasses quiet hours and digests."""
    return kind in CRITICAL_KINDS


@dataclass(frozen=True)
class QuietHours:
    """A daily span (local time of `timezone`) in which non-critical notifications wait."""

    start: time
    end: time
    timezone: str

    def until(self, now: datetime) -> datetime | None:
        """When the quiet span containing `now` ends (UTC), or None when `now` is not quiet."""
        if self.start == self.end:
            return None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        today = local.date()
        moment = local.time().replace(tzinfo=None)
        if self.start < self.end:
            if self.start <= moment < self.end:
                return datetime.combine(today, self.end, zone).astimezone(UTC)
            return None
        # The span crosses midnight.
        if moment >= self.start:
            return datetime.combine(today + timedelta(days=1), self.end, zone).astimezone(UTC)
        if moment < self.end:
            return datetime.combine(today, self.end, zone).astimezone(UTC)
        return None

    def to_dict(self) -> dict[str, str]:
        """The stored form."""
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timezone": self.timezone,
        }


@dataclass(frozen=True)
class Preferences:
    """One user's notification preferences.

    `channels` maps a kind (or `default`) to the channels to use; a kind without an entry and
    without `default` goes to every channel the user has an address on. An empty list mutes
    the kind. `digest_kinds` are collected into a digest instead of sent one by one.
    """

    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    digest_kinds: frozenset[str] = frozenset()

    def channels_for(self, kind: str, available: Iterable[str]) -> list[str]:
        """The channels a notification of `kind` goes to, among those `available`."""
        available = list(available)
        wanted = self.channels.get(kind, self.channels.get("default"))
        if wanted is None:
            return sorted(available)
        return [c for c in wanted if c in available]

    def wants_digest(self, kind: str) -> bool:
        """Whether the user asked for `kind` in a digest (never for critical kinds)."""
        return kind in self.digest_kinds and not is_critical(kind)

    def to_dict(self) -> dict[str, Any]:
        """The stored (and API) form."""
        return {
            "channels": {k: list(v) for k, v in sorted(self.channels.items())},
            "quiet_hours": self.quiet_hours.to_dict() if self.quiet_hours else None,
            "digest_kinds": sorted(self.digest_kinds),
        }


def _clock_time(value: Any, path: str, problems: list[Problem]) -> time | None:
    if not isinstance(value, str) or not _CLOCK_TIME.match(value):
        problems.append(Problem("must be a time of day HH:MM", path))
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def parse_preferences(raw: Mapping[str, Any] | None) -> Preferences:
    """Validate stored or submitted preferences; INVALID_INPUT listing every problem."""
    raw = raw or {}
    problems: list[Problem] = []
    channels: dict[str, tuple[str, ...]] = {}
    for kind, names in dict(raw.get("channels") or {}).items():
        if kind != "default" and kind not in NOTIFIABLE_KINDS:
            problems.append(Problem(f"unknown notification kind {kind!r}", f"channels.{kind}"))
            continue
        if not isinstance(names, list | tuple) or not all(
            isinstance(n, str) and _CHANNEL.match(n) for n in names
        ):
            problems.append(Problem("must be a list of channel names", f"channels.{kind}"))
            continue
        channels[kind] = tuple(dict.fromkeys(names))
    quiet: QuietHours | None = None
    spec = raw.get("quiet_hours")
    if spec:
        if not isinstance(spec, Mapping):
            problems.append(Problem("must be {start, end, timezone}", "quiet_hours"))
        else:
            start = _clock_time(spec.get("start"), "quiet_hours.start", problems)
            end = _clock_time(spec.get("end"), "quiet_hours.end", problems)
            zone = spec.get("timezone") or "UTC"
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(Problem(f"unknown time zone {zone!r}", "quiet_hours.timezone"))
                zone = None
            if start is not None and end is not None and zone is not None:
                quiet = QuietHours(start, end, str(zone))
    digest = raw.get("digest_kinds") or []
    if not isinstance(digest, list | tuple) or not all(d in NOTIFIABLE_KINDS for d in digest):
        problems.append(Problem("must be a list of notification kinds", "digest_kinds"))
        digest = []
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "invalid notification preferences",
            problems[0].path,
            problems=problems,
        )
    return Preferences(channels=channels, quiet_hours=quiet, digest_kinds=frozenset(digest))


def preferences_or_default(raw: Mapping[str, Any] | None) -> Preferences:
    """Stored preferences; defaults when they are unreadable (validated on write anyway)."""
    try:
        return parse_preferences(raw)
    except DomainError:
        return Preferences()


def check_addresses(addresses: Mapping[str, Any]) -> dict[str, str]:
    """Validate a profile's channel addresses; INVALID_INPUT listing every problem."""
    problems = []
    clean: dict[str, str] = {}
    for channel, address in addresses.items():
        if not isinstance(channel, str) or not _CHANNEL.match(channel):
            problems.append(Problem(f"invalid channel name {channel!r}", "addresses"))
        elif not isinstance(address, str) or not address.strip() or len(address) > MAX_ADDRESS:
            problems.append(
                Problem(f"address must be 1 to {MAX_ADDRESS} characters", f"addresses.{channel}")
            )
        else:
            clean[channel] = address.strip()
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "invalid addresses", problems[0].path, problems=problems
        )
    return clean


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """Delay before the attempt after failed attempt number `attempt` (1-based).

    Exponential (`base * 2**(attempt-1)`, at most `cap`) with "equal jitter": somewhere in the
    upper half of that delay, so retries of many deliveries spread out. A channel's
    `retry_after` is honoured even beyond the cap.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    pick = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > pick:
        pick = retry_after
    return timedelta(seconds=pick)


def concerns_open_step(kind: str, step_state: str | None, data: Mapping[str, Any]) -> bool:
    """Whether a notification of `kind` about a step in `step_state` still needs telling.

    Step kinds (assignments, reminders, escalations, deadline warnings) are for a step someone
    must act on: an active one, or a failed plan step whose retries are exhausted, which
    escalates to people who must see to it (no retry is left: it is skipped, continued past or
    compensated). A step decided before anyone had to look needs nobody told. Other kinds
    always concern their step.
    """
    if kind not in STEP_KINDS:
        return True
    if step_state == "active":
        return True
    return kind == "escalation" and step_state == "failed" and data.get("by") == "retries_exhausted"


def step_assignee_sets(assignees: StepAssignees) -> tuple[set[str], set[str], set[str]]:
    """(users, groups, roles) a step's assignees name; delegates count as users."""
    users = set(assignees.users) | set(assignees.delegates)
    return users, set(assignees.groups), set(assignees.roles)


def without(recipients: Iterable[str], excluded: Collection[str | None]) -> list[str]:
    """Recipients in a stable order, each once, without the excluded (the causing actor)."""
    return sorted({r for r in recipients if r and r not in excluded})
