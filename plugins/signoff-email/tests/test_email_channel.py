"""The e-mail channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import signoff_email.plugin as email_plugin
from signoff.notify import (
    ConfigError,
    DeliveryStatus,
    NotificationEvent,
    NotifierRegistry,
    Recipient,
)
from signoff_email import thread_root_id

# aiosmtpd warns when a test server allows AUTH without TLS; that is the point of the test.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Inbox:
    """aiosmtpd handler keeping every received message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK queued as q1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_server(inbox: Inbox, **kwargs) -> Iterator[int]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def plain_smtp(inbox: Inbox) -> Iterator[int]:
    yield from smtp_server(inbox)


def make_registry(**config) -> NotifierRegistry:
    registry = NotifierRegistry()
    registry.register(email_plugin, "email")
    base = {
        "host": "127.0.0.1",
        "from_address": "signoff@example.org",
        "security": "none",
        "timeout_seconds": 5,
    }
    registry.configure({"email": {**base, **config}})
    return registry


def make_event(event_id: str, kind: str = "assignment", item_id: str = "item-9"):
    return NotificationEvent(
        id=event_id,
        kind=kind,
        tenant_id="t1",
        item_id=item_id,
        step_id="step-2",
        title="Approve <deploy>",
        summary="Prod deploy of api v42",
        priority="high",
        risk="medium",
        due_at=dt.datetime(2026, 1, 3, 12, 0, tzinfo=dt.UTC),
        link="https://signoff.example/items/item-9?tab=steps&x=1",
        occurred_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )


ALICE = Recipient(user_id="u-alice", address="alice@example.com", display_name="Alice A")


async def send(registry, event, recipient=ALICE):
    message = await registry.render("email", event, recipient)
    return await registry.deliver("email", message, recipient)


async def test_delivers_both_bodies_and_headers(inbox, plain_smtp):
    registry = make_registry(port=plain_smtp, from_name="Signoff Bot", reply_to="ops@example.org")
    result = await send(registry, make_event("evt-1"))
    assert result.status is DeliveryStatus.DELIVERED, result
    (mail,) = inbox.messages
    assert inbox.envelopes == [("signoff@example.org", ["alice@example.com"])]
    assert mail["From"] == "Signoff Bot <signoff@example.org>"
    assert mail["To"] == "Alice A <alice@example.com>"
    assert mail["Subject"] == "[Action needed] Approve <deploy>"
    assert mail["Reply-To"] == "ops@example.org"
    assert mail["X-Signoff-Event-Id"] == "evt-1"
    assert mail["X-Signoff-Event-Kind"] == "assignment"
    assert mail["Message-ID"] == result.provider_message_id
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Hello Alice A," in text and "Prod deploy of api v42" in text
    assert "Open the item: https://signoff.example/items/item-9?tab=steps&x=1" in text
    assert "&lt;deploy&gt;" in html
    assert 'href="https://signoff.example/items/item-9?tab=steps&amp;x=1"' in html


async def test_decision_links_are_listed_with_what_they_do(inbox, plain_smtp):
    registry = make_registry(port=plain_smtp)
    links = {
        "approve": "https://signoff.example/decide/a.b.c?x=1&y=2",
        "reject": "https://signoff.example/decide/d.e.f",
    }
    event = dataclasses.replace(make_event("evt-links"), decision_links=links)
    result = await send(registry, event)
    assert result.status is DeliveryStatus.DELIVERED, result
    (mail,) = inbox.messages
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert f"Approve: {links['approve']}" in text and f"Reject: {links['reject']}" in text
    assert "nothing is decided before" in text
    assert 'href="https://signoff.example/decide/a.b.c?x=1&amp;y=2">Approve</a>' in html
    # without links (the default), no decision lines
    plain = (await registry.render("email", make_event("evt-plain"), ALICE)).text
    assert "Approve:" not in plain and "confirm" not in plain


async def test_one_item_one_thread(inbox, plain_smtp):
    registry = make_registry(port=plain_smtp)
    await send(registry, make_event("evt-1"))
    await send(registry, make_event("evt-2", kind="reminder"))
    await send(registry, make_event("evt-3", item_id="other-item"))
    first, second, other = inbox.messages
    root = thread_root_id("t1", "item-9", "example.org")
    for mail in (first, second):
        assert mail["In-Reply-To"] == root and mail["References"] == root
    assert other["References"] != root
    assert len({m["Message-ID"] for m in inbox.messages}) == 3


async def test_retry_reuses_message_id(inbox, plain_smtp):
    registry = make_registry(port=plain_smtp)
    first = await send(registry, make_event("evt-1"))
    again = await send(registry, make_event("evt-1"))
    assert first.provider_message_id == again.provider_message_id


async def test_auth_login(inbox):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"pw-123456"
        logins.append((mechanism, auth_data.login, ok))
        return AuthResult(success=ok, handled=False)

    for port in smtp_server(
        inbox, authenticator=authenticator, auth_require_tls=False, auth_required=True
    ):
        good = await send(
            make_registry(port=port, username="bot", password="pw-123456"), make_event("e1")
        )
        bad = await send(
            make_registry(port=port, username="bot", password="wrong"), make_event("e2")
        )
        anonymous = await send(make_registry(port=port), make_event("e3"))
    assert good.ok, good
    assert bad.status is DeliveryStatus.FAILED_PERMANENT and "authentication" in bad.error
    assert "wrong" not in (bad.error or "") + (bad.response or "")
    assert anonymous.status is DeliveryStatus.FAILED_PERMANENT  # 530 auth required
    assert logins[0][2] is True and not any(ok for _, _, ok in logins[1:])
    assert len(inbox.messages) == 1


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_starttls_with_auth(inbox, tmp_path):
    cert, key = make_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.password == b"pw-123456", handled=False)

    for port in smtp_server(
        inbox,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    ):
        config = {"port": port, "security": "starttls", "username": "bot", "password": "pw-123456"}
        verified = await send(make_registry(**config, ca_file=str(cert)), make_event("e1"))
        untrusted = await send(make_registry(**config), make_event("e2"))
        plain = await send(make_registry(port=port, security="none"), make_event("e3"))
    assert verified.ok, verified
    assert untrusted.status is DeliveryStatus.FAILED_PERMANENT and "certificate" in untrusted.error
    assert not plain.ok  # the server insists on STARTTLS
    assert len(inbox.messages) == 1


async def test_connection_refused_is_retryable():
    result = await send(make_registry(port=free_port()), make_event("e1"))
    assert result.status is DeliveryStatus.FAILED_RETRYABLE


def test_auth_config_validation():
    registry = NotifierRegistry()
    registry.register(email_plugin, "email")
    base = {"host": "smtp.example.org", "from_address": "signoff@example.org"}
    with pytest.raises(ConfigError) as info:
        registry.configure({"email": {**base, "username": "bot"}})
    assert "plugin 'email', channel 'email', field 'password': required" in str(info.value)
    with pytest.raises(ConfigError, match="field 'username'"):
        registry.configure({"email": {**base, "password": "s3cret-pw"}})
    with pytest.raises(ConfigError) as info:
        registry.configure(
            {"email": {**base, "username": "bot", "password": "s3cret-pw", "security": "none"}}
        )
    assert "field 'security'" in str(info.value) and "s3cret-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="field 'security': must be one of"):
        registry.configure({"email": {**base, "security": "ssl"}})
    with pytest.raises(ConfigError, match="field 'host': required"):
        registry.configure({"email": {"from_address": "a@b"}})
    config = registry.configure(
        {"email": {**base, "username": "bot", "password": "s3cret-pw", "port": "465"}}
    )["email"]
    assert config.port == 465 and "s3cret-pw" not in repr(config)
