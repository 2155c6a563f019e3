"""Query limits: static cost, nodes, aliases (fragments included), tokens, the per-caller cost
budget in Redis, the execution timeout, and `extensions.cost`. Refused operations run no SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import asyncpg
import pytest
from graphql import GraphQLList, get_nullable_type, is_composite_type, parse
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from signoff.api.cost import PAGING_ARGUMENTS, analyse
from signoff.api.limits import cost_model
from signoff.api.schema import schema as exported_schema
from signoff.settings import Settings

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code message } }
}"""
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}

AUDIT_BOMB = (
    "{ "
    + " ".join(
        f"a{n}: inbox(first: 100) "
        "{ edges { node { id title auditEvents { nodes { data } } } } }"
        for n in range(200)
    )
    + " }"
)
COUNT_BOMB = "{ " + " ".join(f"c{n}: inbox {{ totalCount }}" for n in range(1000)) + " }"


class Seen(list[str]):
    """SQL statements, recorded while the task that entered `with seen:` (or a task it starts
    inside) sends them: not those of tasks already running (the application's realtime
    listener checks its connection with a query of its own now and then)."""

    def __enter__(self) -> Seen:
        self.clear()
        self._token = _RECORDING.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _RECORDING.reset(self._token)


_RECORDING: ContextVar[Seen | None] = ContextVar("test_limits_statements", default=None)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """Every SQL statement any asyncpg connection of this process sends for the code inside
    `with statements:`, at the lowest level (prepared or not)."""
    seen = Seen()
    real_execute = asyncpg.connection.Connection._execute
    real_plain = asyncpg.connection.Connection.execute

    async def counting_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if _RECORDING.get() is seen:
            seen.append(query)
        return await real_execute(self, query, *args, **kwargs)

    async def counting_plain(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args and _RECORDING.get() is seen:  # with arguments: through _execute
            seen.append(query)
        return await real_plain(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "_execute", counting_execute)
    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counting_plain)
    yield seen


async def submit(gql: Any, n: int = 1) -> None:
    for i in range(n):
        data = await gql.data(
            SUBMIT,
            {"input": {"templateKey": "change-approval", "title": f"item {i}", "payload": PAYLOAD}},
            as_user="alice",
        )
        assert data["submitItem"]["errors"] == []


@pytest.mark.parametrize(
    ("query", "limits"),
    [(AUDIT_BOMB, {"cost", "nodes", "aliases"}), (COUNT_BOMB, {"cost", "aliases"})],
    ids=["200 aliased inbox pages with audit events", "1000 aliased inbox counts"],
)
async def test_alias_amplification_is_refused_before_any_sql(
    gql, demo_templates, statements, settings, query, limits
):
    await submit(gql, 3)
    token = gql.token("bob", "change-approver")
    with statements:
        response = await gql.http.post(
            "/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert statements == []
    body = response.json()
    assert body["data"] is None
    refused = {e["extensions"]["limit"]: e for e in body["errors"]}
    assert set(refused) == limits
    cost = refused["cost"]
    assert cost["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert cost["extensions"]["maximum"] == settings.max_query_cost
    assert cost["extensions"]["found"] > settings.max_query_cost
    assert cost["extensions"]["cost"]["requested"] == cost["extensions"]["found"]
    assert str(settings.max_query_cost) in cost["message"]


async def test_the_statement_counter_sees_a_normal_query(gql, demo_templates, statements):
    """The control for the test above: the same counter counts the statements of a real read."""
    await submit(gql)
    with statements:
        data = await gql.data(
            "{ inbox(first: 5) { totalCount edges { node { id } } } }",
            as_user="bob",
            roles=("change-approver",),
        )
    assert data["inbox"]["totalCount"] == 1
    assert len(statements) >= 2


async def test_cost_is_reported_requested_actual_remaining(gql, demo_templates, settings):
    await submit(gql, 2)
    token = gql.token("bob", "change-approver")
    query = (
        "{ inbox(first: 10) { totalCount edges { node { id auditEvents { nodes { seq } } } } } }"
    )
    response = await gql.run(query, token=token)
    body = response.json()
    assert "errors" not in body
    cost = body["extensions"]["cost"]
    # inbox 3 + totalCount 1 + 10 edges x auditEvents 1
    assert cost["requested"] == 3 + 1 + 10
    # only two items came back, so only two audit reads happened
    assert cost["actual"] == 3 + 1 + 2
    assert cost["limit"] == settings.max_query_cost
    assert cost["capacity"] == settings.rate_limit_capacity
    assert 0 < cost["remaining"] <= settings.rate_limit_capacity


async def test_aliases_inside_fragments_count_as_often_as_they_are_spread(gql, settings):
    per_fragment = 10
    spreads = settings.max_query_aliases // per_fragment + 1
    fragment = "fragment V on Query { " + " ".join(
        f"v{n}: viewer {{ userId }}" for n in range(per_fragment)
    )
    query = "{ ...V } " + fragment + " }"
    ok = await gql.run(query, token=gql.token("bob"))
    assert "errors" not in ok.json()
    spread_often = "fragment F on Query { " + " ".join(["...V"] * spreads) + " } "
    query = "{ ...F } " + spread_often + fragment + " }"
    refused = (await gql.run(query, token=gql.token("bob"))).json()
    (error,) = refused["errors"]
    assert error["extensions"]["limit"] == "aliases"
    assert error["extensions"]["found"] == spreads * per_fragment


async def test_a_fragment_bomb_is_priced_without_expanding_it(gql):
    """Each fragment spreads the previous one twice: 2^40 fields if expanded. Memoised, the
    analysis is linear in the document and the operation is refused at once."""
    levels = 40
    fragments = ["fragment L0 on Query { inbox(first: 100) { totalCount } }"]
    fragments += [f"fragment L{k} on Query {{ ...L{k - 1} ...L{k - 1} }}" for k in range(1, levels)]
    query = f"{{ ...L{levels - 1} }} " + " ".join(fragments)
    body = (await asyncio.wait_for(gql.run(query, token=gql.token("bob")), 10)).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["limit"] == "cost"
    assert body["errors"][0]["extensions"]["found"] == 4 * 2 ** (levels - 1)


async def test_too_many_tokens_are_refused_while_parsing(gql, settings):
    query = "{ " + " ".join(["__typename"] * settings.max_query_tokens) + " }"
    body = (await gql.run(query, token=gql.token("bob"))).json()
    assert body["data"] is None
    error = body["errors"][0]
    assert (error["extensions"]["code"], error["extensions"]["limit"]) == (
        "LIMIT_EXCEEDED",
        "tokens",
    )


async def test_the_cost_budget_is_shared_by_processes_and_says_when_to_retry(
    app_client, gql, demo_templates
):
    """Two applications (two API processes) with one Redis: the second sees what the first
    spent. The bucket refills so slowly that the test cannot race it."""
    changes = {"rate_limit_capacity": 20, "max_query_cost": 20, "rate_limit_per_second": 0.01}
    token = gql.token("carol", "change-approver")
    headers = {"Authorization": f"Bearer {token}"}
    query = {"query": "{ inbox(first: 5) { totalCount } }"}  # costs 3 + 1, refunds nothing
    async with app_client(**changes) as one, app_client(**changes) as two:
        spent = 0
        while spent + 4 <= 20:
            response = await (one if spent % 8 == 0 else two).post(
                "/graphql", json=query, headers=headers
            )
            assert response.status_code == 200, response.text
            spent += 4
        refused = await two.post("/graphql", json=query, headers=headers)
        other_user = await one.post(
            "/graphql",
            json=query,
            headers={"Authorization": f"Bearer {gql.token('dora', 'change-approver')}"},
        )
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    # 4 points needed, at most 0 left, 0.01 points per second
    assert 1 <= retry_after <= 400
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == retry_after
    assert other_user.status_code == 200


async def test_an_operation_past_the_timeout_is_abandoned_with_a_typed_error(
    app_client, gql, demo_templates
):
    async with app_client(query_timeout_seconds=1e-6) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ inbox { totalCount } }"},
            headers={"Authorization": f"Bearer {gql.token('bob')}"},
        )
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"


def test_every_list_field_is_bounded():
    """A list field needs a paging argument, a connection's page, or a declared bound."""
    model = cost_model(Settings())
    graphql_schema = exported_schema._schema
    unbounded = []
    for type_name, named in graphql_schema.type_map.items():
        if type_name.startswith("__") or not hasattr(named, "fields"):
            continue
        if not is_composite_type(named):
            continue
        for field_name, definition in named.fields.items():
            if not isinstance(get_nullable_type(definition.type), GraphQLList):
                continue
            paged = any(arg in definition.args for arg in PAGING_ARGUMENTS)
            in_connection = type_name.endswith("Connection") and field_name in ("edges", "nodes")
            declared = model.rule(type_name, field_name, definition).max_items
            if not (paged or in_connection or declared):
                unbounded.append(f"{type_name}.{field_name}")
    assert unbounded == [], "declare bounds in api/limits.py cost_model or field metadata"


_LEAF = st.sampled_from(["id", "title", "state", "priority"])


@st.composite
def inbox_queries(draw: st.DrawFn) -> tuple[str, int]:
    first = draw(st.integers(min_value=1, max_value=100))
    fields = draw(st.lists(_LEAF, min_size=1, max_size=4, unique=True))
    with_audit = draw(st.booleans())
    with_steps = draw(st.booleans())
    node = " ".join(fields)
    if with_audit:
        node += " auditEvents { nodes { seq } }"
    if with_steps:
        node += " steps { key decisions { outcome } }"
    copies = draw(st.integers(min_value=1, max_value=5))
    body = " ".join(
        f"p{n}: inbox(first: {first}) {{ edges {{ node {{ {node} }} }} }}" for n in range(copies)
    )
    return "{ " + body + " }", copies


@hyp_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inbox_queries())
def test_cost_and_nodes_grow_linearly_with_copies(case: tuple[str, int]) -> None:
    """Invariant: n aliased copies of a selection cost n times one copy (nothing is priced
    once and then reused for free), and the price never depends on field order."""
    query, copies = case
    model = cost_model(Settings())
    graphql_schema = exported_schema._schema
    whole = analyse(graphql_schema, parse(query), None, {}, model)
    one = query.split(" p1: ")[0] + " }" if copies > 1 else query
    single = analyse(graphql_schema, parse(one), None, {}, model)
    assert whole.cost == copies * single.cost
    assert whole.nodes == copies * single.nodes
    assert whole.aliases == copies
