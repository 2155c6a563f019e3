"""The audit chain: what an event's digest covers, how events link, and how a chain is checked.

Each event stores a digest of its content (`content_digest`: sha256 of the canonical JSON of
`CONTENT_FIELDS`), and its `hash` links it to its predecessor:

    hash = sha256_hex(prev_hash + "\\n" + tenant_id + "\\n" + str(seq) + "\\n" + content_digest)

The link covers the digest, not the content, so an event's content can later be redacted or
purged while the chain still verifies; the content check then tells which events no longer match
their digest. The database computes the same link (`audit_append` in the migrations): the two
must stay identical, and every append checks that they are.

Redaction is the one change the trail allows after the fact (the database's append-only trigger
refuses every other): the columns in `REDACTABLE_FIELDS` become empty, and values inside `data`
are removed or replaced by a marker holding their digest (`redaction_marker`). A redacted event
keeps its digest, so its links verify; it is marked (`redacted_at`) and its content is not
checked against the digest any more.

Events written before content digests existed (`content_digest` empty) were hashed over all
their fields at once (`legacy_event_hash`); the verifier accepts either form. They cannot be
redacted: their hash covers their content.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

GENESIS_HASH = ""

CONTENT_FIELDS = (
    "item_id",
    "step_id",
    "action",
    "actor_id",
    "acting_for",
    "reason",
    "request_id",
    "client_addr",
    "user_agent",
    "data",
    "occurred_at",
)

LEGACY_HASHED_FIELDS = ("tenant_id", "seq", *CONTENT_FIELDS)

OPTIONAL_CONTENT_FIELDS = ("environment",)
"""Content recorded since a later version: digested only when present, so that the digests of
events written before it stay as they were."""

REDACTABLE_FIELDS = ("acting_for", "reason", "request_id", "client_addr", "user_agent")
"""Text columns a redaction may empty (besides values inside `data`)."""

REDACTION_KEY = "redacted_sha256"


_PLAIN = frozenset({str, int, bool, type(None)})


def canonical(value: Any) -> Any:
    """`value` as plain JSON values, the form an event's content is stored and digested in.

    Datetimes become ISO 8601 in UTC (a naive one is taken as UTC), mappings get string keys,
    anything else that JSON lacks (UUIDs, enums, …) becomes its string. A float with an
    integral value becomes that integer and a non-finite one its string, because `jsonb`
    stores numbers as decimals and hands `1e16` back as `10000000000000000`: canonical content
    reads back from the database as exactly what was digested.
    """
    kind = type(value)
    # Exact types first (most of an event's values): the same results as the checks below,
    # without their isinstance walks through abstract classes.
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): canonical(v) for k, v in value.items()}
    if kind is list:
        return [canonical(v) for v in value]
    if isinstance(value, float):
        return _canonical_float(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _canonical_float(value: float) -> int | float | str:
    if not math.isfinite(value):
        return str(value)
    exact = Decimal(repr(value))
    return int(exact) if exact == exact.to_integral_value() else value


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json(body: Any) -> str:
    return _ENCODER.encode(body)


def content_digest(event: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the event's `CONTENT_FIELDS` (and of those of
    `OPTIONAL_CONTENT_FIELDS` it has)."""
    body = {name: canonical(event.get(name)) for name in CONTENT_FIELDS}
    for name in OPTIONAL_CONTENT_FIELDS:
        if event.get(name) is not None:
            body[name] = canonical(event[name])
    return hashlib.sha256(_json(body).encode()).hexdigest()


def redaction_marker(value: Any) -> dict[str, str]:
    """What replaces a redacted value inside an event's `data`: the digest of its canonical JSON.

    The database accepts exactly this shape in place of a value (`audit_data_redacts`), so a
    redaction can take content away but never write new content in.
    """
    return {REDACTION_KEY: hashlib.sha256(_json(canonical(value)).encode()).hexdigest()}


def is_redaction_marker(value: Any) -> bool:
    """Whether `value` is a marker left by `redaction_marker`."""
    return (
        isinstance(value, Mapping)
        and set(value) == {REDACTION_KEY}
        and isinstance(value[REDACTION_KEY], str)
        and len(value[REDACTION_KEY]) == 64
    )


def link_hash(prev_hash: str, tenant_id: str, seq: int, digest: str) -> str:
    """The hash that chains an event (`tenant_id`, `seq`, `digest`) onto `prev_hash`."""
    text = f"{prev_hash}\n{tenant_id}\n{seq}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def legacy_event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The hash of an event written before content digests: over every field at once."""
    body = {name: _legacy_canonical(event.get(name)) for name in LEGACY_HASHED_FIELDS}
    return hashlib.sha256((prev_hash + "\n" + _json(body)).encode()).hexdigest()


def _legacy_canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _legacy_canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_legacy_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def chain_hashes(
    prev_hash: str, tenant_id: str, first_seq: int, digests: Iterable[str]
) -> list[tuple[int, str, str]]:
    """(seq, prev_hash, hash) of events with `digests` appended after `prev_hash`."""
    links = []
    seq = first_seq
    for digest in digests:
        current = link_hash(prev_hash, tenant_id, seq, digest)
        links.append((seq, prev_hash, current))
        prev_hash = current
        seq += 1
    return links


class BreakKind(StrEnum):
    """Why a chain does not verify at an event."""

    MISSING = "missing"
    """An event is absent: the numbers skip it, or the head names events that are not there."""
    LINK = "link"
    """The event's `prev_hash` is not its predecessor's hash (events removed or reordered)."""
    HASH = "hash"
    """The event's `hash` is not the link of its `prev_hash`, tenant, seq and digest."""
    CONTENT = "content"
    """The event's content no longer matches its stored digest (changed, or redacted)."""


@dataclass(frozen=True)
class ChainBreak:
    """The first event at which a chain does not verify, and why."""

    seq: int
    kind: BreakKind
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind.value} ({self.detail})"


def verify_events(
    events: Iterable[Mapping[str, Any]],
    *,
    anchor: str | None = None,
    first_seq: int | None = None,
    check_content: bool = True,
) -> ChainBreak | None:
    """The first break in one tenant's `events` (in `seq` order), or None if they verify.

    `anchor` is the trusted hash of the event before the first one (`GENESIS_HASH` when the
    chain starts at seq 1); without it the first event's `prev_hash` is trusted. `first_seq`
    is the seq the first event must have. With `check_content` each event's content is also
    checked against its digest; without it only the links are (a trail whose content was
    redacted still proves that no event was added, removed or reordered). Events marked as
    redacted (`redacted_at`) are checked by their links only.
    """
    prev = anchor
    expected = first_seq
    for event in events:
        seq = int(event["seq"])
        if expected is not None and seq != expected:
            return ChainBreak(expected, BreakKind.MISSING, f"next event found is seq {seq}")
        if prev is not None and event["prev_hash"] != prev:
            return ChainBreak(seq, BreakKind.LINK, "prev_hash is not the previous event's hash")
        digest = event.get("content_digest")
        if digest:
            if link_hash(event["prev_hash"], event["tenant_id"], seq, digest) != event["hash"]:
                return ChainBreak(seq, BreakKind.HASH, "hash does not match its link")
            redacted = event.get("redacted_at") is not None
            if check_content and not redacted and content_digest(event) != digest:
                return ChainBreak(seq, BreakKind.CONTENT, "content does not match its digest")
        elif legacy_event_hash(event["prev_hash"], event) != event["hash"]:
            return ChainBreak(seq, BreakKind.HASH, "hash does not match the event")
        prev = event["hash"]
        expected = seq + 1
    return None
