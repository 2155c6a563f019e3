"""`scripts/dev` builds the console when Node.js is there and starts the API either way;
`scripts/console` says which Node.js it needs when there is none, with the exit code
`scripts/test` and `scripts/dev` read (3).

`scripts/dev` runs in a copy of the repository's layout whose `.venv/bin/signoff` and
`scripts/console` record how they were called, on a PATH that holds only the tools it uses (and
npm or not): `signoff dev` itself is run by tests/test_quickstart.py."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

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
