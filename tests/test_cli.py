"""The `signoff` command: development tokens only in development; the schema check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from signoff.api.auth import TokenVerifier
from signoff.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SECRET = "cli-test-secret-that-is-at-least-32-bytes"


def signoff(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m signoff.cli` with only the given SIGNOFF_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return subprocess.run(
        [sys.executable, "-m", "signoff.cli", *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_is_refused_outside_development():
    result = signoff(
        "token", "--user", "u", SIGNOFF_ENVIRONMENT="production", SIGNOFF_JWT_SECRET=SECRET
    )
    assert result.returncode != 0
    assert result.stdout.strip() == ""  # no token printed
    assert "development" in result.stderr


def test_token_in_development_is_accepted_by_the_verifier():
    result = signoff(
        "token",
        "--user",
        "u",
        "--tenant",
        "acme",
        "--role",
        "admin",
        "--role",
        "ops",
        SIGNOFF_JWT_SECRET=SECRET,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    principal = TokenVerifier(Settings(jwt_secret=SECRET)).verify(token)
    assert (principal.user_id, principal.tenant_id) == ("u", "acme")
    assert principal.roles == frozenset({"admin", "ops"})


def test_configuration_error_is_reported_not_raised():
    result = signoff("token", "--user", "u", SIGNOFF_PORT="eighty")
    assert result.returncode != 0
    assert "SIGNOFF_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_check_passes_on_the_committed_file():
    result = signoff("schema", "check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_schema_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "schema.graphql"
    stale.write_text((REPO / "schema.graphql").read_text() + "\ntype Stale { x: Int }\n")
    result = signoff("schema", "check", "--path", str(stale))
    assert result.returncode != 0
    assert "signoff schema export" in result.stderr


def test_token_refuses_a_lifetime_that_is_not_positive():
    for ttl in ("-120", "0", "soon"):
        result = signoff(
            "token", "--user", "alice", "--ttl", ttl, SIGNOFF_ENVIRONMENT="development"
        )
        assert result.returncode == 2, result
        assert "argument --ttl" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    accepted = signoff("token", "--user", "alice", "--ttl", "60", SIGNOFF_ENVIRONMENT="development")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.count(".") == 2  # a JWT


def test_importing_the_engine_connects_to_nothing():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNOFF_", "PG"))}
    result = subprocess.run(
        [sys.executable, "-c", "import signoff.db.engine, signoff.db.piccolo_conf"],
        # a server that is not there: piccolo's own check would warn about it
        env={**clean, "PGHOST": "127.0.0.1", "PGPORT": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "database" not in result.stderr.lower()
    assert "version" not in result.stderr.lower()


def test_a_worker_with_an_uneven_alert_interval_stops_in_one_line():
    result = signoff("worker", SIGNOFF_ALERT_EVALUATION_SECONDS="45")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: SIGNOFF_ALERT_EVALUATION_SECONDS must divide 60")
    assert line.endswith("not 45")


def test_signoff_dev_that_cannot_seed_its_demo_data_says_why_and_stops(
    settings: Settings, owner_database_url: str
):
    """Without its demo data nobody can sign in to `signoff dev`'s console: a seeding that
    fails is logged with its cause and the command stops, rather than serve on without it."""
    from signoff.testing import free_port

    code = (
        "import sys, signoff.cli, signoff.demo_data\n"
        "async def refuse(*args, **kwargs):\n"
        "    raise RuntimeError('the demo templates are unreadable')\n"
        "signoff.demo_data.seed_demo = refuse\n"
        "signoff.cli.main(sys.argv[1:])\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    result = subprocess.run(
        [sys.executable, "-c", code, "dev", "--port", str(free_port())],
        env={
            **clean,
            "SIGNOFF_ENVIRONMENT": "development",
            "SIGNOFF_DATABASE_URL": settings.database_url,
            "SIGNOFF_MIGRATION_DATABASE_URL": owner_database_url,
            "SIGNOFF_REDIS_URL": settings.redis_url,
            "SIGNOFF_REDIS_PREFIX": f"{settings.redis_prefix}-unseeded",
            "SIGNOFF_TIMER_TENANTS": "demo",
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "signoff dev could not seed its demo data; stopping" in output, output
    assert "RuntimeError: the demo templates are unreadable" in output, output
    assert "demo tokens" not in output
