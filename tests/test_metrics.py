"""Prometheus metrics from real processes: `signoff serve` at `/metrics` and `signoff worker` on
its metrics port, scraped before and after an approval flows through them (a submission, a
webhook delivery by the worker, an approval, a refused request)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signoff.api.auth import mint_token
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.testing import RecordingHTTPServer
from tests.conftest import RUN_ID, TEST_SECRET, actor
from tests.test_quickstart import _free_port

REPO = Path(__file__).resolve().parents[1]
DEMO_TEMPLATES = REPO / "backend" / "signoff" / "demo"
WEBHOOK_SECRET = "metrics-webhook-secret-0123456789"

SUBMIT = """mutation Submit($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id steps { id } } errors { code } } }"""
APPROVE = """mutation Approve($stepId: ID!) {
  approveStep(input: {stepId: $stepId}) { item { state } errors { code } } }"""
UPSERT = """mutation Profile($input: UserProfileInput!) {
  upsertUserProfile(input: $input) { errors { code message } } }"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def _token(tenant: str, user: str, *roles: str) -> str:
    settings = Settings(environment="development", jwt_secret=TEST_SECRET)
    return mint_token(settings, user_id=user, tenant_id=tenant, roles=roles)


async def _wait(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)  # polling a real process's scrape, not a timer under test


@pytest.fixture
async def processes(
    database_url: str, redis_url: str, settings: Any, tmp_path: Path
) -> AsyncIterator[tuple[str, str, str, RecordingHTTPServer]]:
    tenant = f"metrics{uuid.uuid4().hex[:8]}"
    await load_templates(
        actor(tenant, "admin", "admin"), ServiceContext(settings=settings), DEMO_TEMPLATES
    )
    api_port, worker_port = _free_port(), _free_port()
    async with RecordingHTTPServer() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        env.update(
            SIGNOFF_ENVIRONMENT="development",
            SIGNOFF_JWT_SECRET=TEST_SECRET,
            SIGNOFF_DATABASE_URL=database_url,
            SIGNOFF_REDIS_URL=redis_url,
            SIGNOFF_REDIS_PREFIX=f"signoff-test-{RUN_ID}-metrics-{tenant}",
            SIGNOFF_TIMER_TENANTS=tenant,
            SIGNOFF_PORT=str(api_port),
            SIGNOFF_WORKER_METRICS_PORT=str(worker_port),
            SIGNOFF_DB_POOL_MIN="1",
            SIGNOFF_DB_POOL_MAX="4",
            SIGNOFF_LOG_LEVEL="WARNING",
            SIGNOFF_OUTBOUND_ALLOW="127.0.0.1/32",
            SIGNOFF_NOTIFY_CHANNELS=json.dumps(
                {"webhook": {"secrets": [WEBHOOK_SECRET], "timeout_seconds": 5}}
            ),
        )
        logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("serve", "worker")}
        running = {
            name: subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
                [sys.executable, "-m", "signoff.cli", name],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for name, out in logs.items()
        }
        api, worker = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
        try:
            async with httpx.AsyncClient() as probe:
                for url in (api, worker):

                    async def up(url: str = url) -> bool:
                        for name, process in running.items():
                            assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
                        try:
                            return (await probe.get(f"{url}/metrics")).status_code == 200
                        except httpx.TransportError:
                            return False

                    await _wait(up, f"{url} did not start")
            yield tenant, api, worker, receiver
        finally:
            for process in running.values():
                process.terminate()
            for process in running.values():
                process.wait(timeout=30)
            for out in logs.values():
                out.close()


async def test_api_and_worker_metrics_move_as_an_approval_flows(processes):
    tenant, api, worker, receiver = processes
    async with httpx.AsyncClient(timeout=30) as http:

        async def gql(query: str, variables: dict[str, Any], user: str, *roles: str) -> Any:
            answer = await http.post(
                f"{api}/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {_token(tenant, user, *roles)}"},
            )
            return answer.json()

        api_before = (await http.get(f"{api}/metrics")).text
        worker_before = (await http.get(f"{worker}/metrics")).text
        assert "signoff_graphql_request_seconds" in api_before
        assert "signoff_notification_deliveries_total" in worker_before

        profile = {
            "userId": "bob",
            "roles": ["change-approver"],
            "addresses": [{"channel": "webhook", "address": f"{receiver.url}/hook"}],
        }
        answer = await gql(UPSERT, {"input": profile}, "admin", "admin")
        assert answer.get("data") and answer["data"]["upsertUserProfile"]["errors"] == [], answer
        submitted = await gql(
            SUBMIT,
            {
                "input": {
                    "templateKey": "change-approval",
                    "title": "metrics",
                    "payload": {"title": "t", "system": "payments", "rollback_plan": "redeploy"},
                }
            },
            "alice",
            "requester",
        )
        item = submitted["data"]["submitItem"]["item"]

        async def delivered() -> bool:
            text = (await http.get(f"{worker}/metrics")).text
            return (
                value(
                    text,
                    "signoff_notification_deliveries_total",
                    channel="webhook",
                    outcome="delivered",
                )
                >= 1
            )

        await _wait(delivered, "the worker delivered nothing to the webhook")
        assert receiver.requests, "the delivery reached the receiver"

        approved = await gql(APPROVE, {"stepId": item["steps"][0]["id"]}, "bob", "change-approver")
        assert approved["data"]["approveStep"]["item"]["state"] == "APPROVED", approved
        refused = await gql(APPROVE, {"stepId": item["steps"][0]["id"]}, "bob", "change-approver")
        (error,) = refused["data"]["approveStep"]["errors"]

        after = (await http.get(f"{api}/metrics")).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(api_before, name, **labels)

    assert moved("signoff_decisions_total", outcome="approve") == 1
    assert moved("signoff_audit_events_total", action="item.submitted") == 1
    assert moved("signoff_graphql_request_seconds_count", operation="Approve", type="mutation") == 2
    assert moved("signoff_graphql_request_seconds_count", operation="Submit", type="mutation") == 1
    assert moved("signoff_graphql_errors_total", code=error["code"], kind="user") == 1
    assert value(after, "signoff_db_pool_connections", state="idle") >= 0
    assert ("signoff_queue_jobs", ()) in samples(after)


def test_dashboard_and_docs_name_only_series_that_exist():
    import re

    from prometheus_client.metrics import MetricWrapperBase

    from signoff import metrics

    series = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    # the exposed name of each series (prometheus-client adds `_total` to counters)
    names = {m._name + ("_total" if m._type == "counter" else "") for m in series}  # noqa: SLF001
    docs = REPO / "docs" / "operations"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for expr in expressions
        for name in re.findall(r"signoff_[a-z_]+", expr)
    }
    assert used == names, "the dashboard shows every series, and only those"
    documented = set(
        re.findall(r"^\| `(signoff_[a-z_]+)`", (docs / "metrics.md").read_text(), re.M)
    )
    assert documented == names
