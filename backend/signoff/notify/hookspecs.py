"""The notification channel contract: the hooks a channel plugin implements.

Each hook's docstring starts with one line saying what it is for, then its calling semantics.
The registry (``signoff.notify.registry``) calls implementations one at a time, awaits
coroutines, isolates exceptions and applies timeouts; ``render``, ``deliver`` and
``parse_interaction`` go to the plugin that declared the channel (see the docs,
``docs/plugins/writing-a-channel.md``). The run-time hooks (render, deliver,
parse_interaction) may be ``async def``; the start-up hooks (channels, validate_config) are
plain functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

from signoff.notify.model import (
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    Interaction,
    NotificationEvent,
    Recipient,
    RenderedMessage,
)

PROJECT_NAME = "signoff"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def signoff_channels() -> list[ChannelSpec]:  # type: ignore[empty-body]
    """Declare the channels this plugin provides.

    Called for every plugin at load; results are collected. A channel name must be unique
    across plugins. The declaring plugin owns the channel: its ``signoff_deliver`` and
    ``signoff_parse_interaction`` are the ones called for it.
    """


@hookspec
def signoff_validate_config(  # type: ignore[empty-body]
    channel: str, config: Mapping[str, Any]
) -> list[ConfigProblem]:
    """Check a channel's configuration at start-up beyond its field types.

    Called on the owning plugin only, after the registry coerced field types (defaults filled,
    secrets wrapped in ``Secret``). Return an empty list when the configuration is usable.
    Problems become one start-up ``ConfigError`` naming plugin, channel and field.
    """


@hookspec(firstresult=True)
def signoff_render(  # type: ignore[empty-body]
    channel: str, event: NotificationEvent, recipient: Recipient, config: Any
) -> RenderedMessage | None:
    """Render a notification event for one recipient on one channel.

    firstresult: other plugins are asked first (so a template plugin can override a channel's
    look), the owning plugin last; the first non-None answer wins. Return None for channels
    you do not render. ``config`` is the channel's typed config. When nobody renders, the core
    falls back to a plain-text rendering.
    """


@hookspec(firstresult=True)
def signoff_deliver(  # type: ignore[empty-body]
    channel: str, message: RenderedMessage, recipient: Recipient, config: Any
) -> DeliveryResult | None:
    """Deliver a rendered message to one recipient; one attempt, no retries.

    firstresult, owning plugin only; ``config`` is the channel's typed config instance.
    Return a ``DeliveryResult``. Raising or exceeding the timeout counts as
    ``failed_retryable``; retries, backoff and de-duplication stay in the core.
    """


@hookspec(firstresult=True)
def signoff_parse_interaction(  # type: ignore[empty-body]
    channel: str, headers: Mapping[str, str], body: bytes, config: Any
) -> Interaction | None:
    """Verify and parse an interactive callback (e.g. a Slack button) into an ``Interaction``.

    firstresult, owning plugin only; ``headers`` have lower-case names, ``body`` is the raw
    request body. Raise ``InteractionRejected`` for a bad signature, a stale timestamp or a
    malformed body; return None for a callback that carries no decision (it is acknowledged).
    """
