"""The notifier plugin manager: discovery, channel ownership, typed config and isolated calls.

pluggy is synchronous and one raising implementation aborts a whole hook call, so the run-time
hooks are never called through ``pm.hook``: the registry calls each implementation on its own,
awaits coroutines, applies a timeout and turns failures into data. Dispatch is keyed by channel
ownership: the plugin whose ``signoff_channels`` declared a channel is the only one asked to
deliver on it or to parse its callbacks; rendering asks other plugins first, the owner last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import inspect
import logging
import re
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from signoff.notify import hookspecs
from signoff.notify.model import (
    ChannelSpec,
    ConfigProblem,
    DeliveryResult,
    Interaction,
    InteractionRejected,
    NotificationEvent,
    Recipient,
    RenderedMessage,
    Secret,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChannelConfigProblem",
    "ChannelNotConfigured",
    "ConfigError",
    "NotifierRegistry",
    "PluginContractError",
    "PluginLoadError",
    "RegistryError",
    "UnknownChannel",
    "build_config",
    "fallback_message",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "signoff.notifiers"
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_MAX_TEXT = 2000


class RegistryError(Exception):
    """Base class of the registry's own errors."""


class PluginLoadError(RegistryError):
    """A plugin that could not be loaded or broke the contract; the others still load."""

    def __init__(self, plugin_name: str, error: str) -> None:
        super().__init__(f"notifier plugin {plugin_name!r} not loaded: {error}")
        self.plugin_name = plugin_name
        self.error = error


class PluginContractError(RegistryError):
    """Registered plugins implement hooks that do not exist (usually a misspelt name)."""


class UnknownChannel(RegistryError):
    """No loaded plugin declares this channel."""


class ChannelNotConfigured(RegistryError):
    """The channel exists but ``configure`` has not enabled it."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelConfigProblem:
    """A configuration problem with the plugin and channel it belongs to."""

    plugin: str
    channel: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"plugin {self.plugin!r}, channel {self.channel!r}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.message}"


class ConfigError(RegistryError):
    """Start-up error: one or more channels are misconfigured. Lists every problem."""

    def __init__(self, problems: list[ChannelConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid notification channel configuration:\n{lines}")


# --------------------------------------------------------------------------- typed config


def _coerce(value: Any, tp: Any) -> Any:
    """Coerce one configuration value (often a string from the environment) to ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ValueError("must not be empty")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else "; ".join(errors))
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list")
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type) for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping")
        return dict(value)
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value)
        raise ValueError("must be a string")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("must be a boolean")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise ValueError("must be an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError("must be a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError("must be a string")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ValueError(f"must be a {tp.__name__}")
    return value


def build_config(config_class: type, raw: Mapping[str, Any]) -> tuple[Any, list[ConfigProblem]]:
    """Build a channel's typed config from a raw mapping; returns (config or None, problems)."""
    if not dataclasses.is_dataclass(config_class):
        return None, [ConfigProblem(None, f"{config_class!r} is not a dataclass")]
    hints = typing.get_type_hints(config_class)
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    problems = [ConfigProblem(key, "unknown field") for key in raw if key not in fields]
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(ConfigProblem(name, "required"))
            continue
        try:
            values[name] = _coerce(raw[name], hints.get(name, Any))
        except ValueError as exc:
            problems.append(ConfigProblem(name, str(exc)))
    if problems:
        return None, problems
    try:
        return config_class(**values), []
    except (TypeError, ValueError) as exc:
        return None, [ConfigProblem(None, str(exc))]


def _config_as_mapping(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _secrets_of(config: Any) -> list[str]:
    found: list[str] = []
    if config is None or not dataclasses.is_dataclass(config):
        return found
    for value in _config_as_mapping(config).values():
        items = value if isinstance(value, list | tuple) else (value,)
        found.extend(v.reveal() for v in items if isinstance(v, Secret) and v)
    return found


# --------------------------------------------------------------------------- rendering


def fallback_message(event: NotificationEvent, recipient: Recipient) -> RenderedMessage:
    """The plain-text rendering used when no plugin renders an event for a channel."""
    lines = [event.title]
    if event.summary:
        lines += ["", event.summary]
    if event.due_at is not None:
        lines += ["", f"Due: {event.due_at.isoformat()}"]
    if event.link:
        lines += ["", event.link]
    return RenderedMessage(
        event_id=event.id,
        subject=f"[{event.kind}] {event.title}",
        text="\n".join(lines),
        thread_key=f"{event.tenant_id}:{event.item_id}",
        link=event.link,
        event_kind=event.kind,
    )


# --------------------------------------------------------------------------- the registry


def _clip(text: str | None, secrets: Iterable[str], limit: int = _MAX_TEXT) -> str | None:
    """Mask known secrets and cap the length of text bound for logs and the delivery log."""
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _invoke(
    function: Callable[..., Any], args: list[Any], seconds: float, *, offload: bool
) -> Any:
    """Call a hook implementation, awaiting what it returns, within `seconds`.

    `asyncio.timeout` rather than `wait_for`: no task of its own per call (a delivery makes
    several). A sync implementation that is not offloaded runs on the loop, where no timeout
    could interrupt it anyway."""
    if inspect.iscoroutinefunction(function):
        async with asyncio.timeout(seconds):
            return await function(*args)
    if offload:
        # A blocking sync implementation (smtplib, requests) must not stall the event loop.
        async with asyncio.timeout(seconds):
            result = await asyncio.to_thread(function, *args)
    else:
        result = function(*args)
    if inspect.isawaitable(result):
        async with asyncio.timeout(seconds):
            result = await result
    return result


class NotifierRegistry:
    """Loads channel plugins and calls them safely.

    Timeouts are in seconds. A sync ``signoff_deliver`` runs in a worker thread; a timed-out
    thread cannot be killed and finishes in the background, its result discarded.
    """

    def __init__(
        self,
        *,
        deliver_timeout: float = 30.0,
        render_timeout: float = 5.0,
        parse_timeout: float = 5.0,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.deliver_timeout = deliver_timeout
        self.render_timeout = render_timeout
        self.parse_timeout = parse_timeout
        self.load_errors: list[PluginLoadError] = []
        self._distributions: dict[str, str] = {}
        self._channels: dict[str, tuple[str, ChannelSpec]] | None = None
        self._configs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (
            f"NotifierRegistry(plugins={self.plugin_names()!r}, "
            f"configured={sorted(self._configs)!r})"
        )

    # ---- loading

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (module or instance) explicitly; returns its name."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise RegistryError(f"plugin {name!r} is blocked or already registered")
        self._channels = None
        return registered

    def unregister(self, name: str) -> None:
        """Remove a plugin and forget its channels and their configuration."""
        self.pm.unregister(name=name)
        self._channels = None
        self._configs = {c: cfg for c, cfg in self._configs.items() if c in self.channels()}

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[PluginLoadError]:
        """Load installed plugins one by one; broken ones are reported, not fatal.

        A plugin that fails to import, fails pluggy's signature validation or implements a
        hook that does not exist is left out and reported in the returned list (also kept in
        ``load_errors``).
        """
        errors: list[PluginLoadError] = []
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                errors.append(PluginLoadError(ep.name, f"{type(exc).__name__}: {exc}"))
                continue
            unknown = self._unknown_hooks(plugin)
            if unknown:
                self.pm.unregister(plugin)
                errors.append(PluginLoadError(ep.name, f"unknown hooks: {', '.join(unknown)}"))
                continue
            if ep.dist is not None:
                self._distributions[ep.name] = f"{ep.dist.name} {ep.dist.version}"
        for error in errors:
            logger.error("%s", error)
        self.load_errors.extend(errors)
        self._channels = None
        return errors

    def _unknown_hooks(self, plugin: object) -> list[str]:
        callers = self.pm.get_hookcallers(plugin) or []
        return sorted(
            caller.name
            for caller in callers
            if not caller.has_spec()
            and any(
                impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()
            )
        )

    def check_pending(self) -> None:
        """Raise ``PluginContractError`` naming every plugin hook that matches no hookspec."""
        problems = [
            f"plugin {name!r} implements unknown hook {hook!r}"
            for name, plugin in self.pm.list_name_plugin()
            for hook in self._unknown_hooks(plugin)
        ]
        if problems:
            raise PluginContractError("; ".join(problems))

    def distribution_of(self, plugin_name: str) -> str | None:
        """'name version' of the distribution an entry-point plugin came from."""
        return self._distributions.get(plugin_name)

    # ---- channels and configuration

    def channels(self) -> dict[str, ChannelSpec]:
        """Every declared channel by name."""
        return {name: spec for name, (_, spec) in self._declared().items()}

    def owner_of(self, channel: str) -> str:
        """Name of the plugin that declared ``channel``."""
        try:
            return self._declared()[channel][0]
        except KeyError:
            raise UnknownChannel(f"no notifier plugin provides channel {channel!r}") from None

    def _declared(self) -> dict[str, tuple[str, ChannelSpec]]:
        if self._channels is not None:
            return self._channels
        declared: dict[str, tuple[str, ChannelSpec]] = {}
        for impl in self.pm.hook.signoff_channels.get_hookimpls():
            try:
                specs: Any = impl.function()
                if inspect.isawaitable(specs):
                    if inspect.iscoroutine(specs):
                        specs.close()
                    raise TypeError("signoff_channels must not be async")
                specs = list(specs or [])
                for spec in specs:
                    if not isinstance(spec, ChannelSpec):
                        raise TypeError(f"expected ChannelSpec, got {type(spec).__name__}")
                    if not _CHANNEL_NAME.match(spec.name):
                        raise ValueError(f"invalid channel name {spec.name!r}")
                    if not dataclasses.is_dataclass(spec.config_class):
                        raise TypeError(f"config_class of {spec.name!r} is not a dataclass")
                    if spec.name in declared:
                        other = declared[spec.name][0]
                        raise ValueError(f"channel {spec.name!r} already provided by {other!r}")
            except Exception as exc:
                error = PluginLoadError(impl.plugin_name, f"signoff_channels: {exc}")
                logger.error("%s", error)
                self.load_errors.append(error)
                continue
            for spec in specs:
                declared[spec.name] = (impl.plugin_name, spec)
        self._channels = declared
        return declared

    def configure(self, configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Validate and enable channels; raise ``ConfigError`` listing every problem.

        Only channels named in ``configs`` are enabled. Nothing is enabled unless all are valid.
        """
        declared = self._declared()
        problems: list[ChannelConfigProblem] = []
        built: dict[str, Any] = {}
        for channel, raw in configs.items():
            if channel not in declared:
                problems.append(ChannelConfigProblem("?", channel, None, "no plugin provides it"))
                continue
            plugin, spec = declared[channel]
            config, found = build_config(spec.config_class, raw)
            if config is not None:
                found = self._validate(plugin, channel, config)
            problems += [ChannelConfigProblem(plugin, channel, p.field, p.message) for p in found]
            if config is not None and not found:
                built[channel] = config
        if problems:
            error = ConfigError(problems)
            logger.error("%s", error)
            raise error
        self._configs.update(built)
        return dict(built)

    def _validate(self, plugin: str, channel: str, config: Any) -> list[ConfigProblem]:
        found: list[ConfigProblem] = []
        for impl in self._impls("signoff_validate_config", owner=plugin):
            kwargs = {"channel": channel, "config": _config_as_mapping(config)}
            try:
                result: Any = impl.function(*[kwargs[a] for a in impl.argnames])
                if inspect.iscoroutine(result):
                    result.close()
                    raise TypeError("signoff_validate_config must not be async")
                found += list(result or [])
            except Exception as exc:
                found.append(ConfigProblem(None, f"validation raised {type(exc).__name__}"))
                _log_traceback(f"signoff_validate_config of {plugin!r} raised", exc, config)
        return found

    def config_of(self, channel: str) -> Any:
        """The typed config of an enabled channel."""
        try:
            return self._configs[channel]
        except KeyError:
            self.owner_of(channel)
            raise ChannelNotConfigured(f"channel {channel!r} is not configured") from None

    def configured_channels(self) -> list[str]:
        return sorted(self._configs)

    # ---- calling

    def _impls(self, hook_name: str, *, owner: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook_name)
        return [impl for impl in caller.get_hookimpls() if impl.plugin_name == owner]

    async def render(
        self, channel: str, event: NotificationEvent, recipient: Recipient
    ) -> RenderedMessage:
        """Render ``event`` for ``recipient``: other plugins first, the owner, then fallback.

        A raising, hanging or ill-typed renderer is logged and skipped. The channel's config is
        passed when the channel is configured (None otherwise).
        """
        owner = self.owner_of(channel)
        config = self._configs.get(channel)
        impls = list(reversed(self.pm.hook.signoff_render.get_hookimpls()))  # pluggy call order
        ordered = [i for i in impls if i.plugin_name != owner] + [
            i for i in impls if i.plugin_name == owner
        ]
        kwargs = {"channel": channel, "event": event, "recipient": recipient, "config": config}
        for impl in ordered:
            try:
                result = await _invoke(
                    impl.function,
                    [kwargs[a] for a in impl.argnames],
                    self.render_timeout,
                    offload=False,
                )
            except Exception as exc:
                logger.warning(
                    "signoff_render of plugin %r failed for channel %r: %s",
                    impl.plugin_name,
                    channel,
                    _describe(exc, self.render_timeout),
                )
                continue
            if result is None:
                continue
            if isinstance(result, RenderedMessage):
                return dataclasses.replace(result, event_id=event.id, event_kind=event.kind)
            logger.warning(
                "signoff_render of plugin %r returned %s, ignored",
                impl.plugin_name,
                type(result).__name__,
            )
        return fallback_message(event, recipient)

    async def deliver(
        self, channel: str, message: RenderedMessage, recipient: Recipient
    ) -> DeliveryResult:
        """One delivery attempt through the owning plugin. Never raises; never blocks forever.

        The result always carries ``duration_ms``, ``channel`` and ``plugin``. An exception
        becomes ``failed_retryable`` with its text; a timeout becomes ``failed_retryable``
        with "timed out after Xs". Known secrets are masked in ``response`` and ``error``.
        """
        started = time.perf_counter()
        plugin: str | None = None
        config: Any = None
        try:
            plugin = self.owner_of(channel)
            config = self.config_of(channel)
        except RegistryError as exc:
            result = DeliveryResult.permanent(str(exc))
        else:
            result = await self._deliver_with(plugin, channel, message, recipient, config)
        secrets = _secrets_of(config)
        result = dataclasses.replace(
            result,
            response=_clip(result.response, secrets),
            error=_clip(result.error, secrets),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            channel=channel,
            plugin=plugin,
        )
        if not result.ok:
            logger.warning(
                "delivery of event %r on channel %r failed (%s): %s",
                message.event_id,
                channel,
                result.status.value,
                result.error,
            )
        return result

    async def _deliver_with(
        self,
        plugin: str,
        channel: str,
        message: RenderedMessage,
        recipient: Recipient,
        config: Any,
    ) -> DeliveryResult:
        impls = self._impls("signoff_deliver", owner=plugin)
        if not impls:
            return DeliveryResult.permanent(f"plugin {plugin!r} does not implement delivery")
        impl = impls[-1]
        kwargs = {"channel": channel, "message": message, "recipient": recipient, "config": config}
        try:
            result = await _invoke(
                impl.function,
                [kwargs[a] for a in impl.argnames],
                self.deliver_timeout,
                offload=True,
            )
        except Exception as exc:
            _log_traceback(f"signoff_deliver of {plugin!r} raised", exc, config)
            return DeliveryResult.retryable(_describe(exc, self.deliver_timeout))
        if isinstance(result, DeliveryResult):
            return result
        return DeliveryResult.permanent(
            f"plugin {plugin!r} returned {type(result).__name__} instead of a DeliveryResult"
        )

    async def parse_interaction(
        self, channel: str, headers: Mapping[str, str], body: bytes
    ) -> Interaction | None:
        """Verify and parse a callback through the owning plugin.

        Raises ``InteractionRejected`` when verification fails, the plugin errs or times out;
        ``UnknownChannel`` / ``ChannelNotConfigured`` when the channel is not usable.
        """
        plugin = self.owner_of(channel)
        config = self.config_of(channel)
        impls = self._impls("signoff_parse_interaction", owner=plugin)
        if not impls:
            raise InteractionRejected(f"channel {channel!r} does not accept interactions")
        impl = impls[-1]
        kwargs = {
            "channel": channel,
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": body,
            "config": config,
        }
        try:
            result = await _invoke(
                impl.function,
                [kwargs[a] for a in impl.argnames],
                self.parse_timeout,
                offload=False,
            )
        except InteractionRejected:
            raise
        except Exception as exc:
            reason = _clip(_describe(exc, self.parse_timeout), _secrets_of(config))
            logger.warning("signoff_parse_interaction of %r failed: %s", plugin, reason)
            raise InteractionRejected("the channel plugin could not parse the callback") from exc
        if result is None:
            return None
        if not isinstance(result, Interaction):
            raise InteractionRejected(f"plugin {plugin!r} returned {type(result).__name__}")
        return dataclasses.replace(result, channel=channel)


def _log_traceback(what: str, exc: BaseException, config: Any) -> None:
    """Log a plugin's traceback at debug level with the channel's secrets masked."""
    if logger.isEnabledFor(logging.DEBUG):
        text = "".join(traceback.format_exception(exc))
        logger.debug("%s:\n%s", what, _clip(text, _secrets_of(config), limit=20_000))


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"
