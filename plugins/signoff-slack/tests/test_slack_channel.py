"""The Slack channel against a local HTTP server standing in for Slack's Web API."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

import signoff_slack.plugin as slack_plugin
from signoff.notify import (
    DeliveryStatus,
    InteractionRejected,
    NotificationEvent,
    NotifierRegistry,
    Recipient,
)
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer

TOKEN = "xoxb-test-token-123"
SIGNING = "slack-signing-secret-abc"


def make_event(kind: str = "assignment", event_id: str = "evt-1") -> NotificationEvent:
    return NotificationEvent(
        id=event_id,
        kind=kind,
        tenant_id="t1",
        item_id="item-9",
        step_id="step-2",
        title="Approve <deploy> & more",
        summary="Prod deploy of api v42",
        priority="high",
        risk="medium",
        due_at=datetime(2026, 1, 3, tzinfo=UTC),
        link="https://signoff.example/items/item-9",
        occurred_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


def make_registry(**config) -> NotifierRegistry:
    registry = NotifierRegistry()
    registry.register(slack_plugin, "slack")
    registry.configure({"slack": config})
    return registry


def slack_ok(request: ReceivedRequest) -> HTTPReply:
    body = request.json()
    return HTTPReply(200, {"ok": True, "channel": body["channel"], "ts": "1700000000.000100"})


async def post(registry, recipient=None, kind="assignment", parent=None):
    recipient = recipient or Recipient(user_id="u1", address="C0123")
    message = await registry.render("slack", make_event(kind), recipient)
    if parent:
        message = dataclasses.replace(message, thread_parent_id=parent)
    return message, await registry.deliver("slack", message, recipient)


async def test_post_message_with_buttons():
    async with RecordingHTTPServer(slack_ok) as slack:
        registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING, api_base_url=slack.url)
        _, result = await post(registry)
        (request,) = await slack.wait_for_requests(1)
    assert result.status is DeliveryStatus.DELIVERED, result
    assert result.provider_message_id == "C0123:1700000000.000100"
    assert request.path == "/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = request.json()
    assert body["channel"] == "C0123"
    assert "&lt;deploy&gt; &amp; more" in body["blocks"][0]["text"]["text"]
    actions = body["blocks"][-1]["elements"]
    by_id = {a["action_id"]: a for a in actions}
    assert json.loads(by_id["signoff_approve"]["value"]) == {
        "item_id": "item-9",
        "step_id": "step-2",
    }
    assert by_id["signoff_reject"]["style"] == "danger"
    assert by_id["signoff_open"]["url"] == "https://signoff.example/items/item-9"
    assert TOKEN not in repr(registry.config_of("slack"))


async def test_no_buttons_without_signing_secret_or_for_decisions():
    async with RecordingHTTPServer(slack_ok) as slack:
        registry = make_registry(bot_token=TOKEN, api_base_url=slack.url)
        message, _ = await post(registry)
        ids = [e["action_id"] for e in message.blocks[-1]["elements"]]
        assert ids == ["signoff_open"]
        registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING, api_base_url=slack.url)
        message, _ = await post(registry, kind="decision")
        assert [e["action_id"] for e in message.blocks[-1]["elements"]] == ["signoff_open"]


async def test_thread_reply_uses_parent_ts():
    async with RecordingHTTPServer(slack_ok) as slack:
        registry = make_registry(bot_token=TOKEN, api_base_url=slack.url)
        await post(registry, parent="C0123:1699999999.000001")
        (request,) = await slack.wait_for_requests(1)
    assert request.json()["thread_ts"] == "1699999999.000001"


async def test_ok_false_and_rate_limit():
    replies = iter(
        [
            HTTPReply(200, {"ok": False, "error": "internal_error"}),
            HTTPReply(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "30"}),
            HTTPReply(200, {"ok": False, "error": "channel_not_found"}),
        ]
    )
    async with RecordingHTTPServer(lambda r: next(replies)) as slack:
        registry = make_registry(bot_token=TOKEN, api_base_url=slack.url)
        _, first = await post(registry)
        _, second = await post(registry)
        _, third = await post(registry)
    assert first.status is DeliveryStatus.FAILED_RETRYABLE and "internal_error" in first.error
    assert second.status is DeliveryStatus.FAILED_RETRYABLE and second.retry_after == 30.0
    assert third.status is DeliveryStatus.FAILED_PERMANENT and "channel_not_found" in third.error


async def test_incoming_webhook():
    async with RecordingHTTPServer(lambda r: HTTPReply(200, "ok")) as slack:
        registry = make_registry(webhook_url=slack.url + "/services/T/B/X")
        _, result = await post(registry)
        (request,) = await slack.wait_for_requests(1)
    assert result.ok
    assert request.path == "/services/T/B/X"
    assert "authorization" not in request.headers and "channel" not in request.json()
    assert "/services/T/B/X" not in repr(registry.config_of("slack"))


def test_config_validation():
    registry = NotifierRegistry()
    registry.register(slack_plugin, "slack")
    with pytest.raises(Exception, match="channel 'slack', field 'bot_token'"):
        registry.configure({"slack": {}})
    with pytest.raises(Exception, match="field 'bot_token'.*xox"):
        registry.configure({"slack": {"bot_token": "nope"}})


# ---- interactions


def click_body(action_id="signoff_approve", message_ts="1700000000.000100", action_ts="1.1"):
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U42"},
        "container": {"type": "message", "channel_id": "C0123", "message_ts": message_ts},
        "actions": [
            {
                "action_id": action_id,
                "value": json.dumps({"item_id": "item-9", "step_id": "step-2"}),
                "action_ts": action_ts,
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, secret: str = SIGNING, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


async def test_signoff_parse_interaction_approve_and_double_click():
    registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING)
    first = await registry.parse_interaction("slack", signed(click_body()), click_body())
    body2 = click_body(action_ts="2.2")
    again = await registry.parse_interaction("slack", signed(body2), body2)
    body3 = click_body("signoff_reject")
    reject = await registry.parse_interaction("slack", signed(body3), body3)
    assert first is not None and first.action == "approve"
    assert (first.item_id, first.step_id, first.actor_external_id) == ("item-9", "step-2", "U42")
    assert first.channel == "slack"
    assert again.idempotency_key == first.idempotency_key
    assert reject.action == "reject" and reject.idempotency_key != first.idempotency_key


async def test_parse_interaction_rejects_bad_signature_and_stale():
    registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING)
    body = click_body()
    with pytest.raises(InteractionRejected, match="bad Slack signature"):
        await registry.parse_interaction("slack", signed(body, "wrong-secret"), body)
    with pytest.raises(InteractionRejected, match="stale"):
        await registry.parse_interaction("slack", signed(body, ts=int(time.time()) - 301), body)
    with pytest.raises(InteractionRejected, match="missing"):
        await registry.parse_interaction("slack", {}, body)
    tampered = click_body("signoff_reject")
    with pytest.raises(InteractionRejected, match="bad Slack signature"):
        await registry.parse_interaction("slack", signed(body), tampered)


async def test_parse_interaction_ignores_open_button_and_needs_secret():
    registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING)
    body = click_body("signoff_open")
    assert await registry.parse_interaction("slack", signed(body), body) is None
    registry = make_registry(bot_token=TOKEN)
    with pytest.raises(InteractionRejected, match="not enabled"):
        await registry.parse_interaction("slack", signed(body), body)


LINKS = {
    "approve": "https://signoff.example/decide/tok-approve",
    "reject": "https://signoff.example/decide/tok-reject",
}


def linked_event(kind: str = "assignment") -> NotificationEvent:
    return dataclasses.replace(make_event(kind), decision_links=LINKS)


async def post_linked(registry, address: str, kind: str = "assignment"):
    recipient = Recipient(user_id="u1", address=address)
    message = await registry.render("slack", linked_event(kind), recipient)
    return message, await registry.deliver("slack", message, recipient)


async def test_decision_links_reach_one_person_as_url_buttons_that_decide_nothing():
    async with RecordingHTTPServer(slack_ok) as slack:
        registry = make_registry(bot_token=TOKEN, api_base_url=slack.url)
        _, result = await post_linked(registry, "U0ALICE")
        (request,) = await slack.wait_for_requests(1)
    assert result.status is DeliveryStatus.DELIVERED, result
    body = request.json()
    assert body["channel"] == "U0ALICE"
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    buttons = {b["action_id"]: b for b in body["blocks"][-2]["elements"]}
    assert set(buttons) == {"signoff_link_approve", "signoff_link_reject", "signoff_open"}
    assert buttons["signoff_link_approve"]["url"] == LINKS["approve"]
    assert buttons["signoff_link_reject"]["url"] == LINKS["reject"]
    assert "value" not in buttons["signoff_link_approve"]  # nothing for a callback to act on
    assert "nothing is decided" in body["blocks"][-1]["elements"][0]["text"]
    # Slack reports a URL button's click to the interaction endpoint too: it decides nothing.
    registry = make_registry(bot_token=TOKEN, signing_secret=SIGNING)
    for action_id in ("signoff_link_approve", "signoff_link_reject"):
        click = click_body(action_id)
        assert await registry.parse_interaction("slack", signed(click), click) is None


def slack_or_webhook_ok(request: ReceivedRequest) -> HTTPReply:
    if request.path.startswith("/services/"):
        return HTTPReply(200, "ok")
    return slack_ok(request)


async def test_no_decision_links_where_others_could_read_them_or_buttons_decide():
    async with RecordingHTTPServer(slack_or_webhook_ok) as slack:
        for config, address, kind in (
            ({"bot_token": TOKEN}, "C0123", "assignment"),  # a channel
            ({"bot_token": TOKEN}, "G0123", "assignment"),  # a private channel
            ({"webhook_url": slack.url + "/services/T/B/X"}, "U0ALICE", "assignment"),
            ({"bot_token": TOKEN}, "U0ALICE", "decision"),  # asks nobody to decide
            ({"bot_token": TOKEN, "signing_secret": SIGNING}, "U0ALICE", "assignment"),
        ):
            registry = make_registry(**config, api_base_url=slack.url)
            message, result = await post_linked(registry, address, kind)
            assert result.ok, (config, address, result)
            text = json.dumps(message.blocks)
            assert "tok-approve" not in text and "tok-reject" not in text, (config, address)
        posted = await slack.wait_for_requests(5)
    assert all("tok-approve" not in r.body.decode() for r in posted)
