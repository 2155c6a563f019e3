"""One test per hook of the channel contract, plus the checks that keep tests and docs in sync."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.notify import (
    ChannelSpec,
    DeliveryStatus,
    Interaction,
    InteractionRejected,
    NotificationEvent,
    NotifierRegistry,
    Recipient,
    hookspecs,
)
from signoff.testing import FakeChannel, FakeChannelConfig

ROOT = Path(__file__).resolve().parents[2]
HOOK_NAMES = sorted(
    name
    for name in dir(hookspecs)
    if name.startswith("signoff_") and hasattr(getattr(hookspecs, name), "signoff_spec")
)

EVENT = NotificationEvent(
    id="evt-1",
    kind="assignment",
    tenant_id="t1",
    item_id="item-1",
    step_id="step-1",
    title="Approve the refund",
    summary="Refund of 120 EUR",
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    link="https://signoff.example/items/item-1",
)
BOB = Recipient(user_id="u-bob", address="bob@example.com", display_name="Bob")


@pytest.fixture
def fake() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def registry(fake: FakeChannel) -> NotifierRegistry:
    registry = NotifierRegistry(deliver_timeout=1.0)
    registry.register(fake, "fake-plugin")
    registry.check_pending()
    registry.configure({"fake": {"token": "tok-123"}})
    return registry


def test_hookspecs_found():
    assert HOOK_NAMES == [
        "signoff_channels",
        "signoff_deliver",
        "signoff_parse_interaction",
        "signoff_render",
        "signoff_validate_config",
    ]


def test_signoff_channels(registry: NotifierRegistry):
    spec = registry.channels()["fake"]
    assert isinstance(spec, ChannelSpec)
    assert spec.config_class is FakeChannelConfig
    assert spec.capabilities.interactive_actions
    assert registry.owner_of("fake") == "fake-plugin"


def test_signoff_validate_config():
    registry = NotifierRegistry()
    registry.register(FakeChannel(), "fake-plugin")
    with pytest.raises(Exception) as info:
        registry.configure({"fake": {"require_token": True}})
    assert "plugin 'fake-plugin', channel 'fake', field 'token'" in str(info.value)
    assert registry.configure({"fake": {"require_token": "yes", "token": "t"}})["fake"].token


async def test_signoff_render(registry: NotifierRegistry):
    message = await registry.render("fake", EVENT, BOB)
    assert message.subject == "assignment: Approve the refund"
    assert message.text == "Hello Bob: Refund of 120 EUR"
    assert (message.event_id, message.event_kind) == ("evt-1", "assignment")
    assert message.thread_key == "t1:item-1" and message.link == EVENT.link


async def test_signoff_deliver(registry: NotifierRegistry, fake: FakeChannel):
    message = await registry.render("fake", EVENT, BOB)
    result = await registry.deliver("fake", message, BOB)
    assert result.status is DeliveryStatus.DELIVERED
    assert (result.channel, result.plugin, result.provider_message_id) == (
        "fake",
        "fake-plugin",
        "fake-1",
    )
    assert result.duration_ms is not None and result.duration_ms >= 0
    (sent,) = fake.sent
    assert sent.message == message and sent.recipient == BOB
    assert sent.config.token.reveal() == "tok-123"


async def test_signoff_parse_interaction(registry: NotifierRegistry):
    body = json.dumps(
        {"action": "approve", "item_id": "item-1", "step_id": "s", "actor": "U1", "key": "k1"}
    ).encode()
    interaction = await registry.parse_interaction("fake", {"X-Fake-Signature": "tok-123"}, body)
    assert interaction == Interaction(
        action="approve",
        item_id="item-1",
        step_id="s",
        actor_external_id="U1",
        idempotency_key="fake:k1",
        channel="fake",
    )
    with pytest.raises(InteractionRejected, match="bad signature"):
        await registry.parse_interaction("fake", {"X-Fake-Signature": "nope"}, body)
    with pytest.raises(InteractionRejected, match="malformed"):
        await registry.parse_interaction("fake", {"x-fake-signature": "tok-123"}, b"{")


def _test_sources() -> str:
    files = [*ROOT.glob("tests/notify/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/test_*.py")]
    return "\n".join(path.read_text() for path in files)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook: str):
    # A test function named after the hook: ``def test_<hook>`` or ``def test_<hook>_...``.
    assert re.search(rf"def test_{hook}(_\w+)?\(", _test_sources()), f"no test for {hook}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented(hook: str):
    docs = (ROOT / "docs/plugins/writing-a-channel.md").read_text()
    assert re.search(rf"^### {hook}\s*$", docs, re.MULTILINE), f"{hook} has no docs section"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_docstring(hook: str):
    doc = getattr(hookspecs, hook).__doc__
    assert doc and doc.strip().splitlines()[0].endswith(".")
