"""Two API processes share one PostgreSQL: a change made through one reaches the other's
subscribers (LISTEN/NOTIFY wakes them, the audit table feeds them)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from signoff.testing import free_port
from tests.realtime.conftest import INBOX, PAYLOADS, Socket, global_id, submit, wait_subscribed

STARTUP_TIMEOUT = 60.0

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code message } }
}"""


@pytest.fixture
async def other_process(settings) -> AsyncIterator[str]:
    """A second API process (`signoff serve`) on loopback; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "SIGNOFF_ENVIRONMENT": settings.environment,
        "SIGNOFF_DATABASE_URL": settings.database_url,
        "SIGNOFF_REDIS_URL": settings.redis_url,
        "SIGNOFF_REDIS_PREFIX": settings.redis_prefix,
        "SIGNOFF_JWT_SECRET": settings.jwt_secret,
        "SIGNOFF_JWT_ISSUER": settings.jwt_issuer,
        "SIGNOFF_JWT_AUDIENCE": settings.jwt_audience,
        "SIGNOFF_HOST": "127.0.0.1",
        "SIGNOFF_PORT": str(port),
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
        [sys.executable, "-m", "signoff.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        async with httpx.AsyncClient() as http:
            while True:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                try:
                    if (await http.get(f"{base}/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert loop.time() < deadline, "the second API process did not start"
                await asyncio.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)


async def test_a_change_made_through_one_process_reaches_the_other(
    other_process: str, ws_url: str, hub: Any, gql, services, tenant, demo_templates
):
    # Subscribe here, mutate there.
    async with Socket(ws_url, gql.token("bob", "change-approver")) as here:
        await here.subscribe(INBOX)
        await wait_subscribed(hub, 1)
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{other_process}/graphql",
                json={
                    "query": SUBMIT,
                    "variables": {
                        "input": {
                            "templateKey": "change-approval",
                            "title": "via the other process",
                            "payload": PAYLOADS["change-approval"],
                        }
                    },
                },
                headers={"Authorization": f"Bearer {gql.token('dave')}"},
            )
        body = response.json()
        assert body["data"]["submitItem"]["errors"] == [], body
        pushed = (await here.next())["inboxChanged"]
        assert pushed["itemId"] == body["data"]["submitItem"]["item"]["id"]
        assert pushed["item"]["title"] == "via the other process"

    # Subscribe there, mutate here. The other process's hub is not ours to inspect, so the
    # subscription resumes from the last cursor: the first change may come by replay, the
    # second is committed after the first was delivered, so it can only come live.
    there_url = other_process.replace("http://", "ws://") + "/graphql"
    async with Socket(there_url, gql.token("bob", "change-approver")) as there:
        await there.subscribe(INBOX, {"after": pushed["cursor"]})
        first = await submit(services, tenant, "change-approval", "first via this process")
        received = (await there.next())["inboxChanged"]
        assert received["itemId"] == global_id("WorkflowItem", first.id)
        second = await submit(services, tenant, "change-approval", "second via this process")
        received = (await there.next())["inboxChanged"]
        assert received["itemId"] == global_id("WorkflowItem", second.id)
        assert received["item"]["title"] == "second via this process"
