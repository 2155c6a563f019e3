"""The ``email`` channel: SMTP through ``smtplib`` in a worker thread."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from signoff.notify import (
    ChannelCapabilities,
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    hookimpl,
)
from signoff_email.message import EmailConfig, build_message, render

CHANNEL = "email"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@hookimpl
def signoff_channels() -> list[ChannelSpec]:
    return [
        ChannelSpec(
            name=CHANNEL,
            config_class=EmailConfig,
            capabilities=ChannelCapabilities(threading=True, html=True),
            description="E-mail over SMTP, one thread per item",
        )
    ]


@hookimpl
def signoff_validate_config(channel: str, config: Mapping[str, Any]) -> list[ConfigProblem]:
    if channel != CHANNEL:
        return []
    problems = []
    if "@" not in config["from_address"]:
        problems.append(ConfigProblem("from_address", "must be an e-mail address"))
    if not 0 < config["port"] < 65536:
        problems.append(ConfigProblem("port", "must be between 1 and 65535"))
    if config["username"] and not config["password"]:
        problems.append(ConfigProblem("password", "required when username is set"))
    if config["password"] and not config["username"]:
        problems.append(ConfigProblem("username", "required when password is set"))
    if (
        config["username"]
        and config["security"] == "none"
        and config["host"].lower() not in _LOOPBACK
    ):
        problems.append(
            ConfigProblem(
                "security",
                "refusing to send SMTP credentials unencrypted; use starttls or tls",
            )
        )
    if config["timeout_seconds"] <= 0:
        problems.append(ConfigProblem("timeout_seconds", "must be positive"))
    return problems


@hookimpl
def signoff_render(
    channel: str, event: NotificationEvent, recipient: Recipient
) -> RenderedMessage | None:
    if channel != CHANNEL:
        return None
    return render(event, recipient)


def _tls_context(config: EmailConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send(mail: EmailMessage, config: EmailConfig) -> None:
    """Send one message (blocking: run it in a worker thread)."""
    smtp: smtplib.SMTP
    if config.security == "tls":
        smtp = smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout_seconds, context=_tls_context(config)
        )
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
    with smtp:
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=_tls_context(config))
            smtp.ehlo()
        if config.username and config.password is not None:
            smtp.login(config.username, config.password.reveal())
        refused = smtp.send_message(mail)
        if refused:  # one recipient per message: a partial refusal is a refusal
            raise smtplib.SMTPRecipientsRefused(refused)


def _classify(exc: Exception) -> DeliveryResult:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(f"{c} {m.decode(errors='replace')}" for c, m in exc.recipients.values())
        if codes and all(400 <= c < 500 for c in codes):
            return DeliveryResult.retryable(f"recipient refused: {text}")
        return DeliveryResult.permanent(f"recipient refused: {text}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryResult.permanent(f"SMTP authentication failed ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryResult.permanent(f"SMTP server does not support: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        reply = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        detail = f"SMTP {exc.smtp_code} {reply}"
        if 500 <= exc.smtp_code < 600:
            return DeliveryResult.permanent(detail)
        return DeliveryResult.retryable(detail)
    if isinstance(exc, TimeoutError):
        return DeliveryResult.retryable("SMTP server timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryResult.permanent(f"TLS certificate rejected: {exc.verify_message}")
    # Connection refused/reset, DNS failure, server disconnects: try again later.
    return DeliveryResult.retryable(f"{type(exc).__name__}: {exc}")


@hookimpl
async def signoff_deliver(
    channel: str, message: RenderedMessage, recipient: Recipient, config: EmailConfig
) -> DeliveryResult | None:
    if channel != CHANNEL:
        return None
    if "@" not in recipient.address:
        return DeliveryResult.permanent("recipient has no e-mail address")
    mail = build_message(message, recipient, config)
    try:
        await asyncio.to_thread(send, mail, config)
    except (smtplib.SMTPException, OSError) as exc:
        return _classify(exc)
    return DeliveryResult.delivered(
        f"accepted by {config.host}:{config.port}", str(mail["Message-ID"])
    )
