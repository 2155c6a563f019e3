"""Per-operation metrics of the GraphQL endpoint: how long each operation took, by its name
and type (see `signoff.metrics`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from signoff import metrics


class OperationMetrics(SchemaExtension):
    """Times each operation from parse to result (first of the extensions, so the cost checks
    are inside the figure). A document that does not parse is counted as type `invalid`."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # no operation in the document (it did not parse or validate)
            kind = "invalid"
        metrics.GRAPHQL_SECONDS.labels(
            metrics.operation_label(context.operation_name), kind
        ).observe(time.perf_counter() - started)
