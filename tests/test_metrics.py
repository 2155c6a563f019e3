"""Prometheus metrics from real processes: `signoff serve` at `/metrics` and `signoff worker` on
its metrics port, scraped before and after an approval flows through them (a submission, a
webhook delivery by the worker, an approval, a refused request)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signoff.api.auth import mint_token
from signoff.jobs.notifications import planning_slot
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.testing import RecordingHTTPServer, child_environment, free_port, signoff_processes
from signoff.worker import cron_jobs
from tests.conftest import RUN_ID, TEST_SECRET, actor

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


# Bounds for a hang, not speed claims: every wait below ends on the event or state it waits
# for. Two real processes starting and a delivery through the worker took over 60 s at load
# 12 on 2 cores; the test's own timeout covers the start, the waits and the clean-up.
DEADLINE = 300.0
pytestmark = pytest.mark.timeout(3 * DEADLINE)


SWEEPER_PERIOD = 15.0
"""The notification sweeper's cron period in the worker (seconds 0, 15, 30, 45 of a minute)."""


async def _clear_of_the_notification_sweeper(margin: float) -> None:
    """Return just after a sweeper tick when the next one is less than `margin` seconds away:
    the worker's cron follows the wall clock, which a test cannot move for another process."""
    until_next = SWEEPER_PERIOD - time.time() % SWEEPER_PERIOD
    if until_next < margin:
        await asyncio.sleep(until_next + 0.5)


async def _next_planning_slot() -> None:
    """Return once the planning slot of a change committed before now has ended.

    An API process queues one planning job per tenant and 0.2 s slot, sent by the slot's first
    change and carrying that change's trace (jobs/notifications.py::PlanningRequests); the
    request is sent before the mutation answers. So the next change is its slot's first, and
    the job it queues continues its trace."""
    slot = planning_slot(time.time())
    while planning_slot(time.time()) == slot:
        await asyncio.sleep(0.02)  # the API process's slots follow the wall clock


async def _wait(check: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)  # polling a real process's scrape, not a timer under test


@pytest.fixture
async def processes(
    database_url: str, redis_url: str, settings: Any, tmp_path: Path
) -> AsyncIterator[Flow]:
    tenant = f"metrics{uuid.uuid4().hex[:8]}"
    await load_templates(
        actor(tenant, "admin", "admin"), ServiceContext(settings=settings), DEMO_TEMPLATES
    )
    api_port, worker_port = free_port(), free_port()
    async with RecordingHTTPServer() as receiver, RecordingHTTPServer() as collector:
        env = child_environment(
            SIGNOFF_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces",
            OTEL_BSP_SCHEDULE_DELAY="200",
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
        api, worker = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
        commands = {"serve": ["serve"], "worker": ["worker"]}
        ready = [f"{api}/metrics", f"{worker}/metrics"]
        async with signoff_processes(commands, env, tmp_path, ready, timeout=DEADLINE):
            yield Flow(tenant, api, worker, receiver, collector)


@dataclass
class Flow:
    """A running API and worker (exporting traces to `collector`), their tenant, and the
    receiver of their webhook deliveries."""

    tenant: str
    api: str
    worker: str
    receiver: RecordingHTTPServer
    collector: RecordingHTTPServer

    async def gql(
        self, http: httpx.AsyncClient, query: str, variables: dict[str, Any], user: str, *roles: str
    ) -> Any:
        answer = await http.post(
            f"{self.api}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {_token(self.tenant, user, *roles)}"},
        )
        return answer.json()

    async def submit_with_a_webhook_subscriber(self, http: httpx.AsyncClient) -> Any:
        """bob gets webhook notifications; alice submits an item he reviews."""
        profile = {
            "userId": "bob",
            "roles": ["change-approver"],
            "addresses": [{"channel": "webhook", "address": f"{self.receiver.url}/hook"}],
        }
        answer = await self.gql(http, UPSERT, {"input": profile}, "admin", "admin")
        assert answer.get("data") and answer["data"]["upsertUserProfile"]["errors"] == [], answer
        await _next_planning_slot()
        submitted = await self.gql(
            http,
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
        return submitted["data"]["submitItem"]["item"]


async def test_api_and_worker_metrics_move_as_an_approval_flows(processes):
    flow = processes
    api, worker = flow.api, flow.worker
    async with httpx.AsyncClient(timeout=30) as http:

        async def gql(query: str, variables: dict[str, Any], user: str, *roles: str) -> Any:
            return await flow.gql(http, query, variables, user, *roles)

        api_before = (await http.get(f"{api}/metrics")).text
        worker_before = (await http.get(f"{worker}/metrics")).text
        assert "signoff_graphql_request_seconds" in api_before
        assert "signoff_notification_deliveries_total" in worker_before

        item = await flow.submit_with_a_webhook_subscriber(http)

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

        # the receiver's arrival is an event; the worker counts the delivery once it has
        # recorded it, right after: that is polled
        await flow.receiver.wait_for_requests(1, timeout=DEADLINE)
        await _wait(delivered, "the worker did not count its webhook delivery")

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


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, Any]


def exported_spans(collector: RecordingHTTPServer) -> list[ExportedSpan]:
    """Every span the collector received (OTLP/HTTP protobuf export requests)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans = []
    for request in collector.requests:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource in export.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {
                        a.key: getattr(a.value, a.value.WhichOneof("value"))
                        for a in span.attributes
                    }
                    spans.append(
                        ExportedSpan(
                            service,
                            span.name,
                            span.kind,
                            span.trace_id,
                            span.span_id,
                            span.parent_span_id,
                            attributes,
                        )
                    )
    return spans


async def test_a_submission_is_one_trace_from_the_api_through_the_worker(processes):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    flow = processes
    # The worker's notification sweeper (a cron at seconds 0, 15, 30 and 45) plans whatever is
    # not yet planned, in a trace of its own: if it ran between the commit and the submission's
    # planning job, that job would find nothing due and queue no delivery in this trace. Submit
    # where the schedule leaves the planning job (0.2 s away) a clear 10 s.
    (sweeper,) = [
        c for c in cron_jobs(Settings()) if c.coroutine.__name__ == "notification_sweeper"
    ]
    assert sweeper.second == {0, 15, 30, 45}, "SWEEPER_PERIOD must follow the worker's cron"
    await _clear_of_the_notification_sweeper(margin=10.0)
    async with httpx.AsyncClient(timeout=30) as http:
        await flow.submit_with_a_webhook_subscriber(http)

    wanted = {"mutation Submit", "job plan_notifications_job", "job deliver_due_job"}

    async def exported_with_their_parents() -> bool:
        # spans are exported in batches as they end: wait for these and those they hang on
        spans = exported_spans(flow.collector)
        by_id = {s.span_id: s for s in spans}
        mine = [s for s in spans if s.name in wanted]
        queued_by_planning = [
            s
            for s in mine
            if s.name == "job deliver_due_job"
            and by_id.get(s.parent_span_id, s).name == "job plan_notifications_job"
        ]
        return (
            {s.name for s in mine} == wanted
            and all(s.parent_span_id in by_id for s in mine)
            and bool(queued_by_planning)
        )

    await _wait(exported_with_their_parents, "the submission's trace was not exported")
    spans = exported_spans(flow.collector)
    by_id = {s.span_id: s for s in spans}

    (operation,) = [s for s in spans if s.name == "mutation Submit"]
    assert operation.service == "signoff-api"
    assert operation.attributes["graphql.operation.name"] == "Submit"
    assert operation.attributes["graphql.operation.type"] == "mutation"
    request = by_id[operation.parent_span_id]  # the HTTP request's server span
    assert request.kind == Span.SPAN_KIND_SERVER and request.service == "signoff-api"
    assert request.trace_id == operation.trace_id and not request.parent_span_id

    # the API queued the planning of the item's notifications: the worker continued its trace
    (planning,) = [
        s
        for s in spans
        if s.name == "job plan_notifications_job" and s.trace_id == operation.trace_id
    ]
    assert planning.service == "signoff-worker" and planning.kind == Span.SPAN_KIND_CONSUMER
    assert by_id[planning.parent_span_id].service == "signoff-api"
    # a planning that found deliveries due asked for a delivery job (whichever planning ran
    # first: the one of an earlier mutation may plan this item's events); the sweeper asks
    # too, in traces of its own. Every delivery job continues the trace of the job that asked.
    deliveries = [s for s in spans if s.name == "job deliver_due_job"]
    assert any(by_id[s.parent_span_id].name == "job plan_notifications_job" for s in deliveries)
    for delivery in deliveries:
        queued_by = by_id[delivery.parent_span_id]
        assert delivery.service == queued_by.service == "signoff-worker"
        assert queued_by.name in {"job plan_notifications_job", "job notification_sweeper"}
        assert queued_by.trace_id == delivery.trace_id


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
