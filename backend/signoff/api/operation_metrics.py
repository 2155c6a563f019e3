"""Per-operation metrics and log lines of the GraphQL endpoint: how long each operation took,
by its name and type (see `signoff.metrics`), and one log line per operation on the
`signoff.operations` logger (on only with `SIGNOFF_ACCESS_LOG`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from signoff import metrics, tracing
from signoff.request_ids import bind

OPERATIONS_LOGGER = "signoff.operations"
log = logging.getLogger(OPERATIONS_LOGGER)
log.setLevel(logging.WARNING)  # one line per operation only when asked for (see `enable`)


def enable_operation_log() -> None:
    """Log one INFO line per GraphQL operation (`SIGNOFF_ACCESS_LOG`)."""
    log.setLevel(logging.INFO)


class OperationMetrics(SchemaExtension):
    """Times each operation from parse to result (first of the extensions, so the cost checks
    are inside the figure). A document that does not parse is counted as type `invalid`."""

    def on_execute(self) -> Iterator[None]:
        bind(operation=metrics.operation_label(self.execution_context.operation_name))
        yield

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        with tracing.span("graphql") as span:
            yield
            context = self.execution_context
            try:
                kind = context.operation_type.value
            except Exception:  # no operation in the document (it did not parse or validate)
                kind = "invalid"
            name = metrics.operation_label(context.operation_name)
            errors = len(context.result.errors or []) if context.result else 0
            if span is not None:
                span.update_name(f"{kind} {name}")
                span.set_attributes(
                    {
                        "graphql.operation.type": kind,
                        "graphql.operation.name": name,
                        "signoff.graphql.errors": errors,
                    }
                )
        took = time.perf_counter() - started
        bind(operation=name)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s in %.1f ms",
                kind,
                name,
                took * 1000,
                extra={"duration_ms": round(took * 1000, 1), "errors": errors},
            )
        metrics.GRAPHQL_SECONDS.labels(name, kind).observe(took)
