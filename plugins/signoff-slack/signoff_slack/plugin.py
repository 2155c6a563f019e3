"""The ``slack`` channel: ``chat.postMessage`` with a bot token, or an incoming webhook."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from signoff import outbound
from signoff.notify import (
    ChannelCapabilities,
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    Interaction,
    InteractionRejected,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    Secret,
    hookimpl,
)
from signoff_slack.interactions import (
    APPROVE_ACTION_ID,
    REJECT_ACTION_ID,
    button_value,
    parse_block_actions,
    verify_slack_signature,
)

CHANNEL = "slack"
#: Kinds that ask someone to decide: their messages get Approve/Reject buttons.
DECISION_KINDS = frozenset({"assignment", "reminder", "deadline_risk", "escalation"})
#: Addresses that reach one person only: a user id (``U…``, ``W…``) or a direct-message
#: conversation (``D…``). Decision links go nowhere else: a link decides as the person it was
#: made for, so in a channel (or an incoming webhook's fixed channel) anyone reading could use it.
PERSONAL_ADDRESS_PREFIXES = ("U", "W", "D")
#: URL buttons of decision links: Slack opens the confirmation page; they decide nothing here.
LINK_BUTTONS = {
    "approve": ("signoff_link_approve", "Approve…"),
    "reject": ("signoff_link_reject", "Reject…"),
}
LINK_NOTE = "Approve… and Reject… open a page where you confirm; nothing is decided before."
#: ``ok: false`` errors that retrying cannot fix; every other error is retried.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "missing_scope",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "user_not_found",
        "invalid_payload",
        "no_service",
    }
)


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """Either ``bot_token`` (Web API; recipient address = channel or user id) or
    ``webhook_url`` (incoming webhook; posts to its fixed channel). ``signing_secret`` enables
    the Approve/Reject buttons and verifies their callbacks."""

    bot_token: Secret | None = None
    webhook_url: Secret | None = None
    signing_secret: Secret | None = None
    api_base_url: str = "https://slack.com/api"
    timeout_seconds: float = 10.0
    timestamp_tolerance_seconds: int = 300


@hookimpl
def signoff_channels() -> list[ChannelSpec]:
    return [
        ChannelSpec(
            name=CHANNEL,
            config_class=SlackConfig,
            capabilities=ChannelCapabilities(interactive_actions=True, threading=True),
            description="Slack Block Kit messages with Approve/Reject buttons",
        )
    ]


@hookimpl
def signoff_validate_config(channel: str, config: Mapping[str, Any]) -> list[ConfigProblem]:
    if channel != CHANNEL:
        return []
    problems = []
    token, webhook = config["bot_token"], config["webhook_url"]
    if bool(token) == bool(webhook):
        problems.append(ConfigProblem("bot_token", "set exactly one of bot_token or webhook_url"))
    if token and not token.reveal().startswith("xox"):
        problems.append(ConfigProblem("bot_token", "does not look like a Slack token (xox...)"))
    if webhook and not webhook.reveal().startswith(("https://", "http://")):
        problems.append(ConfigProblem("webhook_url", "must be an http(s) URL"))
    if not config["api_base_url"].startswith(("https://", "http://")):
        problems.append(ConfigProblem("api_base_url", "must be an http(s) URL"))
    if config["timeout_seconds"] <= 0:
        problems.append(ConfigProblem("timeout_seconds", "must be positive"))
    return problems


def _escape(text: str) -> str:
    # Slack mrkdwn control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def personal(recipient: Recipient, config: SlackConfig | None) -> bool:
    """Whether a message to `recipient` reaches them alone: a bot's direct message (never an
    incoming webhook, which posts to its fixed channel)."""
    return (
        config is not None
        and config.webhook_url is None
        and recipient.address.startswith(PERSONAL_ADDRESS_PREFIXES)
    )


def render_blocks(
    event: NotificationEvent, interactive: bool, links: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Block Kit for an event; Approve/Reject buttons when the event asks for a decision (the
    interactive ones when `interactive`, else URL buttons to the decision `links`, if any)."""
    text = f"*{_escape(event.title)}*"
    if event.summary:
        text += f"\n{_escape(event.summary)}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    facts = [f"{event.kind.replace('_', ' ')}", f"priority: {event.priority}"]
    if event.risk:
        facts.append(f"risk: {event.risk}")
    if event.due_at is not None:
        facts.append(
            f"due <!date^{int(event.due_at.timestamp())}^{{date_short_pretty}} {{time}}|"
            f"{event.due_at.isoformat()}>"
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]})
    buttons: list[dict[str, Any]] = []
    if interactive and event.kind in DECISION_KINDS:
        value = button_value(event.item_id, event.step_id)
        buttons += [
            {
                "type": "button",
                "action_id": APPROVE_ACTION_ID,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION_ID,
                "text": {"type": "plain_text", "text": "Reject"},
                "style": "danger",
                "value": value,
            },
        ]
    elif links and event.kind in DECISION_KINDS:
        buttons += [
            {
                "type": "button",
                "action_id": LINK_BUTTONS[outcome][0],
                "text": {"type": "plain_text", "text": LINK_BUTTONS[outcome][1]},
                "url": links[outcome],
            }
            for outcome in ("approve", "reject")
            if outcome in links
        ]
    if event.link:
        buttons.append(
            {
                "type": "button",
                "action_id": "signoff_open",
                "text": {"type": "plain_text", "text": "Open"},
                "url": event.link,
            }
        )
    if buttons:
        blocks.append(
            {"type": "actions", "block_id": f"signoff:{event.id}"[:255], "elements": buttons}
        )
    if any(b["action_id"] in _LINK_ACTION_IDS for b in buttons):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": LINK_NOTE}]})
    return blocks


_LINK_ACTION_IDS = {action_id for action_id, _ in LINK_BUTTONS.values()}


@hookimpl
def signoff_render(
    channel: str, event: NotificationEvent, recipient: Recipient, config: SlackConfig | None
) -> RenderedMessage | None:
    if channel != CHANNEL:
        return None
    interactive = bool(config and config.signing_secret)
    fallback = f"{event.title}" + (f" — {event.link}" if event.link else "")
    # Decision links only where they reach their one recipient; the interactive buttons,
    # verified by Slack's signature, replace them where interactivity is on.
    links = event.decision_links if personal(recipient, config) else None
    return RenderedMessage(
        event_id=event.id,
        subject=event.title,
        text=fallback,
        blocks=render_blocks(event, interactive, links),
        thread_key=f"{event.tenant_id}:{event.item_id}",
        link=event.link,
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _result(response: httpx.Response, webhook: bool) -> DeliveryResult:
    status = response.status_code
    summary = f"HTTP {status}: {response.text[:300]}"
    if status == 429:
        return DeliveryResult.retryable("rate limited by Slack", summary, _retry_after(response))
    if status >= 500:
        return DeliveryResult.retryable(f"Slack answered HTTP {status}", summary)
    if webhook:
        # Incoming webhooks answer "ok" or an HTTP 4xx with an error code as text.
        if status == 200:
            return DeliveryResult.delivered(summary)
        code = response.text.strip()
        if code in PERMANENT_ERRORS or status in (400, 403, 404, 410):
            return DeliveryResult.permanent(f"Slack webhook error: {code}", summary)
        return DeliveryResult.retryable(f"Slack webhook error: {code}", summary)
    try:
        data = response.json()
    except ValueError:
        return DeliveryResult.retryable(f"Slack answered HTTP {status} without JSON", summary)
    if status == 200 and data.get("ok"):
        return DeliveryResult.delivered(summary, f"{data.get('channel')}:{data.get('ts')}")
    error = str(data.get("error") or f"HTTP {status}")
    if error in PERMANENT_ERRORS:
        return DeliveryResult.permanent(f"Slack error: {error}", summary)
    return DeliveryResult.retryable(f"Slack error: {error}", summary, _retry_after(response))


@hookimpl
async def signoff_deliver(
    channel: str, message: RenderedMessage, recipient: Recipient, config: SlackConfig
) -> DeliveryResult | None:
    if channel != CHANNEL:
        return None
    # No previews: Slack would fetch the links (harmless, a GET decides nothing, but useless).
    payload: dict[str, Any] = {"text": message.text, "unfurl_links": False, "unfurl_media": False}
    if message.blocks:
        payload["blocks"] = message.blocks
    headers = {"content-type": "application/json; charset=utf-8"}
    if config.webhook_url is not None:
        url = config.webhook_url.reveal()
    else:
        assert config.bot_token is not None  # validate_config guarantees one of them
        url = config.api_base_url.rstrip("/") + "/chat.postMessage"
        headers["authorization"] = f"Bearer {config.bot_token.reveal()}"
        payload["channel"] = recipient.address
        if message.thread_parent_id and ":" in message.thread_parent_id:
            payload["thread_ts"] = message.thread_parent_id.split(":", 1)[1]
    try:
        async with outbound.client(timeout=config.timeout_seconds) as client:
            response = await client.post(url, content=json.dumps(payload), headers=headers)
    except outbound.OutboundRefused as exc:
        return DeliveryResult.permanent(str(exc))
    except httpx.TimeoutException:
        return DeliveryResult.retryable(f"timed out after {config.timeout_seconds:g}s")
    except httpx.TransportError as exc:
        return DeliveryResult.retryable(f"{type(exc).__name__}: {exc}")
    return _result(response, webhook=config.webhook_url is not None)


@hookimpl
def signoff_parse_interaction(
    channel: str, headers: Mapping[str, str], body: bytes, config: SlackConfig
) -> Interaction | None:
    if channel != CHANNEL:
        return None
    if config.signing_secret is None:
        raise InteractionRejected("Slack interactivity is not enabled (no signing_secret)")
    verify_slack_signature(headers, body, config.signing_secret, config.timestamp_tolerance_seconds)
    return parse_block_actions(body)
