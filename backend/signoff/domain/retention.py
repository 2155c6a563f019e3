"""Retention rules: which policy governs an item, when its content is due, what redaction and
purging leave of a payload, and who may place a legal hold.

Retention removes content, never history: an item, its steps, decisions, comment threads,
evidence metadata and audit events stay. What goes is the item's payload, the bodies of its
comments and the bytes and descriptions of its evidence files. Their sha256 digests stay (in
the audit trail, in `comment_revision.body_sha256`, `evidence.sha256`), so the hash chain
still verifies and anyone holding an original can prove it is the one that was there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.domain.audit import canonical, is_redaction_marker, redaction_marker
from signoff.domain.errors import invalid
from signoff.domain.states import DECIDED_ITEM_STATES, ItemState

MIN_DAYS = 1
MAX_DAYS = 36_500
MAX_REASON = 4000
MAX_TEMPLATE_KEY = 200
DIGEST_PREFIX = "sha256:"

RETAINED_STATES: frozenset[ItemState] = frozenset(DECIDED_ITEM_STATES)
"""Decided items: the only ones whose content retention may remove. An open item is never
touched, however old (the index `workflow_item_retention` lists the same states)."""


class RetentionAction(StrEnum):
    """What a policy does to an item's content once it is due."""

    REDACT = "redact"
    """Every value in the payload is replaced by its digest (`sha256:<hex>`); its keys stay."""
    PURGE = "purge"
    """The payload is emptied (its digest is kept beside it)."""


class Verdict(StrEnum):
    """What retention does with one item now."""

    DUE = "due"
    NO_POLICY = "no_policy"
    OPEN = "open"
    NOT_YET = "not_yet"
    HELD = "held"
    DONE = "done"


@dataclass(frozen=True)
class RetentionPolicy:
    """After `days` days, `action` the content of decided items (of `template_key`, or of every
    template when it is empty)."""

    template_key: str
    days: int
    action: RetentionAction

    @property
    def age(self) -> timedelta:
        """How long after its last change a decided item keeps its content."""
        return timedelta(days=self.days)


@dataclass(frozen=True)
class LegalHoldRecord:
    """An item on legal hold."""

    item_id: UUID
    reason: str
    placed_by: str
    placed_at: datetime


@dataclass(frozen=True)
class ItemRetentionRecord:
    """What retention did to one item."""

    item_id: UUID
    action: RetentionAction
    policy_key: str
    days: int
    payload_sha256: str
    applied_at: datetime


def check_policy(template_key: str | None, days: int, action: str) -> RetentionPolicy:
    """A policy from input; INVALID_INPUT on a day count out of range or an unknown action."""
    key = (template_key or "").strip()
    if len(key) > MAX_TEMPLATE_KEY:
        raise invalid(f"a template key is at most {MAX_TEMPLATE_KEY} characters", "templateKey")
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise invalid(f"days must be between {MIN_DAYS} and {MAX_DAYS}", "days")
    try:
        kind = RetentionAction(action)
    except ValueError:
        raise invalid("action must be redact or purge", "action") from None
    return RetentionPolicy(key, days, kind)


def policy_for(policies: Iterable[RetentionPolicy], template_key: str) -> RetentionPolicy | None:
    """The policy governing items of `template_key`: its own, else the tenant's default."""
    default = None
    for policy in policies:
        if policy.template_key == template_key:
            return policy
        if policy.template_key == "":
            default = policy
    return default


def verdict(
    *,
    state: ItemState,
    last_changed: datetime,
    policy: RetentionPolicy | None,
    held: bool,
    applied: bool,
    now: datetime,
) -> Verdict:
    """Whether an item's content is due for `policy` at `now`.

    A legal hold wins over every policy; an item is handled once; only decided items count,
    from their last change.
    """
    if applied:
        return Verdict.DONE
    if policy is None:
        return Verdict.NO_POLICY
    if state not in RETAINED_STATES:
        return Verdict.OPEN
    if held:
        return Verdict.HELD
    if now < last_changed + policy.age:
        return Verdict.NOT_YET
    return Verdict.DUE


def _json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of `value` (as the audit trail digests content)."""
    return hashlib.sha256(_json(value).encode()).hexdigest()


def _digested(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _digested(v) for k, v in value.items()}
    return DIGEST_PREFIX + digest_of(value)


def retained_payload(payload: Mapping[str, Any], action: RetentionAction) -> dict[str, Any]:
    """What is left of `payload` after `action`.

    Redaction keeps the shape (every key of every object) and replaces each other value — a
    string, a number, a list — by `sha256:` and the digest of its canonical JSON; purging
    leaves an empty object.
    """
    if action is RetentionAction.PURGE:
        return {}
    redacted: dict[str, Any] = _digested(dict(payload))
    return redacted


PAYLOAD_COPIES_IN_EVENTS = ("payload", "previous_payload")
"""Keys of an audit event's `data` that hold a copy of an item's payload (`item.resubmit`
keeps the payload it replaced)."""


def retained_event_data(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """An audit event's `data` with the payload copies it holds replaced by redaction markers
    (their digests), or None when it holds none left to remove."""
    copies = [
        key
        for key in PAYLOAD_COPIES_IN_EVENTS
        if key in data and data[key] is not None and not is_redaction_marker(data[key])
    ]
    if not copies:
        return None
    return {**data, **{key: redaction_marker(data[key]) for key in copies}}


def retained_history(history: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """A review's snapshot of an item's history (`services/incidents.py::_history`) once
    retention removed the item's content: the item's payload as retention left it
    (`payload`), no comment text, no evidence description, and the payload copies in its audit
    events replaced by redaction markers — what retention did to the item itself. Applying it
    again changes nothing."""
    out = dict(history)
    if isinstance(out.get("item"), Mapping):
        out["item"] = {**out["item"], "payload": dict(payload)}
    out["comments"] = [{**c, "body": None} for c in out.get("comments") or []]
    out["evidence"] = [{**e, "description": None} for e in out.get("evidence") or []]
    events = []
    for event in out.get("audit_events") or []:
        data = event.get("data")
        remaining = retained_event_data(data) if isinstance(data, Mapping) else None
        events.append(event if remaining is None else {**event, "data": remaining})
    out["audit_events"] = events
    return out


def check_reason(reason: str | None) -> str:
    """A legal hold's reason: required, at most `MAX_REASON` characters."""
    text = (reason or "").strip()
    if not text:
        raise invalid("a legal hold needs a reason", "reason")
    if len(text) > MAX_REASON:
        raise invalid(f"a reason is at most {MAX_REASON} characters", "reason")
    return text
