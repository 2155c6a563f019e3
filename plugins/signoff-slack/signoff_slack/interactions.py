"""Slack interactivity: request signature verification and ``block_actions`` parsing."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from signoff.notify import Interaction, InteractionRejected, Secret
from signoff.notify.signing import hmac_sha256_hex, timing_safe_equal

APPROVE_ACTION_ID = "signoff_approve"
REJECT_ACTION_ID = "signoff_reject"
_ACTIONS = {APPROVE_ACTION_ID: "approve", REJECT_ACTION_ID: "reject"}


def verify_slack_signature(
    headers: Mapping[str, str],
    body: bytes,
    signing_secret: Secret,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Check ``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``) and freshness.

    ``headers`` must have lower-case names. Raises ``InteractionRejected``.
    """
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp or not signature:
        raise InteractionRejected("missing Slack signature headers")
    if not timestamp.isdigit():
        raise InteractionRejected("malformed Slack timestamp")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        raise InteractionRejected("stale Slack request timestamp")
    expected = "v0=" + hmac_sha256_hex(signing_secret, b"v0:" + timestamp.encode() + b":" + body)
    if not timing_safe_equal(expected, signature):
        raise InteractionRejected("bad Slack signature")


def button_value(item_id: str, step_id: str | None) -> str:
    """The ``value`` of an Approve/Reject button: which item and step it decides."""
    return json.dumps({"item_id": item_id, "step_id": step_id}, separators=(",", ":"))


def parse_block_actions(body: bytes) -> Interaction | None:
    """Turn a verified ``block_actions`` callback into an ``Interaction``.

    Returns None for callbacks that decide nothing (other payload types, the "Open" link
    button). The idempotency key is ``slack:{team}:{channel}:{message_ts}:{action_id}:{user}``:
    the same person pressing the same button on the same message twice (a double click, a
    retried callback) yields one key, so the core applies the decision once; Approve then
    Reject are two different keys and the core's state machine refuses the second.
    """
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload: dict[str, Any] = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise InteractionRejected("malformed Slack payload") from exc
    if payload.get("type") != "block_actions":
        return None
    actions = [a for a in payload.get("actions") or [] if a.get("action_id") in _ACTIONS]
    if not actions:
        return None
    action = actions[0]
    try:
        value = json.loads(action["value"])
        item_id = str(value["item_id"])
        step_id = value.get("step_id")
        user_id = str(payload["user"]["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InteractionRejected("malformed Slack action") from exc
    container = payload.get("container") or {}
    team = (payload.get("team") or {}).get("id", "-")
    where = container.get("channel_id") or (payload.get("channel") or {}).get("id", "-")
    message_ts = container.get("message_ts") or action.get("action_ts", "-")
    return Interaction(
        action=_ACTIONS[action["action_id"]],  # type: ignore[arg-type]
        item_id=item_id,
        step_id=str(step_id) if step_id is not None else None,
        actor_external_id=user_id,
        idempotency_key=f"slack:{team}:{where}:{message_ts}:{action['action_id']}:{user_id}",
    )
