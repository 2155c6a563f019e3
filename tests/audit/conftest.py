"""Helpers of the audit tests: running `signoff audit …` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

AuditCommand = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def signoff_audit() -> AuditCommand:
    """Run `signoff audit ARGS…` against a database (only SIGNOFF_DATABASE_URL set)."""

    def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        return subprocess.run(
            [sys.executable, "-m", "signoff.cli", "audit", *args],
            env={**clean, "SIGNOFF_DATABASE_URL": database_url},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
