"""Outbound safety: deliveries refuse loopback, private, link-local and other non-public
destinations (literal, after DNS resolution, and on redirects) unless allow-listed. Refusals
happen before any connection is opened, so these tests send no traffic to private ranges."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

import signoff_slack.plugin as slack_plugin
import signoff_webhook.plugin as webhook_plugin
from signoff import outbound
from signoff.notify import DeliveryStatus, NotificationEvent, NotifierRegistry, Recipient
from signoff.settings import Settings
from signoff.testing import HTTPReply, RecordingHTTPServer


def make_event() -> NotificationEvent:
    return NotificationEvent(
        id="evt-1",
        kind="assignment",
        tenant_id="t1",
        item_id="item-9",
        step_id="step-2",
        title="Approve deploy",
        summary="Prod deploy",
        priority="high",
        risk="medium",
        link="https://signoff.example/items/item-9",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def deny_all() -> None:
    outbound.configure(Settings(outbound_allow=()))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_unless_allow_listed(address):
    ip = ipaddress.ip_address(address)
    assert not outbound.OutboundPolicy().allows("example.test", ip)
    network = f"{address}/128" if ip.version == 6 else f"{address}/32"
    assert outbound.OutboundPolicy.from_entries([network]).allows("example.test", ip)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address):
    assert outbound.OutboundPolicy().allows("example.com", ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/hook", "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data/"],
)
async def test_a_private_literal_is_refused_before_connecting(url):
    deny_all()
    async with outbound.client(timeout=2) as client:
        with pytest.raises(outbound.OutboundRefused):
            await client.post(url, content=b"{}")


async def test_a_name_resolving_to_loopback_is_refused_after_resolution():
    deny_all()
    async with RecordingHTTPServer() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        async with outbound.client(timeout=2) as client:
            with pytest.raises(outbound.OutboundRefused, match="localhost"):
                await client.post(f"http://localhost:{port}/hook", content=b"{}")
        assert receiver.requests == []


async def test_an_allow_listed_host_name_is_reached_at_the_checked_address():
    outbound.configure(Settings(outbound_allow=("localhost",)))
    async with RecordingHTTPServer() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        async with outbound.client(timeout=5) as client:
            response = await client.post(f"http://localhost:{port}/hook", content=b"{}")
        (request,) = await receiver.wait_for_requests(1)
    assert response.status_code == 200
    assert request.headers["host"] == f"localhost:{port}"


async def test_a_redirect_to_a_refused_address_is_not_followed():
    """127.0.0.1 is allow-listed, 127.0.0.2 (loopback too) is not: the second hop is refused."""
    outbound.configure(Settings(outbound_allow=("127.0.0.1/32",)))
    async with RecordingHTTPServer() as target:
        port = target.url.rsplit(":", 1)[1]

        def redirect(request):
            return HTTPReply(302, b"", {"location": f"http://127.0.0.2:{port}/inside"})

        async with RecordingHTTPServer(redirect) as first:
            async with outbound.client(timeout=5, follow_redirects=True) as client:
                with pytest.raises(outbound.OutboundRefused, match="127.0.0.2"):
                    await client.get(first.url + "/start")
            assert len(first.requests) == 1
        assert target.requests == []


def webhook_registry() -> NotifierRegistry:
    registry = NotifierRegistry(deliver_timeout=10)
    registry.register(webhook_plugin, "webhook")
    registry.configure({"webhook": {"secrets": ["s" * 24], "timeout_seconds": 5}})
    return registry


def slack_registry(base_url: str) -> NotifierRegistry:
    registry = NotifierRegistry(deliver_timeout=10)
    registry.register(slack_plugin, "slack")
    registry.configure({"slack": {"bot_token": "xoxb-test", "api_base_url": base_url}})
    return registry


async def test_a_webhook_to_loopback_is_a_permanent_failure_and_sends_nothing():
    deny_all()
    async with RecordingHTTPServer() as receiver:
        registry = webhook_registry()
        recipient = Recipient(user_id="svc", address=receiver.url + "/hook")
        message = await registry.render("webhook", make_event(), recipient)
        result = await registry.deliver("webhook", message, recipient)
        assert receiver.requests == []
    assert result.status is DeliveryStatus.FAILED_PERMANENT, result
    assert "SIGNOFF_OUTBOUND_ALLOW" in (result.error or "")


async def test_slack_to_a_private_api_base_is_a_permanent_failure_and_sends_nothing():
    deny_all()
    async with RecordingHTTPServer() as receiver:
        registry = slack_registry(receiver.url)
        recipient = Recipient(user_id="u", address="U123")
        message = await registry.render("slack", make_event(), recipient)
        result = await registry.deliver("slack", message, recipient)
        assert receiver.requests == []
    assert result.status is DeliveryStatus.FAILED_PERMANENT, result
