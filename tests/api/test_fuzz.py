"""Fuzzing: operations generated from `schema.graphql` (hypothesis-graphql), valid and invalid,
sent to a running production-mode server (`signoff serve` in a subprocess) with valid tokens.

Invariants, for every operation: no HTTP 500, no unexpected error (neither in the response nor
in the server's log), and nothing of another tenant in the response. Examples are bounded so
the whole module takes well under a minute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import hypothesis_graphql
import jwt
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes

from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.testing import child_environment, free_port, signoff_processes
from tests.conftest import DEMO_TEMPLATES, REPO, RUN_ID, TEST_SECRET, actor

SCHEMA = (REPO / "schema.graphql").read_text()
MARKER = f"SECRET-{uuid.uuid4().hex}"
KNOWN_IDS: list[str] = []
ROLES = ["admin", "change-approver", "security-reviewer", "executor"]

SUBMIT = """mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id steps { id } } errors { code message } } }"""
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


def _json_literals() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
        st.text(max_size=30).map(nodes.String),
        st.booleans().map(nodes.Boolean),
    )
    return st.one_of(
        scalar,
        st.lists(scalar, max_size=4).map(nodes.List),
        st.just(nodes.Object([])),
    )


SCALARS = {
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
    "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
    "Time": st.times().map(lambda t: nodes.String(t.isoformat())),
    "JSON": _json_literals(),
    "ID": st.one_of(
        st.deferred(lambda: st.sampled_from(KNOWN_IDS)),
        st.text(max_size=40),
    ).map(nodes.String),
}
FUZZ = hypothesis_settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def production_token(tenant: str, user: str) -> str:
    claims = {
        "sub": user,
        "tenant": tenant,
        "roles": ROLES,
        "iss": "signoff-dev",
        "aud": "signoff",
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


class Server:
    """The running server, a client with the fuzzing user's token, and the server's log."""

    def __init__(self, url: str, token: str, log: Path) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.log = log

    def post(self, query: str) -> httpx.Response:
        return self.http.post("/graphql", json={"query": query})


@pytest.fixture(scope="module")
async def server(
    database_url: str, redis_url: str, settings: Any, tmp_path_factory: Any
) -> AsyncIterator[Server]:
    mine, other = f"fuzz{uuid.uuid4().hex[:8]}", f"other{uuid.uuid4().hex[:8]}"
    services = ServiceContext(settings=settings)
    for tenant in (mine, other):
        await load_templates(actor(tenant, "admin", "admin"), services, DEMO_TEMPLATES)
    port = free_port()
    logs = tmp_path_factory.mktemp("fuzz")
    env = child_environment(
        SIGNOFF_ENVIRONMENT="production",
        SIGNOFF_JWT_SECRET=TEST_SECRET,
        SIGNOFF_DATABASE_URL=database_url,
        SIGNOFF_REDIS_URL=redis_url,
        SIGNOFF_REDIS_PREFIX=f"signoff-test-{RUN_ID}-fuzz",
        SIGNOFF_PORT=str(port),
        SIGNOFF_DB_POOL_MIN="1",
        SIGNOFF_DB_POOL_MAX="4",
        SIGNOFF_RATE_LIMIT_CAPACITY="0",
        SIGNOFF_LOG_LEVEL="WARNING",
        SIGNOFF_QUERY_TIMEOUT_SECONDS="20",
    )
    url = f"http://127.0.0.1:{port}"
    async with (
        signoff_processes({"server": ["serve"]}, env, logs, [f"{url}/healthz"]),
        httpx.AsyncClient(base_url=url) as probe,
    ):
        for tenant, title in ((mine, "fuzzed item"), (other, MARKER)):
            response = await probe.post(
                "/graphql",
                json={
                    "query": SUBMIT,
                    "variables": {
                        "input": {
                            "templateKey": "change-approval",
                            "title": title,
                            "payload": PAYLOAD,
                            "externalRef": title,
                        }
                    },
                },
                headers={"Authorization": f"Bearer {production_token(tenant, 'alice')}"},
            )
            item = response.json()["data"]["submitItem"]["item"]
            KNOWN_IDS.extend([item["id"], *(s["id"] for s in item["steps"])])
        fuzz = Server(url, production_token(mine, "alice"), logs / "server.log")
        yield fuzz
        fuzz.http.close()


def check(server: Server, query: str) -> None:
    response = server.post(query)
    assert response.status_code != 500, (query, response.text[:500])
    assert response.status_code in (200, 400, 401, 413, 429), (query, response.status_code)
    assert MARKER not in response.text, (query, response.text[:500])
    if response.headers.get("content-type", "").startswith("application/json"):
        for error in response.json().get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            assert code != "INTERNAL_ERROR", (query, error)
            assert error["message"] != "Unexpected error.", (query, error)


def assert_log_clean(server: Server) -> None:
    text = server.log.read_text()
    assert "unexpected error" not in text.lower(), text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@FUZZ
@given(query=hypothesis_graphql.queries(SCHEMA, custom_scalars=SCALARS))
def test_generated_queries(server, query):
    check(server, query)


@hypothesis_settings(parent=FUZZ, max_examples=50)
@given(query=hypothesis_graphql.mutations(SCHEMA, custom_scalars=SCALARS))
def test_generated_mutations(server, query):
    check(server, query)


@hypothesis_settings(parent=FUZZ, max_examples=60)
@given(query=hypothesis_graphql.from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_generated_invalid_operations(server, query):
    check(server, query)


def test_the_server_logged_no_unexpected_error(server):
    """Runs after the fuzzing tests of this module (same module, declared last)."""
    assert_log_clean(server)
