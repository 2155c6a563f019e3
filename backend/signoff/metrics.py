"""Prometheus metrics of an API process or a worker (prometheus-client).

Every process keeps its own series and is scraped on its own: the API at `/metrics`, a worker
on `SIGNOFF_WORKER_METRICS_PORT`. Where several processes must share one scrape address (a
process manager forking workers behind one port), set `PROMETHEUS_MULTIPROC_DIR` to an empty
directory before they start: prometheus-client then keeps the series in files there and
`/metrics` sums them (gauges of open subscriptions and pool connections per live process).

What is counted is counted after the fact it describes: decisions and escalations once their
transaction has committed, deliveries once their outcome is recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

GRAPHQL_SECONDS = Histogram(
    "signoff_graphql_request_seconds",
    "GraphQL operations by operation name and type, from parse to result.",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "signoff_graphql_errors_total",
    "Errors by code: GraphQL errors (refusals before or during execution) and the typed user "
    "errors that mutations return in their payload.",
    ["code", "kind"],
)
DECISIONS = Counter(
    "signoff_decisions_total", "Committed decisions on steps, by outcome.", ["outcome"]
)
ESCALATIONS = Counter(
    "signoff_escalations_total", "Committed step escalations, by what escalated them.", ["by"]
)
AUDIT_EVENTS = Counter(
    "signoff_audit_events_total", "Committed audit events, by action.", ["action"]
)
TIMER_LATENESS = Histogram(
    "signoff_timer_lateness_seconds",
    "How long after its due time a timer fired.",
    ["kind"],
    buckets=LATENESS_BUCKETS,
)
DELIVERIES = Counter(
    "signoff_notification_deliveries_total",
    "Notification delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
NOTIFICATION_FAILURES = Counter(
    "signoff_notification_failures_total",
    "Notification work of one tenant that failed and was left to a later run, by stage: "
    "`plan` (planning the tenant's events) or `deliver` (a batch of its deliveries).",
    ["stage"],
)
ALERT_EVALUATIONS = Counter(
    "signoff_alert_evaluations_total",
    "Alert rule evaluations, by rule kind and what they did (fire, clear, stay).",
    ["kind", "move"],
)
ALERTS_FIRED = Counter(
    "signoff_alerts_fired_total", "Alerts raised (one per rule episode), by rule kind.", ["kind"]
)
SNAPSHOT_REWRITE_FAILURES = Counter(
    "signoff_retention_snapshot_rewrite_failures_total",
    "Review snapshots retention could not rewrite (each retried by the next run), by the "
    "evidence store and the stage that failed: `read` (the stored snapshot), `decode` (not the "
    "JSON of a history) or `write` (the rewritten content).",
    ["storage", "stage"],
)
SUBSCRIPTIONS = Gauge(
    "signoff_open_subscriptions",
    "GraphQL subscriptions open in this process.",
    multiprocess_mode="livesum",
)
QUEUE_DEPTH = Gauge(
    "signoff_queue_jobs",
    "Jobs waiting in the arq queue (read at scrape time).",
    multiprocess_mode="max",
)
POOL_CONNECTIONS = Gauge(
    "signoff_db_pool_connections",
    "Database pool connections of this process, by state (read at scrape time).",
    ["state"],
    multiprocess_mode="livesum",
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATIONS = 200
_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """The label of a client-chosen operation name, bounded: a name that is not a plain
    GraphQL name, or any name past the first 200 seen, is counted as `other`."""
    if not name:
        return "anonymous"
    if name in _operations:
        return name
    if not _NAME.match(name) or len(_operations) >= _MAX_OPERATIONS:
        return "other"
    _operations.add(name)
    return name


def count_committed(events: Iterable[Mapping[str, Any]]) -> None:
    """Count the audit events of a committed unit of work (escalations among them)."""
    for event in events:
        action = str(event.get("action", ""))
        AUDIT_EVENTS.labels(action).inc()
        if action == "step.escalate":
            data = event.get("data") or {}
            ESCALATIONS.labels(str(data.get("by", "timer"))).inc()


def set_pool(size: int, idle: int) -> None:
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)


def exposition() -> tuple[bytes, str]:
    """The exposition text of this process (or of all processes sharing a multiprocess dir)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose this worker's series over HTTP on `port` (a thread of prometheus-client)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=host, registry=registry)
    else:
        start_http_server(port, addr=host)
