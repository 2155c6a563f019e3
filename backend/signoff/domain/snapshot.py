"""What the progression reads and returns: an item snapshot, the context of a change, and
the `Progress` that says what to write (audit entries, decision rows, timer changes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.calendar import Clockwork
from signoff.domain.permissions import Grants, Permission, allows
from signoff.domain.policies import DEFAULT_MIN_JUSTIFICATION
from signoff.domain.records import DecisionOutcome, Item, Step
from signoff.domain.timers import TimerSpec


class HoldOption(StrEnum):
    """What a person may do about a step held by an `ask_user` dependency (seed 003)."""

    RETRY = "retry"
    SKIP = "skip"
    PROVIDE = "provide"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Context:
    """What a run needs besides the item and the event: the time, the tenant's calendar and
    its permission table."""

    now: datetime
    calendar: Clockwork
    grants: Grants = field(default_factory=Grants)
    override_min_justification: int = DEFAULT_MIN_JUSTIFICATION

    def may(
        self, who: Principal, permission: Permission, template_key: str, requester: str
    ) -> bool:
        """Whether `who` holds `permission` on an item of `template_key` requested by
        `requester` (`domain.permissions.allows`)."""
        return allows(self.grants, who, permission, template_key=template_key, requester=requester)

    def at(self, now: datetime) -> Context:
        """The same context at another instant."""
        return replace(self, now=now)


@dataclass(frozen=True)
class Snapshot:
    """An item and its steps (in template order), as records."""

    item: Item
    steps: tuple[Step, ...]

    def step(self, key: str) -> Step:
        """The step with this template key."""
        return next(s for s in self.steps if s.key == key)


@dataclass(frozen=True)
class Entry:
    """One audit event to record: `action` on the item, or on `step` when given."""

    action: str
    step: str | None
    reason: str | None = None
    acting_for: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewDecision:
    """A decision row to store."""

    step: str
    actor: str
    outcome: DecisionOutcome
    reason: str | None = None
    rule: str | None = None
    acting_for: str | None = None
    seat: int | None = None


@dataclass(frozen=True)
class TimerChange:
    """What to do to one step's stored timers: void the armed ones (`cancel`), arm them again at
    the same times with fresh tokens (`keep`), and arm new ones."""

    step: str
    cancel: bool
    keep: bool
    arm: tuple[TimerSpec, ...]


@dataclass(frozen=True)
class Progress:
    """What one event does to an item: the snapshot after it and what to write."""

    before: Snapshot
    after: Snapshot
    entries: tuple[Entry, ...]
    decisions: tuple[NewDecision, ...]
    timers: tuple[TimerChange, ...]
    moved: frozenset[str] = frozenset()

    def changed_steps(self) -> list[Step]:
        """Steps that moved or whose record differs from before (each written once: a step's
        version counts every transition, even one that changes no field)."""
        return [
            a
            for a, b in zip(self.after.steps, self.before.steps, strict=True)
            if a != b or a.key in self.moved
        ]

    @property
    def item_changed(self) -> bool:
        """Whether the item record itself changed (not only its steps)."""
        return self.after.item != self.before.item
