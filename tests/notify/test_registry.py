"""The registry: isolation, timeouts, typed config, secrets, dispatch by channel ownership."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from signoff.notify import (
    ChannelCapabilities,
    ChannelSpec,
    ConfigError,
    DeliveryResult,
    DeliveryStatus,
    NotificationEvent,
    NotifierRegistry,
    PluginContractError,
    Recipient,
    RenderedMessage,
    Secret,
    UnknownChannel,
    hookimpl,
)
from signoff.testing import FakeChannel

EVENT = NotificationEvent(
    id="evt-1",
    kind="decision",
    tenant_id="t1",
    item_id="item-1",
    title="Refund approved",
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    link="https://signoff.example/items/item-1",
)
BOB = Recipient(user_id="u-bob", address="bob@example.com")
MESSAGE = RenderedMessage(event_id="evt-1", subject="s", text="t")


def two_fakes(timeout: float = 0.5) -> tuple[NotifierRegistry, FakeChannel, FakeChannel]:
    registry = NotifierRegistry(deliver_timeout=timeout)
    a, b = FakeChannel("a"), FakeChannel("b")
    registry.register(a, "plugin-a")
    registry.register(b, "plugin-b")
    registry.configure({"a": {}, "b": {}})
    return registry, a, b


async def test_exception_is_retryable_and_isolated():
    registry, a, b = two_fakes()
    a.fail_times(1, "smtp exploded")
    failed = await registry.deliver("a", MESSAGE, BOB)
    ok = await registry.deliver("b", MESSAGE, BOB)
    assert failed.status is DeliveryStatus.FAILED_RETRYABLE
    assert failed.error == "ConnectionError: smtp exploded"
    assert failed.plugin == "plugin-a" and failed.duration_ms is not None
    assert ok.ok and len(b.sent) == 1
    assert (await registry.deliver("a", MESSAGE, BOB)).ok  # the failure was only once


async def test_permanent_failure_passes_through():
    registry, a, _ = two_fakes()
    a.fail_permanently("mailbox does not exist")
    result = await registry.deliver("a", MESSAGE, BOB)
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert result.error == "mailbox does not exist"


async def test_hanging_plugin_times_out_without_blocking_another():
    registry, a, b = two_fakes(timeout=0.5)
    a.hang()
    hanging = asyncio.create_task(registry.deliver("a", MESSAGE, BOB))
    ok = await registry.deliver("b", MESSAGE, BOB)
    assert ok.ok and not hanging.done()  # b finished while a was still hanging
    result = await hanging
    assert result.status is DeliveryStatus.FAILED_RETRYABLE
    assert result.error == "timed out after 0.5s"
    assert result.duration_ms >= 450


@dataclass(frozen=True)
class NoConfig:
    pass


class BlockingSyncPlugin:
    """A sync deliver that blocks its thread, like smtplib against a dead server."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def signoff_channels(self):
        return [ChannelSpec("blocking", NoConfig)]

    @hookimpl
    def signoff_deliver(self, channel, message):
        self.release.wait(10)
        return DeliveryResult.delivered("late")


async def test_blocking_sync_plugin_runs_in_a_thread():
    registry, _, b = two_fakes(timeout=5)
    blocking = BlockingSyncPlugin()
    registry.register(blocking, "blocking")
    registry.configure({"blocking": {}})
    task = asyncio.create_task(registry.deliver("blocking", MESSAGE, BOB))
    assert (await registry.deliver("b", MESSAGE, BOB)).ok
    assert not task.done()
    blocking.release.set()
    result = await task
    assert result.ok and result.response == "late"


async def test_async_impls_are_awaited():
    registry, a, _ = two_fakes()
    result = await registry.deliver("a", MESSAGE, BOB)
    assert isinstance(result, DeliveryResult) and result.ok
    assert await a.wait_for_sent(1, timeout=1)


class GarbagePlugin:
    @hookimpl
    def signoff_channels(self):
        return [ChannelSpec("garbage", NoConfig)]

    @hookimpl
    async def signoff_deliver(self):
        return "sent!"

    @hookimpl
    def signoff_render(self, channel):
        raise RuntimeError("renderer bug")


async def test_wrong_return_type_is_permanent_and_broken_renderer_is_skipped():
    registry, _, _ = two_fakes()
    registry.register(GarbagePlugin(), "garbage")
    registry.configure({"garbage": {}})
    result = await registry.deliver("garbage", MESSAGE, BOB)
    assert result.status is DeliveryStatus.FAILED_PERMANENT and "returned str" in result.error
    # GarbagePlugin's renderer raises for every channel: others still render, it falls back.
    assert (await registry.render("a", EVENT, BOB)).metadata == {"renderer": "fake"}
    fallback = await registry.render("garbage", EVENT, BOB)
    assert fallback.subject == "[decision] Refund approved" and EVENT.link in fallback.text


class TemplatePlugin:
    """Overrides how channel ``a`` looks without owning it."""

    @hookimpl
    def signoff_render(self, channel, event):
        if channel != "a":
            return None
        return RenderedMessage(event_id="ignored", subject="custom", text=event.title)


async def test_render_asks_other_plugins_before_the_owner():
    registry, _, _ = two_fakes()
    registry.register(TemplatePlugin(), "templates")
    custom = await registry.render("a", EVENT, BOB)
    assert custom.subject == "custom" and custom.event_id == "evt-1"
    assert (await registry.render("b", EVENT, BOB)).metadata == {"renderer": "fake"}


async def test_deliver_goes_only_to_the_owner():
    registry, a, b = two_fakes()
    await registry.deliver("b", MESSAGE, BOB)
    assert (a.attempts, b.attempts) == (0, 1)


async def test_unknown_or_unconfigured_channel():
    registry = NotifierRegistry()
    registry.register(FakeChannel("a"), "plugin-a")
    missing = await registry.deliver("sms", MESSAGE, BOB)
    unconfigured = await registry.deliver("a", MESSAGE, BOB)
    assert missing.status is DeliveryStatus.FAILED_PERMANENT and "sms" in missing.error
    assert unconfigured.status is DeliveryStatus.FAILED_PERMANENT
    assert "not configured" in unconfigured.error
    with pytest.raises(UnknownChannel):
        await registry.render("sms", EVENT, BOB)


class Misspelt:
    @hookimpl
    def signoff_delivr(self, channel):  # the typo check_pending exists for
        return None


def test_misspelt_hookimpl_is_caught_by_check_pending():
    registry = NotifierRegistry()
    registry.register(FakeChannel(), "fine")
    registry.register(Misspelt(), "typo")
    with pytest.raises(
        PluginContractError, match="'typo' implements unknown hook 'signoff_delivr'"
    ):
        registry.check_pending()


def test_duplicate_channel_is_a_load_error():
    registry = NotifierRegistry()
    registry.register(FakeChannel("a"), "first")
    registry.register(FakeChannel("a"), "second")
    assert list(registry.channels()) == ["a"]
    (error,) = registry.load_errors
    assert "already provided" in error.error


@dataclass(frozen=True)
class TypedConfig:
    api_key: Secret
    retries: int = 3
    ratio: float = 0.5
    enabled: bool = True
    mode: str = "x"


class TypedPlugin:
    @hookimpl
    def signoff_channels(self):
        return [ChannelSpec("typed", TypedConfig, ChannelCapabilities(html=True))]


def test_config_problems_name_plugin_channel_and_field():
    registry = NotifierRegistry()
    registry.register(TypedPlugin(), "typed-plugin")
    with pytest.raises(ConfigError) as info:
        registry.configure(
            {"typed": {"retries": "many", "enabled": "maybe", "colour": "red"}, "sms": {}}
        )
    text = str(info.value)
    assert "plugin 'typed-plugin', channel 'typed', field 'api_key': required" in text
    assert "field 'retries': must be an integer" in text
    assert "field 'enabled': must be a boolean" in text
    assert "field 'colour': unknown field" in text
    assert "channel 'sms': no plugin provides it" in text
    assert registry.configured_channels() == []  # nothing enabled unless all are valid
    config = registry.configure({"typed": {"api_key": "k-999", "retries": "5", "ratio": 1}})
    assert config["typed"].retries == 5 and config["typed"].ratio == 1.0


async def test_secrets_never_in_repr_logs_or_results(caplog):
    class Leaky(FakeChannel):
        @hookimpl
        async def signoff_deliver(self, channel, message, recipient, config):
            raise RuntimeError(f"auth failed for token {config.token.reveal()}")

    registry = NotifierRegistry()
    registry.register(Leaky("leaky"), "leaky")
    configs = registry.configure({"leaky": {"token": "super-secret-value"}})
    caplog.set_level(logging.DEBUG)
    result = await registry.deliver("leaky", MESSAGE, BOB)
    assert result.error == "RuntimeError: auth failed for token ***"
    for text in (repr(configs), str(configs), repr(registry), repr(result), caplog.text):
        assert "super-secret-value" not in text
    assert "Traceback" in caplog.text  # the debug log keeps the traceback, masked


def test_secret_type():
    secret = Secret("hunter22")
    assert repr(secret) == str(secret) == "'***'" and f"{secret}" == "***"
    assert secret.reveal() == "hunter22" and secret == Secret("hunter22") and secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        "x" + secret  # type: ignore[operator]
