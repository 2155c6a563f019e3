"""Redaction rules: payload fields (dotted paths) that only some roles may see.

One function (`redact_document` through `Redactor`) hides them wherever a payload leaves
signoff — an item read, a subscription push, an audit event's data, an export row, the download
of an incident review's snapshot — so that the paths cannot disagree. A hidden field is absent
(not nulled) from what a client reads: it cannot tell a redacted field from one that was never
sent. In an audit export the field is replaced by a redaction marker instead
(`mark_document`): an export is a record of the trail, and the marker's digest lets whoever
holds the original prove it was the value there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.audit import is_redaction_marker, redaction_marker
from signoff.domain.errors import invalid
from signoff.domain.retention import PAYLOAD_COPIES_IN_EVENTS

MAX_DEPTH = 8
MAX_ROLES = 50
MAX_TEMPLATE_KEY = 200
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")

PAYLOAD_KEYS_OF_EVENTS = PAYLOAD_COPIES_IN_EVENTS
"""Keys of an audit event's `data` that hold a copy of an item's payload (`item.resubmit`
keeps the payload it replaced): redaction applies to them as to the payload itself."""


@dataclass(frozen=True)
class RedactionRule:
    """Field `path` of the payloads of `template_key` (every template when empty) is visible
    only to principals holding one of `visible_to`."""

    template_key: str
    path: tuple[str, ...]
    visible_to: frozenset[str]

    @property
    def dotted(self) -> str:
        """The path as written (`customer.iban`)."""
        return ".".join(self.path)


def parse_path(text: str) -> tuple[str, ...]:
    """A dotted field path; INVALID_INPUT unless 1 to `MAX_DEPTH` segments of letters, digits,
    `_` and `-`."""
    segments = tuple((text or "").strip().split("."))
    if not 1 <= len(segments) <= MAX_DEPTH or not all(_SEGMENT.match(s) for s in segments):
        raise invalid(
            f"a path is 1 to {MAX_DEPTH} dot-separated names of letters, digits, _ and -", "path"
        )
    return segments


def check_rule(template_key: str | None, path: str, visible_to: Iterable[str]) -> RedactionRule:
    """A rule from input (INVALID_INPUT on a bad path, template key or role list)."""
    key = (template_key or "").strip()
    if len(key) > MAX_TEMPLATE_KEY:
        raise invalid(f"a template key is at most {MAX_TEMPLATE_KEY} characters", "templateKey")
    roles = frozenset(r.strip() for r in visible_to)
    if len(roles) > MAX_ROLES or any(not r or len(r) > 100 for r in roles):
        raise invalid(f"at most {MAX_ROLES} role names of 1 to 100 characters", "visibleTo")
    return RedactionRule(key, parse_path(path), roles)


@dataclass(frozen=True)
class Redactor:
    """The paths one principal may not see in the payloads of one template."""

    hidden: tuple[tuple[str, ...], ...]

    def payload(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """`document` without the hidden paths (a copy; the input is not changed)."""
        return redact_document(document, self.hidden)

    def event_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """An audit event's `data` with the hidden paths removed from the payload copies it
        holds."""
        out = dict(data)
        for key in PAYLOAD_KEYS_OF_EVENTS:
            value = out.get(key)
            if isinstance(value, Mapping):
                out[key] = redact_document(value, self.hidden)
        return out

    def event_data_marked(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """An audit event's `data` with each hidden value of the payload copies it holds
        replaced by its redaction marker (what an export writes)."""
        out = dict(data)
        for key in PAYLOAD_KEYS_OF_EVENTS:
            value = out.get(key)
            if isinstance(value, Mapping) and not is_redaction_marker(value):
                out[key] = mark_document(value, self.hidden)
        return out


def redactor_for(
    rules: Iterable[RedactionRule], template_key: str, principal: Principal
) -> Redactor:
    """What `principal` may not see of payloads of `template_key` under `rules`."""
    hidden = sorted(
        {
            rule.path
            for rule in rules
            if rule.template_key in ("", template_key)
            and not principal.has_any_role(rule.visible_to)
        }
    )
    return Redactor(tuple(hidden))


def redact_document(
    document: Mapping[str, Any], paths: Sequence[tuple[str, ...]]
) -> dict[str, Any]:
    """`document` without the fields at `paths`. A path goes through objects by key and
    through lists into every element."""
    out: Any = dict(document)
    for path in paths:
        out = _without(out, path)
    return dict(out)


def _without(value: Any, path: tuple[str, ...]) -> Any:
    def remove(fields: dict[str, Any], key: str) -> None:
        del fields[key]

    return _at(value, path, remove)


def _at(value: Any, path: tuple[str, ...], change: Any, skip_markers: bool = False) -> Any:
    """A copy of `value` with `change(fields, key)` applied to each object holding `path`'s
    last key (through objects by key, through lists into every element)."""
    if isinstance(value, list):
        return [_at(v, path, change, skip_markers) for v in value]
    if not isinstance(value, Mapping) or path[0] not in value:
        return value
    if skip_markers and is_redaction_marker(value):
        return value
    copy = dict(value)
    if len(path) == 1:
        change(copy, path[0])
    else:
        copy[path[0]] = _at(copy[path[0]], path[1:], change, skip_markers)
    return copy


def mark_document(document: Mapping[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """`document` with the value of each field at `paths` replaced by its redaction marker
    (`{"redacted_sha256": <digest of its canonical JSON>}`); paths go through lists as in
    `redact_document`. A value that is already a marker stays as it is."""
    out: Any = dict(document)
    for path in paths:
        out = _marked(out, path)
    return dict(out)


def _marked(value: Any, path: tuple[str, ...]) -> Any:
    def mark(fields: dict[str, Any], key: str) -> None:
        if not is_redaction_marker(fields[key]):
            fields[key] = redaction_marker(fields[key])

    return _at(value, path, mark, skip_markers=True)


def redact_value(value: Any, paths: Sequence[tuple[str, ...]]) -> Any:
    """Any JSON value without the fields at `paths`: an object as `redact_document` does it, a
    list element by element (as a path goes through lists), anything else as it is."""
    if isinstance(value, Mapping):
        return redact_document(value, paths)
    if isinstance(value, list):
        return [redact_value(v, paths) for v in value]
    return value


def redact_history(history: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """An incident review's snapshot of a reopened item's history (`history.json`) as a reader
    sees it: the item's payload and the payload copies in its audit events without the fields
    `redactor` hides, as `WorkflowItem.payload` and `auditEvents` show them; the rest of the
    history as it is."""
    out = dict(history)
    item = out.get("item")
    if isinstance(item, Mapping) and isinstance(item.get("payload"), Mapping):
        out["item"] = {**item, "payload": redactor.payload(item["payload"])}
    events = out.get("audit_events")
    if isinstance(events, list):
        out["audit_events"] = [
            {**e, "data": redactor.event_data(e["data"])}
            if isinstance(e, Mapping) and isinstance(e.get("data"), Mapping)
            else e
            for e in events
        ]
    return out
