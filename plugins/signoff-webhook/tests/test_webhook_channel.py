"""The webhook channel against a real receiver on 127.0.0.1 that verifies signatures."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

import signoff_webhook.plugin as webhook_plugin
from signoff.notify import DeliveryStatus, NotificationEvent, NotifierRegistry, Recipient
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer
from signoff_webhook import SignatureVerificationError, sign, verify_signature

OLD = "old-secret-0123456789"
NEW = "new-secret-9876543210"


class Receiver:
    """A receiver as the docs tell integrators to write one."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.seen: set[tuple[str, str]] = set()
        self.accepted: list[dict] = []

    def __call__(self, request: ReceivedRequest) -> HTTPReply:
        try:
            verify_signature(request.headers, request.body, self.secrets)
        except SignatureVerificationError as exc:
            return HTTPReply(400, exc.reason)
        key = (request.headers["signoff-event-id"], request.headers["signoff-signature"])
        if key in self.seen:
            return HTTPReply(409, "replayed")
        self.seen.add(key)
        self.accepted.append(json.loads(request.body))
        return HTTPReply(200, {"ok": True}, {"x-request-id": "rcv-1"})


def make_event(event_id: str = "evt-1") -> NotificationEvent:
    return NotificationEvent(
        id=event_id,
        kind="assignment",
        tenant_id="t1",
        item_id="item-9",
        step_id="step-2",
        item_node_id="V29ya2Zsb3dJdGVtOml0ZW0tOQ",
        step_node_id="U3RlcDpzdGVwLTI",
        title="Approve deploy",
        summary="Prod deploy of api v42",
        priority="high",
        risk="medium",
        link="https://signoff.example/items/item-9",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def make_registry(secrets: list[str], timeout: float = 10.0) -> NotifierRegistry:
    registry = NotifierRegistry(deliver_timeout=timeout + 5)
    registry.register(webhook_plugin, "webhook")
    registry.configure({"webhook": {"secrets": secrets, "timeout_seconds": timeout}})
    return registry


async def send(registry: NotifierRegistry, url: str, event_id: str = "evt-1"):
    recipient = Recipient(user_id="svc", address=url + "/hook")
    message = await registry.render("webhook", make_event(event_id), recipient)
    return await registry.deliver("webhook", message, recipient)


async def test_signed_delivery_is_verified_by_receiver():
    receiver = Receiver([NEW])
    async with RecordingHTTPServer(receiver) as server:
        result = await send(make_registry([NEW]), server.url)
        (request,) = await server.wait_for_requests(1)
    assert result.status is DeliveryStatus.DELIVERED, result
    assert result.provider_message_id == "rcv-1"
    assert result.duration_ms is not None
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["signoff-event-id"] == "evt-1"
    assert request.headers["signoff-event-kind"] == "assignment"
    assert request.headers["content-type"] == "application/json"
    doc = receiver.accepted[0]
    assert doc["id"] == "evt-1" and doc["item_id"] == "V29ya2Zsb3dJdGVtOml0ZW0tOQ"
    assert doc["step_id"] == "U3RlcDpzdGVwLTI"
    assert doc["link"] == "https://signoff.example/items/item-9"
    assert doc["occurred_at"] == "2026-01-02T03:04:05+00:00"


async def test_rotation_signs_with_every_secret():
    # The sender has rotated to NEW but still signs with OLD; receivers on either key accept.
    registry = make_registry([NEW, OLD])
    for receiver_secrets in ([OLD], [NEW]):
        receiver = Receiver(receiver_secrets)
        async with RecordingHTTPServer(receiver) as server:
            result = await send(registry, server.url)
            (request,) = await server.wait_for_requests(1)
        assert result.status is DeliveryStatus.DELIVERED
        assert request.headers["signoff-signature"].count("v1=") == 2


async def test_wrong_secret_is_rejected_and_permanent():
    async with RecordingHTTPServer(Receiver([OLD])) as server:
        result = await send(make_registry([NEW]), server.url)
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert "400" in result.error and "no signature matches" in result.response
    assert NEW not in repr(result)


async def test_receiver_rejects_replay_and_stale():
    receiver = Receiver([NEW])
    async with RecordingHTTPServer(receiver) as server:
        result = await send(make_registry([NEW]), server.url)
        (original,) = await server.wait_for_requests(1)
        assert result.ok
        async with httpx.AsyncClient() as client:
            replay = await client.post(
                server.url + "/hook", content=original.body, headers=dict(original.headers)
            )
            stale_headers = dict(original.headers)
            stale_headers["signoff-signature"] = sign(
                original.body, [NEW], timestamp=int(time.time()) - 301
            )
            stale = await client.post(
                server.url + "/hook", content=original.body, headers=stale_headers
            )
    assert replay.status_code == 409
    assert stale.status_code == 400 and "tolerance" in stale.text
    assert len(receiver.accepted) == 1


async def test_server_error_is_retryable_with_retry_after():
    async with RecordingHTTPServer(lambda r: HTTPReply(503, "busy", {"retry-after": "7"})) as s:
        result = await send(make_registry([NEW]), s.url)
    assert result.status is DeliveryStatus.FAILED_RETRYABLE
    assert result.retry_after == 7.0 and "503" in result.error


async def test_500_is_retryable_and_429_too():
    for status in (500, 429, 408):
        async with RecordingHTTPServer(lambda r, status=status: HTTPReply(status, "x")) as s:
            result = await send(make_registry([NEW]), s.url)
        assert result.status is DeliveryStatus.FAILED_RETRYABLE, status


async def test_timeout_is_retryable():
    release = asyncio.Event()

    async def never_answers(request: ReceivedRequest) -> HTTPReply:
        await release.wait()
        return HTTPReply(200)

    async with RecordingHTTPServer(never_answers) as server:
        result = await send(make_registry([NEW], timeout=0.3), server.url)
        release.set()
    assert result.status is DeliveryStatus.FAILED_RETRYABLE
    assert "timed out after 0.3s" in result.error


async def test_connection_refused_is_retryable():
    async with RecordingHTTPServer() as server:
        url = server.url
    result = await send(make_registry([NEW]), url)
    assert result.status is DeliveryStatus.FAILED_RETRYABLE


def test_verify_signature_unit():
    body = b'{"a":1}'
    header = sign(body, [NEW], timestamp=1000)
    assert verify_signature({"Signoff-Signature": header}, body, [OLD, NEW], now=1100) == 1000
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify_signature({"signoff-signature": header}, body, [NEW], now=1301)
    with pytest.raises(SignatureVerificationError, match="no signature"):
        verify_signature({"signoff-signature": header}, body + b" ", [NEW], now=1000)
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify_signature({}, body, [NEW])
    with pytest.raises(SignatureVerificationError, match="malformed"):
        verify_signature({"signoff-signature": "v1=abc"}, body, [NEW])


def test_config_validation_names_field():
    registry = NotifierRegistry()
    registry.register(webhook_plugin, "webhook")
    with pytest.raises(Exception) as info:
        registry.configure({"webhook": {"secrets": ["short"], "timeout_seconds": 0}})
    text = str(info.value)
    assert "plugin 'webhook', channel 'webhook', field 'secrets'" in text
    assert "field 'timeout_seconds'" in text
    assert "short" not in text


async def test_deliveries_to_a_receiver_that_keeps_connections_open_reuse_one():
    connections = 0
    bodies: list[bytes] = []

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                length = next(
                    int(line.split(":", 1)[1])
                    for line in lines
                    if line.lower().startswith("content-length:")
                )
                bodies.append(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(keep_alive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        registry = make_registry([NEW])
        results = [await send(registry, f"http://127.0.0.1:{port}", f"evt-{n}") for n in range(3)]
    finally:
        server.close()
    assert [r.status for r in results] == [DeliveryStatus.DELIVERED] * 3
    assert len(bodies) == 3
    assert connections == 1  # one kept-alive connection, not one per delivery
