"""The ``webhook`` channel: one signed JSON POST per notification to the recipient's URL."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from signoff import outbound
from signoff.notify import (
    ChannelCapabilities,
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    Secret,
    hookimpl,
)
from signoff_webhook.signature import SIGNATURE_HEADER, sign

CHANNEL = "webhook"
PAYLOAD_VERSION = 2
USER_AGENT = "signoff-webhook/0.1"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """``secrets``: signing keys, every one signs (put the new one first during a rotation).

    ``default_url`` is used when a recipient has no address.
    """

    secrets: tuple[Secret, ...]
    timeout_seconds: float = 10.0
    default_url: str | None = None
    verify_tls: bool = True


@hookimpl
def signoff_channels() -> list[ChannelSpec]:
    return [
        ChannelSpec(
            name=CHANNEL,
            config_class=WebhookConfig,
            capabilities=ChannelCapabilities(),
            description="Signed JSON POST (Signoff-Signature: t=...,v1=...)",
        )
    ]


@hookimpl
def signoff_validate_config(channel: str, config: Mapping[str, Any]) -> list[ConfigProblem]:
    if channel != CHANNEL:
        return []
    problems = []
    secrets = config["secrets"]
    if not secrets:
        problems.append(ConfigProblem("secrets", "at least one signing secret is required"))
    elif any(len(s.reveal()) < 16 for s in secrets):
        problems.append(ConfigProblem("secrets", "each secret needs at least 16 characters"))
    if config["timeout_seconds"] <= 0:
        problems.append(ConfigProblem("timeout_seconds", "must be positive"))
    url = config["default_url"]
    if url is not None and not url.startswith(("https://", "http://")):
        problems.append(ConfigProblem("default_url", "must be an http(s) URL"))
    return problems


def event_document(event: NotificationEvent) -> dict[str, Any]:
    """The JSON document a webhook receives (``type``/``version`` let receivers evolve)."""
    return {
        "type": "signoff.notification",
        "version": PAYLOAD_VERSION,
        "id": event.id,
        "kind": event.kind,
        "tenant_id": event.tenant_id,
        # Global ids, as `node(id:)` takes them (version 2; version 1 sent raw UUIDs).
        "item_id": event.item_node_id,
        "step_id": event.step_node_id,
        "title": event.title,
        "summary": event.summary,
        "priority": event.priority,
        "risk": event.risk,
        "due_at": event.due_at.isoformat() if event.due_at else None,
        "link": event.link,
        "occurred_at": event.occurred_at.isoformat(),
        "data": dict(event.data),
    }


@hookimpl
def signoff_render(
    channel: str, event: NotificationEvent, recipient: Recipient
) -> RenderedMessage | None:
    if channel != CHANNEL:
        return None
    return RenderedMessage(
        event_id=event.id,
        subject=event.title,
        text=event.summary or event.title,
        blocks=event_document(event),
        thread_key=f"{event.tenant_id}:{event.item_id}",
        link=event.link,
    )


MAX_CLIENTS = 256
"""Receivers' hosts whose HTTP clients are kept (least recently used ones are dropped)."""

_clients: OrderedDict[
    tuple[float, bool, str], tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]
] = OrderedDict()


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> str:
    """`scheme://host:port` of a receiver's URL (parsed once per URL, not per delivery)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


def _client(config: WebhookConfig, url: str) -> httpx.AsyncClient:
    """The HTTP client of this event loop for `url`'s scheme, host and port and `config`'s
    timeout and TLS choice: kept, so that connections to a receiver stay open and are reused
    and no delivery pays for building a client. One per receiver host, because the outbound
    guard connects to the address it checked: a pool shared by two host names on one address
    would reuse a TLS connection verified for the other name. Its pool does not limit how
    many requests are open at once (each request's timeout is the bound)."""
    loop = asyncio.get_running_loop()
    key = (config.timeout_seconds, config.verify_tls, _origin(url))
    held = _clients.get(key)
    if held is not None and held[0] is loop and not held[1].is_closed:
        _clients.move_to_end(key)
        return held[1]
    client = outbound.client(
        timeout=config.timeout_seconds,
        verify=config.verify_tls,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
    )
    _clients[key] = (loop, client)
    while len(_clients) > MAX_CLIENTS:
        _clients.popitem(last=False)  # its idle connections close when it is collected
    return client


def _body(message: RenderedMessage) -> bytes:
    document = message.blocks
    if not isinstance(document, dict | list):
        # Rendered by another plugin or the core fallback: send what there is.
        document = {
            "type": "signoff.notification",
            "version": PAYLOAD_VERSION,
            "id": message.event_id,
            "kind": message.event_kind,
            "title": message.subject,
            "text": message.text,
            "link": message.link,
        }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(response: httpx.Response) -> DeliveryResult:
    """2xx delivered; 408, 429 and 5xx retryable; any other status permanent."""
    summary = f"HTTP {response.status_code}: {response.text[:200]}"
    request_id = response.headers.get("x-request-id")
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult.delivered(summary, request_id)
    if status in (408, 429) or status >= 500:
        return DeliveryResult.retryable(
            f"receiver answered HTTP {status}", summary, _retry_after(response)
        )
    return DeliveryResult.permanent(f"receiver answered HTTP {status}", summary)


@hookimpl
async def signoff_deliver(
    channel: str, message: RenderedMessage, recipient: Recipient, config: WebhookConfig
) -> DeliveryResult | None:
    if channel != CHANNEL:
        return None
    url = recipient.address or config.default_url
    if not url:
        return DeliveryResult.permanent("recipient has no webhook URL")
    body = _body(message)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "signoff-event-id": message.event_id,
        "signoff-event-kind": message.event_kind or "",
        SIGNATURE_HEADER: sign(body, [s.reveal() for s in config.secrets]),
    }
    try:
        response = await _client(config, url).post(url, content=body, headers=headers)
    except outbound.OutboundRefused as exc:
        return DeliveryResult.permanent(str(exc))
    except httpx.TimeoutException:
        return DeliveryResult.retryable(f"timed out after {config.timeout_seconds:g}s")
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return DeliveryResult.permanent(f"invalid webhook URL: {exc}")
    except httpx.TransportError as exc:
        return DeliveryResult.retryable(f"{type(exc).__name__}: {exc}")
    return classify(response)
