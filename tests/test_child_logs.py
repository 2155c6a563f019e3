"""A failing test that started `signoff` processes shows the tail of their logs (the hooks in
tests/conftest.py), so that a failure in CI can be read without the machine it ran on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD_TESTS = """
from signoff.testing import child_environment, signoff_processes


async def _run_signoff_help(tmp_path):
    async with signoff_processes(
        {"helper": ["--help"]}, child_environment(), tmp_path, []
    ) as running:
        assert running.processes["helper"].wait(timeout=120) == 0


async def test_that_fails(tmp_path):
    await _run_signoff_help(tmp_path)
    assert False, "failing on purpose"


async def test_that_passes(tmp_path):
    await _run_signoff_help(tmp_path)
"""


def test_a_failing_test_shows_the_logs_of_the_processes_it_started(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport, pytest_runtest_setup\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (tmp_path / "test_child.py").write_text(CHILD_TESTS)
    # this checkout's tests and this checkout's package (not whichever one is installed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "backend")])}
    run = subprocess.run(  # noqa: S603 - pytest on the files written above
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout
    assert "1 failed, 1 passed" in out, out
    failure = out.split("FAILURES", 1)[1].split("short test summary", 1)[0]
    assert "test_that_fails" in failure
    assert "log of helper" in failure
    assert "usage: signoff" in failure  # the child's own output
    # the passing test's processes are not reported
    assert "test_that_passes" not in failure
