"""`scripts/test` installs only when the project's declared dependencies changed: a second run
installs nothing, neither the Python packages (`.venv/.signoff-installed`) nor the console's
npm packages (`console/node_modules/.signoff-installed`).

The real `scripts/test` and `scripts/console` run in a copy of the files they read, with every
tool they call replaced by a stand-in that writes down how it was called: what is checked is
which installs the scripts ask for, not what the tools do.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("python", "pip", "ruff", "mypy", "signoff", "pytest")


def _stand_in(path: Path, log: Path, body: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{path.name} $*" >> "{log}"\n{body}exit 0\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _copy(tmp: Path) -> Path:
    root = tmp / "repo"
    for name in ("scripts/test", "scripts/console", "pyproject.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    for plugin in (REPO / "plugins").glob("*/pyproject.toml"):
        target = root / plugin.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plugin, target)
    shutil.copytree(
        REPO / "console",
        root / "console",
        ignore=shutil.ignore_patterns("node_modules", "dist", "gql"),
    )
    # what scripts/console reads besides console/ (its check also reads the released schema
    # and the changelog)
    for name in ("schema.graphql", "schema.released.graphql", "CHANGELOG.md"):
        shutil.copy2(REPO / name, root / name)
    return root


def _run(root: Path, path: str, log: Path, **env: str) -> list[str]:
    log.write_text("")
    inherited = {k: v for k, v in os.environ.items() if k != "SIGNOFF_TEST_WORKERS"}
    subprocess.run(
        ["bash", "scripts/test", "-q"],
        cwd=root,
        env={**inherited, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return log.read_text().splitlines()


def _installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("pip install") or c.startswith("npm ci")]


def test_a_second_run_installs_nothing_and_a_changed_dependency_list_installs_again(tmp_path):
    root = _copy(tmp_path)
    log = tmp_path / "calls.log"
    for tool in TOOLS:
        _stand_in(root / ".venv" / "bin" / tool, log)
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir / "node", log)
    _stand_in(bin_dir / "npx", log)
    _stand_in(bin_dir / "npm", log, 'if [ "$1" = ci ]; then mkdir -p node_modules; fi\n')
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

    first = _run(root, path, log)
    assert _installs(first) == [
        "pip install --quiet --upgrade pip",
        "pip install --quiet -e .[dev] -e plugins/signoff-email -e plugins/signoff-slack"
        " -e plugins/signoff-webhook",
        "npm ci --no-audit --no-fund --loglevel=error",
    ]
    second = _run(root, path, log)
    assert _installs(second) == []
    # it ran to the end: the tests in one process more than the machine has cores, at most
    # three, a file to a process; or in as many as SIGNOFF_TEST_WORKERS says (0: in its own)
    workers = min(len(os.sched_getaffinity(0)) + 1, 3)
    assert second[-1] == f"pytest -n {workers} --dist loadfile -q"
    assert _run(root, path, log, SIGNOFF_TEST_WORKERS="0")[-1] == "pytest -n 0 --dist loadfile -q"

    with (root / "plugins" / "signoff-slack" / "pyproject.toml").open("a") as f:
        f.write("\n# a dependency changed\n")
    assert [c.split()[0] for c in _installs(_run(root, path, log))] == ["pip", "pip"]
    (root / "console" / "package-lock.json").write_text(
        (root / "console" / "package-lock.json").read_text() + "\n"
    )
    assert [c.split()[:2] for c in _installs(_run(root, path, log))] == [["npm", "ci"]]
