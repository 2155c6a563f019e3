"""The audit chain: how an event is hashed onto its predecessor, and how a chain is checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

GENESIS_HASH = ""

HASHED_FIELDS = (
    "tenant_id",
    "seq",
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


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """sha256 over the previous hash and the canonical JSON of the event's hashed fields."""
    body = {name: _canonical(event.get(name)) for name in HASHED_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + text).encode()).hexdigest()


def first_broken_link(events: Iterable[Mapping[str, Any]]) -> int | None:
    """The `seq` of the first event whose hash or link does not verify, or None if all do.

    `events` must be one tenant's events in `seq` order, starting anywhere: the first event's
    `prev_hash` is trusted as the anchor.
    """
    prev: str | None = None
    expected_seq: int | None = None
    for event in events:
        if expected_seq is not None and event["seq"] != expected_seq:
            return int(expected_seq)
        if prev is not None and event["prev_hash"] != prev:
            return int(event["seq"])
        if event_hash(event["prev_hash"], event) != event["hash"]:
            return int(event["seq"])
        prev = event["hash"]
        expected_seq = int(event["seq"]) + 1
    return None
