"""Entry-point discovery: installing a distribution adds a channel, removing it takes it away.

Distributions are real: a ``*.dist-info`` directory (METADATA + entry_points.txt) and a module
in a temporary directory on ``sys.path``, exactly what pip leaves in site-packages.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.notify import NotifierRegistry, Recipient, RenderedMessage

GOOD_PLUGIN = """
from dataclasses import dataclass
from signoff.notify import ChannelSpec, DeliveryResult, hookimpl

@dataclass(frozen=True)
class Config:
    greeting: str = "hi"

@hookimpl
def signoff_channels():
    return [ChannelSpec("{channel}", Config)]

@hookimpl
async def signoff_deliver(channel, message, config):
    return DeliveryResult.delivered(config.greeting + " " + message.text)
"""

BROKEN_PLUGIN = "import a_module_that_does_not_exist_anywhere\n"

MISSPELT_PLUGIN = """
from signoff.notify import hookimpl

@hookimpl
def signoff_chanels():
    return []
"""


class Site:
    """A temporary site-packages directory on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(self, dist: str, plugins: dict[str, str]) -> Path:
        """Install distribution ``dist`` with entry points {entry point name: module source}."""
        lines = ["[signoff.notifiers]"]
        for entry_name, source in plugins.items():
            module = f"{entry_name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.append(module)
            lines.append(f"{entry_name} = {module}")
        info = self.root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()
        return info

    def uninstall(self, info: Path) -> None:
        shutil.rmtree(info)
        for module in self.modules:
            (self.root / f"{module}.py").unlink(missing_ok=True)
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield Site(tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        importlib.invalidate_caches()


async def test_install_and_uninstall_without_code_changes(site: Site):
    channel = f"tmp{uuid.uuid4().hex[:6]}"
    info = site.install("signoff-tmp", {"tmp-channel": GOOD_PLUGIN.format(channel=channel)})

    registry = NotifierRegistry()
    assert registry.load_entry_points() == []
    registry.check_pending()
    assert channel in registry.channels()
    assert registry.distribution_of("tmp-channel") == "signoff-tmp 0.1.0"
    registry.configure({channel: {"greeting": "hello"}})
    message = RenderedMessage(event_id="e", subject="s", text="world")
    result = await registry.deliver(channel, message, Recipient("u", "addr"))
    assert result.ok and result.response == "hello world"

    site.uninstall(info)
    assert channel not in NotifierRegistry().channels()
    fresh = NotifierRegistry()
    fresh.load_entry_points()
    assert channel not in fresh.channels()
    assert "tmp-channel" not in fresh.plugin_names()


def test_broken_entry_points_are_reported_and_others_load(site: Site):
    channel = f"ok{uuid.uuid4().hex[:6]}"
    site.install(
        "signoff-mixed",
        {
            "aa-broken": BROKEN_PLUGIN,  # sorted first: it must not stop the ones after it
            "bb-misspelt": MISSPELT_PLUGIN,
            "cc-good": GOOD_PLUGIN.format(channel=channel),
        },
    )
    registry = NotifierRegistry()
    errors = {e.plugin_name: e for e in registry.load_entry_points()}
    assert set(errors) == {"aa-broken", "bb-misspelt"}
    assert "ModuleNotFoundError" in errors["aa-broken"].error
    assert "unknown hooks: signoff_chanels" in errors["bb-misspelt"].error
    assert "'aa-broken'" in str(errors["aa-broken"])
    assert channel in registry.channels()
    assert "bb-misspelt" not in registry.plugin_names()
    registry.check_pending()  # the misspelt plugin was left out, nothing pending


@pytest.mark.parametrize(
    ("dist", "channel"),
    [("signoff-email", "email"), ("signoff-slack", "slack"), ("signoff-webhook", "webhook")],
)
def test_shipped_plugins_are_discovered(dist: str, channel: str):
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (pip install -e plugins/{dist})")
    registry = NotifierRegistry()
    registry.load_entry_points()
    registry.check_pending()
    assert registry.owner_of(channel) == channel
    assert not [e for e in registry.load_errors if e.plugin_name == channel]
