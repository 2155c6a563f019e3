"""Per-request cost of the edge checks (static cost analysis and the input walk) against the
rest of the pre-execution work, in one run: parse + validate of an inbox page (cached in
production; shown uncached for scale), then the checks on the same document. Run: `.venv/bin/python
scripts/edge_overhead.py`."""

from __future__ import annotations

import timeit
from types import SimpleNamespace

from graphql import parse, validate

from signoff.api.cost import analyse
from signoff.api.inputs import check_operation
from signoff.api.limits import CostCache, cost_model
from signoff.api.schema import schema
from signoff.settings import Settings

PAGE = """
query($first: Int, $after: String) {
  inbox(first: $first, after: $after, filter: {text: "deploy"}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    facets { states { value count } risks { value count } }
    edges { cursor dueAt overdue claim node {
      id title priority risk kind lastDecision { actorId outcome }
      steps { key stepState assignees { users groups roles } decisions { actorId outcome } }
    } }
  }
}"""

VARIABLES = {"first": 50, "after": None}
N = 2000


def main() -> None:
    graphql_schema = schema._schema
    model = cost_model(Settings())
    document = parse(PAGE)

    def uncached_validation() -> None:
        validate(graphql_schema, parse(PAGE))

    def cost() -> None:
        analyse(graphql_schema, document, None, VARIABLES, model)

    cache = CostCache()
    ctx = SimpleNamespace(
        query=PAGE,
        operation_name=None,
        variables=VARIABLES,
        graphql_document=document,
        schema=schema,
    )

    def cached_cost() -> None:
        cache.totals(ctx, model)

    def inputs() -> None:
        check_operation(graphql_schema, document, None, VARIABLES)

    for name, fn in (
        ("parse+validate (uncached)", uncached_validation),
        ("cost", cost),
        ("cost (cached, as served)", cached_cost),
        ("inputs", inputs),
    ):
        best = min(timeit.repeat(fn, number=N, repeat=5)) / N
        print(f"{name:28} {best * 1e6:8.1f} µs per request")


if __name__ == "__main__":
    main()
