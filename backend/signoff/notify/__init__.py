"""Notifications: the channel plugin contract (pluggy hookspecs), value types and registry.

Plugin authors need only this module::

    from signoff.notify import ChannelSpec, DeliveryResult, RenderedMessage, hookimpl
"""

from signoff.notify.hookspecs import PROJECT_NAME, hookimpl, hookspec
from signoff.notify.model import (
    EVENT_KINDS,
    ChannelCapabilities,
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    DeliveryStatus,
    Interaction,
    InteractionRejected,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    Secret,
)
from signoff.notify.registry import (
    ENTRY_POINT_GROUP,
    ChannelConfigProblem,
    ChannelNotConfigured,
    ConfigError,
    NotifierRegistry,
    PluginContractError,
    PluginLoadError,
    RegistryError,
    UnknownChannel,
    fallback_message,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EVENT_KINDS",
    "PROJECT_NAME",
    "ChannelCapabilities",
    "ChannelConfigProblem",
    "ChannelNotConfigured",
    "ChannelSpec",
    "ConfigError",
    "ConfigProblem",
    "DeliveryResult",
    "DeliveryStatus",
    "Interaction",
    "InteractionRejected",
    "NotificationEvent",
    "NotifierRegistry",
    "PluginContractError",
    "PluginLoadError",
    "Recipient",
    "RegistryError",
    "RenderedMessage",
    "Secret",
    "UnknownChannel",
    "fallback_message",
    "hookimpl",
    "hookspec",
]
