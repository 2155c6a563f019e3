"""OpenTelemetry traces across the API and the workers, when an OTLP endpoint is configured.

`SIGNOFF_OTLP_TRACES_ENDPOINT` (an OTLP/HTTP traces URL, e.g.
`http://collector:4318/v1/traces`) turns tracing on for a process; unset, nothing here costs
anything: no provider, no middleware, no job arguments. With it set:

- each HTTP request to the API is a server span (Litestar's OpenTelemetry plugin), and each
  GraphQL operation a child span named after it (`api/operation_metrics.py`);
- a job enqueued while a span is current carries its W3C trace context as the job keyword
  `trace_context` (`job_kwargs`), and the worker runs the job inside a consumer span that
  continues that trace (`job_span`), so a submission, the planning of its notifications and
  their delivery are one trace; periodic jobs start traces of their own;
- spans are exported in batches by the OpenTelemetry SDK (`OTEL_BSP_*` variables tune the
  batching, as for any SDK), from a provider of this module's own rather than the global one,
  so that a library's instrumentation cannot pick up a half-configured global.

The processes report as services `signoff-api` and `signoff-worker` (`signoff dev`, one
process, as `signoff-dev`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from signoff.settings import Settings

CARRIER_KEY = "trace_context"
"""The job keyword that carries the enqueuer's trace context (removed before the job runs)."""

_provider: TracerProvider | None = None


def configure(settings: Settings, service: str) -> None:
    """Start exporting this process's spans as `service`, if an endpoint is configured (the
    first call in a process decides; later ones change nothing)."""
    global _provider
    if _provider is not None or not settings.otlp_traces_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from signoff import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": __version__})
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint))
    )
    _provider = provider


def provider() -> TracerProvider | None:
    """The process's tracer provider, or None when tracing is off."""
    return _provider


def tracer() -> trace.Tracer:
    """signoff's tracer (a no-op one when tracing is off)."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("signoff")


def flush() -> None:
    """Export what is buffered (at shutdown, so that the last spans are not lost)."""
    if _provider is not None:
        _provider.force_flush()


def shutdown() -> None:
    """Flush and stop exporting (tests that configure tracing more than once)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def job_kwargs() -> dict[str, Any]:
    """The keywords an enqueued job carries so that the worker continues the current trace:
    none when tracing is off or no span is current."""
    if _provider is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {CARRIER_KEY: carrier} if carrier else {}


@contextlib.contextmanager
def span(name: str) -> Iterator[trace.Span | None]:
    """A span named `name` under the current one, current while the block runs; None (and
    nothing done) when tracing is off."""
    if _provider is None:
        yield None
        return
    with tracer().start_as_current_span(name) as current:
        yield current


@contextlib.contextmanager
def job_span(name: str, carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Run a job inside a consumer span named after it, continuing the trace its enqueuer
    passed (`carrier`), if any. Exceptions are recorded on the span and raised."""
    if _provider is None:
        yield
        return
    parent = propagate.extract(dict(carrier)) if carrier else None
    with tracer().start_as_current_span(
        f"job {name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "arq", "messaging.operation.name": name},
    ):
        yield
