"""The README's "Running it for real" block, run as written: a fresh database migrated by its
owner, a login role for the application, `signoff serve` and `signoff worker` in production
mode with RS256 tokens. Only what a reader must fill in is filled in (the `...` placeholders,
the database host, the key file, the port) and the long-running commands go to the background.
Then the deployment is used: an item of the tenant the block created, on the templates it
loaded (the demo ones), submitted with an RS256 token and decided; an HS256 token is refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signoff.testing import child_environment, free_port
from tests.conftest import DEMO_TEMPLATES, REPO, RUN_ID, TEST_SECRET

README = (REPO / "README.md").read_text()
SECTION = README.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
(BLOCK,) = re.findall(r"```sh\n(.*?)```", SECTION, flags=re.S)
BIN = Path(sys.executable).parent

SUBMIT = """mutation Submit($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id state steps { id } } errors { code message } } }"""
APPROVE = """mutation Approve($stepId: ID!) {
  approveStep(input: {stepId: $stepId}) { item { state } errors { code message } } }"""
SUBMISSION = {
    "templateKey": "change-approval",
    "title": "Deploy payments v2.4",
    "payload": {"title": "Payments v2.4", "system": "payments", "rollback_plan": "redeploy"},
}

pytestmark = pytest.mark.skipif(
    shutil.which("psql") is None, reason="the block runs psql (PostgreSQL's client)"
)


def _url(base: str, user: str, database: str) -> str:
    parts = urlsplit(base)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", f"/{database}", "", ""))


def _script(block: str, values: dict[str, str]) -> str:
    """The block with its placeholders filled in and `serve`/`worker` in the background."""
    filled = []
    for line in block.splitlines():
        command = line.split("  #", 1)[0].rstrip()
        if command.startswith("pip install"):
            # installing is the reader's first step; here the packages it names must be the
            # ones installed
            names = [p.rsplit("/", 1)[-1] for p in command.split()[3:] if p != "."]
            command = "pip show signoff " + " ".join(names) + " > /dev/null"
        for placeholder, value in values.items():
            command = command.replace(placeholder, value)
        if command in ("signoff serve", "signoff worker"):
            name = command.split()[1]
            command = f"{command} > {name}.log 2>&1 & echo $! > {name}.pid"
        filled.append(command)
    return "set -euo pipefail\n" + "\n".join(filled) + "\n"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)  # a real process shutting down


def _rs256_token(private_key: Any, tenant: str, user: str, *roles: str) -> str:
    now = int(time.time())
    claims = {
        "sub": user,
        "tenant": tenant,
        "roles": list(roles),
        "iss": "signoff-dev",
        "aud": "signoff",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, private_key, algorithm="RS256")


async def test_the_production_block_runs_as_written(service_urls, redis_url, tmp_path):
    admin_url, _ = service_urls
    database, login = f"signoff_real_{RUN_ID}", f"signoff_api_{RUN_ID}"
    password = uuid.uuid4().hex
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    owner_user = urlsplit(admin_url).username or "postgres"
    owner_url = _url(admin_url, owner_user, database)
    host = urlsplit(admin_url).netloc.rpartition("@")[2]

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "jwt.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    port = free_port()
    script = _script(
        BLOCK,
        {
            "SIGNOFF_REDIS_URL=...": f"SIGNOFF_REDIS_URL={redis_url}",
            "/etc/signoff/jwt.pem": str(pem),
            "SIGNOFF_URL_SIGNING_SECRET=...": f"SIGNOFF_URL_SIGNING_SECRET={uuid.uuid4().hex * 2}",
            "postgresql://owner@db/signoff": owner_url,
            'psql -c "': f'psql "{owner_url}" -c "',
            "PASSWORD '...'": f"PASSWORD '{password}'",
            ":...@db/signoff": f":{password}@{host}/{database}",
            "signoff_api": login,
            "./templates": str(DEMO_TEMPLATES),
        },
    )
    assert "..." not in script and "@db/" not in script, script
    env = child_environment(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        SIGNOFF_PORT=str(port),
        SIGNOFF_REDIS_PREFIX=f"signoff-test-{RUN_ID}-real",
    )
    pids: list[int] = []
    try:
        ran = subprocess.run(  # noqa: ASYNC221 - the block itself returns at once
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        pids = [
            int((tmp_path / f"{n}.pid").read_text())
            for n in ("serve", "worker")
            if (tmp_path / f"{n}.pid").exists()
        ]
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert len(pids) == 2

        api = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=api, timeout=30) as http:
            deadline = time.monotonic() + 90
            while True:
                for pid in pids:
                    assert _alive(pid), (tmp_path / "serve.log").read_text() + (
                        tmp_path / "worker.log"
                    ).read_text()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                await asyncio.sleep(0.2)  # waiting for a real process to listen

            async def gql(query: str, variables: dict[str, Any], token: str) -> Any:
                answer = await http.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                return answer.json()

            submitted = await gql(
                SUBMIT, {"input": SUBMISSION}, _rs256_token(key, "acme", "alice", "requester")
            )
            item = submitted["data"]["submitItem"]["item"]
            assert item["state"] == "PENDING", submitted
            approved = await gql(
                APPROVE,
                {"stepId": item["steps"][0]["id"]},
                _rs256_token(key, "acme", "bob", "change-approver"),
            )
            assert approved["data"]["approveStep"]["item"]["state"] == "APPROVED", approved

            hmac = jwt.encode(
                {
                    "sub": "mallory",
                    "tenant": "acme",
                    "roles": ["admin"],
                    "iss": "signoff-dev",
                    "aud": "signoff",
                    "exp": int(time.time()) + 600,
                },
                TEST_SECRET,
                algorithm="HS256",
            )
            refused = await gql("{ inbox(first: 1) { totalCount } }", {}, hmac)
            assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        for pid in pids:
            assert _alive(pid), (tmp_path / "worker.log").read_text()
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            _wait_gone(pid)
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{login}"')
        await admin.close()
