"""Rendering and MIME construction for the e-mail channel (no I/O here)."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Literal

from signoff.notify import NotificationEvent, Recipient, RenderedMessage, Secret

SUBJECT_PREFIX = {
    "assignment": "Action needed",
    "mention": "You were mentioned",
    "deadline_risk": "Deadline at risk",
    "escalation": "Escalated",
    "decision": "Decided",
    "failure": "Failed",
    "reminder": "Reminder",
}

DECISION_LABELS = {"approve": "Approve", "reject": "Reject"}
DECISION_NOTE = (
    "Each decision link opens a page where you confirm; nothing is decided before. "
    "A link works once, only for you."
)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """SMTP settings. ``security``: ``starttls`` (upgrade on connect, port 587), ``tls``
    (implicit TLS, port 465) or ``none`` (loopback relays only when authenticating)."""

    host: str
    from_address: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    from_name: str = "signoff"
    reply_to: str | None = None
    timeout_seconds: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None
    message_id_domain: str | None = None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def thread_key(tenant_id: str, item_id: str) -> str:
    return f"{tenant_id}:{item_id}"


def thread_root_id(tenant_id: str, item_id: str, domain: str) -> str:
    """The Message-ID every mail about one item refers to, so clients keep them in one thread."""
    return f"<item-{_hash(thread_key(tenant_id, item_id))}@{domain}>"


def render(event: NotificationEvent, recipient: Recipient) -> RenderedMessage:
    prefix = SUBJECT_PREFIX.get(event.kind, event.kind.replace("_", " ").capitalize())
    greeting = f"Hello {recipient.display_name}," if recipient.display_name else "Hello,"
    facts = [f"Priority: {event.priority}"]
    if event.risk:
        facts.append(f"Risk: {event.risk}")
    if event.due_at is not None:
        facts.append(f"Due: {event.due_at.strftime('%Y-%m-%d %H:%M %Z').strip()}")
    text_lines = [greeting, "", event.title]
    if event.summary:
        text_lines += ["", event.summary]
    text_lines += ["", *facts]
    if event.link:
        text_lines += ["", f"Open the item: {event.link}"]
    decisions = [
        (DECISION_LABELS[k], u) for k, u in event.decision_links.items() if k in DECISION_LABELS
    ]
    if decisions:
        text_lines += ["", *(f"{label}: {url}" for label, url in decisions), DECISION_NOTE]
    text_lines += ["", "-- ", "signoff"]
    e = html.escape
    parts = [f"<p>{e(greeting)}</p>", f"<h2>{e(event.title)}</h2>"]
    if event.summary:
        parts.append(f"<p>{e(event.summary)}</p>")
    parts.append("<ul>" + "".join(f"<li>{e(f)}</li>" for f in facts) + "</ul>")
    if event.link:
        parts.append(f'<p><a href="{e(event.link, quote=True)}">Open the item</a></p>')
    if decisions:
        anchors = " · ".join(
            f'<a href="{e(url, quote=True)}">{label}</a>' for label, url in decisions
        )
        parts.append(f"<p>{anchors}</p><p><small>{e(DECISION_NOTE)}</small></p>")
    body_html = '<!doctype html><html><body style="font-family:sans-serif">'
    body_html += "".join(parts) + "</body></html>"
    return RenderedMessage(
        event_id=event.id,
        subject=f"[{prefix}] {event.title}",
        text="\n".join(text_lines) + "\n",
        html=body_html,
        thread_key=thread_key(event.tenant_id, event.item_id),
        link=event.link,
        metadata={"tenant_id": event.tenant_id, "item_id": event.item_id},
    )


def build_message(
    message: RenderedMessage, recipient: Recipient, config: EmailConfig
) -> EmailMessage:
    """The MIME message. Message-ID is deterministic per (event, recipient), so a retried
    delivery carries the same id and receivers can drop the duplicate."""
    domain = config.message_id_domain or config.from_address.rpartition("@")[2]
    mail = EmailMessage()
    mail["From"] = formataddr((config.from_name, config.from_address))
    mail["To"] = formataddr((recipient.display_name, recipient.address))
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{_hash(message.event_id, recipient.user_id)}@{domain}>"
    root = f"<item-{_hash(message.thread_key or message.event_id)}@{domain}>"
    mail["In-Reply-To"] = root
    mail["References"] = root
    if config.reply_to:
        mail["Reply-To"] = config.reply_to
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Signoff-Event-Id"] = message.event_id
    if message.event_kind:
        mail["X-Signoff-Event-Kind"] = message.event_kind
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail
