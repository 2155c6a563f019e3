"""Plain value types exchanged between the core and notification channel plugins.

Plugins only ever see these: no database rows, no sessions, no ORM objects. Everything is
immutable so a plugin cannot change what the core later stores in the delivery log.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "EVENT_KINDS",
    "ChannelCapabilities",
    "ChannelSpec",
    "ConfigProblem",
    "DeliveryResult",
    "DeliveryStatus",
    "Interaction",
    "InteractionRejected",
    "NotificationEvent",
    "Recipient",
    "RenderedMessage",
    "Secret",
]

#: The kinds of notification the core emits. Plugins must tolerate kinds they do not know.
EVENT_KINDS: tuple[str, ...] = (
    "assignment",
    "mention",
    "deadline_risk",
    "escalation",
    "decision",
    "failure",
    "reminder",
    "alert",
)


class Secret:
    """A secret string (token, password, signing key) that never shows itself.

    ``repr()`` and ``str()`` give ``'***'``, so a secret that reaches a log line, an exception
    message or a dataclass repr is masked. Call :meth:`reveal` where the real value is needed.
    It deliberately is not a ``str`` subclass: string operations that would leak it fail loudly.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value. Use it only where it is sent, never where it is logged."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling (e.g. into a job queue) would copy the plain value somewhere untracked.
        raise TypeError("Secret values are not picklable")


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """Something a person should hear about. ``id`` is stable across retries (de-duplication)."""

    id: str
    kind: str
    tenant_id: str
    item_id: str
    title: str
    occurred_at: datetime
    step_id: str | None = None
    summary: str = ""
    priority: str = "normal"  # low | normal | high | urgent
    risk: str | None = None  # low | medium | high | critical
    due_at: datetime | None = None
    link: str | None = None  # where a person opens the item (absolute URL)
    data: Mapping[str, Any] = field(default_factory=dict)
    # The ids `node(id:)` of the GraphQL API takes (for bodies other systems read).
    item_node_id: str = ""
    step_node_id: str | None = None
    # Signed, single-use links for this recipient to decide the step ("approve"/"reject" →
    # absolute URL); each opens a confirmation page, so following one decides nothing. Empty
    # unless the operator enabled them for the channel (SIGNOFF_DECISION_LINK_CHANNELS).
    decision_links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who receives a message, and where on this channel (e-mail, Slack id, webhook URL)."""

    user_id: str
    address: str
    display_name: str = ""
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message ready for a channel.

    ``blocks`` carries structured channel content (Slack Block Kit, a webhook's JSON document);
    ``thread_key`` groups messages about one item into one conversation where the channel can.
    ``thread_parent_id`` is the ``provider_message_id`` of an earlier delivery with the same
    ``thread_key`` to the same recipient on the same channel; the core's pipeline fills it, on
    channels whose capabilities declare ``threading``, so a channel like Slack can reply in a
    thread. The registry sets ``event_id`` and ``event_kind``
    from the event after rendering.
    """

    event_id: str
    subject: str
    text: str
    html: str | None = None
    blocks: Any = None
    thread_key: str | None = None
    link: str | None = None
    event_kind: str | None = None
    thread_parent_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class DeliveryStatus(enum.StrEnum):
    """Outcome of one delivery attempt. The core retries ``failed_retryable`` only."""

    DELIVERED = "delivered"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of one delivery attempt, as the core stores it in the delivery log.

    Plugins fill ``status``, ``response`` (a short summary of what the provider said),
    ``provider_message_id``, ``error`` and ``retry_after`` (seconds, when the provider asked
    for a pause). The registry fills ``duration_ms``, ``channel`` and ``plugin``.
    """

    status: DeliveryStatus
    response: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: float | None = None
    channel: str | None = None
    plugin: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED

    @classmethod
    def delivered(
        cls, response: str | None = None, provider_message_id: str | None = None
    ) -> DeliveryResult:
        return cls(DeliveryStatus.DELIVERED, response, provider_message_id)

    @classmethod
    def retryable(
        cls, error: str, response: str | None = None, retry_after: float | None = None
    ) -> DeliveryResult:
        return cls(DeliveryStatus.FAILED_RETRYABLE, response, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, response: str | None = None) -> DeliveryResult:
        return cls(DeliveryStatus.FAILED_PERMANENT, response, error=error)


@dataclass(frozen=True, slots=True)
class Interaction:
    """A verified decision someone made inside a channel (e.g. a Slack button).

    ``idempotency_key`` is the same for repeated callbacks of one click, so the core applies it
    once. The core still checks the actor's permission: a channel only says who clicked.
    """

    action: Literal["approve", "reject"]
    item_id: str
    step_id: str | None
    actor_external_id: str
    idempotency_key: str
    reason: str | None = None
    channel: str | None = None


class InteractionRejected(Exception):
    """An interactive callback failed verification (bad signature, stale timestamp, bad body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What a channel can do beyond plain text."""

    interactive_actions: bool = False
    threading: bool = False
    html: bool = False


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A channel a plugin provides.

    ``config_class`` is a frozen dataclass; the registry builds it from operator configuration,
    wrapping fields annotated ``Secret`` (or ``Secret | None``, ``tuple[Secret, ...]``).
    """

    name: str
    config_class: type
    capabilities: ChannelCapabilities = ChannelCapabilities()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a channel's configuration; ``field`` is None for the whole config."""

    field: str | None
    message: str
