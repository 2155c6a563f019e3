"""A known document (a query text that parsed and validated before) skips the hooks whose work
its text alone decides, and nothing else: the same requests give the same answers, the same
changes, the same metrics and the same log lines whether or not their documents are known.

Each example runs one sequence of real requests twice through the HTTP app, each time in a
tenant of its own: once with every document taken the generic way (parsed, checked and
validated, as on its first sight), once with every document known. What each run answered
(status, headers that carry rules, body), wrote (its tenant's audit trail), counted and logged
is compared after the tenant, ids and request ids are replaced by placeholders."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff import metrics
from signoff.api.auth import mint_token
from signoff.api.extension_hooks import KnownDocuments
from signoff.app import create_app
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from tests.conftest import DEMO_TEMPLATES, actor, running_app

APPROVER = ("approver", ("change-approver",))
REQUESTER = ("requester", ())
READER = ("reader", ("reviewer",))
ADMIN = ("root", ("admin",))

SUBMIT = """mutation Submit($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id state steps { id key stepState } } errors { code field } }
}"""
APPROVE = """mutation Approve($input: DecideStepInput!) {
  approveStep(input: $input) { item { id state version } errors { code message field } }
}"""
REJECT = """mutation Reject($input: DecideStepInput!) {
  rejectStep(input: $input) { item { id state } errors { code message field } }
}"""
INBOX = """query Inbox($first: Int, $after: String) {
  inbox(first: $first, after: $after) {
    edges { cursor dueAt claim node { id title priority risk state } }
    pageInfo { hasNextPage endCursor }
  }
}"""
FRAGMENTS = """query Who { ...Root }
fragment Root on Query { viewer { ...Me } me2: viewer { userId } }
fragment Me on Viewer { userId tenantId roles groups }"""
TWO_OPERATIONS = """query First { viewer { userId } }
query Second { a: viewer { roles } b: __typename }"""
ITEM = """query Item($id: ID!) { item(id: $id) { id state title steps { key stepState } } }"""
ALIASES = "{ " + " ".join(f"a{i}: __typename" for i in range(60)) + " }"
DEEP = "{ viewer { userId } " + "inbox { edges { node { steps { decisions { actorId } } } } } }"
# 45 aliases of a field that weighs 20: 900 points of the budget's 1,000, so the second such
# request of a caller finds the bucket short (429)
COSTLY = "query Costly { " + " ".join(f"c{i}: verifyAuditChain {{ ok }}" for i in range(45)) + " }"
WRONG_VARIABLE = "query Bad($first: Int) { inbox(first: $first) { edges { cursor } } }"


@dataclass(frozen=True)
class Call:
    """One request of a sequence: its document, variables (placeholders `$item`/`$step` are
    the run's own item and step), who sends it (or a refused token, or none), method and
    operation name."""

    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    who: tuple[str, tuple[str, ...]] | str | None = READER
    method: str = "POST"
    operation: str | None = None


CALLS: list[Call] = [
    Call("{ __typename }"),
    Call(FRAGMENTS),
    Call(TWO_OPERATIONS, operation="First"),
    Call(TWO_OPERATIONS, operation="Second"),
    Call(TWO_OPERATIONS, operation="Third"),  # no such operation: 400
    Call(TWO_OPERATIONS),  # two operations, none named: refused
    Call(INBOX, {"first": 5}),
    Call(INBOX, {"first": 0}),  # outside 1..max: INVALID_INPUT
    Call(INBOX, {"first": 5, "after": "not a cursor \u0000"}),
    Call(INBOX, {"first": 3}, who=APPROVER),
    Call(WRONG_VARIABLE, {"first": "many"}),  # a variable of the wrong type
    Call(ITEM, {"id": "$item"}, who=REQUESTER),
    Call(ITEM, {"id": "garbage"}, who=REQUESTER),
    Call(APPROVE, {"input": {"stepId": "$step"}}, who=READER),  # not an assignee
    Call(APPROVE, {"input": {"stepId": "$step"}}, who=APPROVER),
    Call(REJECT, {"input": {"stepId": "$step"}}, who=APPROVER),  # no justification
    Call(APPROVE, {"input": {"stepId": "$step", "reason": "a\u0000b"}}, who=APPROVER),
    Call(SUBMIT, {"input": {"templateKey": "change-approval", "title": "x" * 400}}, REQUESTER),
    Call("{ __typename }", who="refused"),  # a token that does not verify: 401
    Call(INBOX, {"first": 2}, who=None),  # no token
    Call(ALIASES),  # over the alias limit
    Call(DEEP),
    Call(COSTLY, who=ADMIN),
    Call(COSTLY, who=ADMIN),  # by now the caller's budget is spent: 429 with Retry-After
    Call("{ __schema { types { name } } }"),
    Call("{ viewer { userId } }", method="GET"),
    Call(APPROVE, {"input": {"stepId": "$step"}}, who=APPROVER, method="GET"),  # not by GET
    Call("{ viewer { nosuchfield } }"),  # invalid: never known
    Call("{ viewer { userId "),  # does not parse: never known
]


@dataclass
class Run:
    """What one run of a sequence answered, wrote, counted and logged (normalised)."""

    answers: list[Any] = field(default_factory=list)
    trail: list[Any] = field(default_factory=list)
    counted: dict[str, float] = field(default_factory=dict)
    logged: list[Any] = field(default_factory=list)


class Normaliser:
    """Replaces a run's tenant, ids and timestamps-free unique values by placeholders, in order
    of first sight, so that two runs in two tenants compare."""

    _OPAQUE = re.compile(r"[A-Za-z0-9_-]{20,}")
    _UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

    def __init__(self, tenant: str, ids: list[str]) -> None:
        self.tenant = tenant
        self.names: dict[str, str] = {}
        for value in ids:
            self.name(value)

    def name(self, value: str) -> str:
        return self.names.setdefault(value, f"<id{len(self.names)}>")

    def text(self, value: str) -> str:
        for known, placeholder in self.names.items():
            value = value.replace(known, placeholder)
        value = value.replace(self.tenant, "<tenant>")
        value = self._UUID.sub(lambda m: self.name(m.group()), value)
        if self._OPAQUE.fullmatch(value):  # a cursor or global id: what it encodes
            try:
                inner = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            except ValueError:
                return value
            return f"<opaque {self.text(inner)}>"
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _counted() -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in (metrics.GRAPHQL_SECONDS, metrics.GRAPHQL_ERRORS):
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith(("_count", "_total")):
                    key = sample.name + json.dumps(sample.labels, sort_keys=True)
                    out[key] = sample.value
    return out


class Sequencer:
    """Runs sequences of calls against one app, in a fresh tenant each time."""

    def __init__(
        self,
        application: Any,
        settings: Settings,
        services: ServiceContext,
        owner_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.application = application
        self.http: httpx.AsyncClient
        # the test deployment's settings (development): the same secret, and they mint tokens
        self.minter = settings
        self.services = services
        self.owner_url = owner_url
        self.caplog = caplog
        self.runs = itertools.count()

    def _headers(self, tenant: str, who: Any, request_id: str) -> dict[str, str]:
        headers = {"X-Request-Id": request_id}
        if who == "refused":
            headers["Authorization"] = "Bearer not.a.token"
        elif who is not None:
            user, roles = who
            token = mint_token(self.minter, user_id=user, tenant_id=tenant, roles=roles)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _send(self, tenant: str, call: Call, variables: Any, request_id: str) -> Any:
        headers = self._headers(tenant, call.who, request_id)
        body: dict[str, Any] = {"query": call.query, "variables": variables}
        if call.operation is not None:
            body["operationName"] = call.operation
        if call.method == "GET":
            params = {"query": call.query, "variables": json.dumps(variables)}
            if call.operation is not None:
                params["operationName"] = call.operation
            return await self.http.get("/graphql", params=params, headers=headers)
        return await self.http.post("/graphql", json=body, headers=headers)

    async def run(self, calls: list[Call], *, known: bool, monkeypatch: Any) -> Run:
        number = next(self.runs)
        # a client address of its own: a refused or missing token spends the address's budget
        transport = httpx.ASGITransport(app=self.application, client=(f"10.0.0.{number}", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://signoff.test") as http:
            self.http = http
            return await self._run(calls, known=known, monkeypatch=monkeypatch, number=number)

    async def _run(self, calls: list[Call], *, known: bool, monkeypatch: Any, number: int) -> Run:
        tenant = f"t{uuid.uuid4().hex[:12]}"
        await load_templates(actor(tenant, "admin", "admin"), self.services, DEMO_TEMPLATES)
        submitted = await self._send(
            tenant,
            Call(SUBMIT, who=REQUESTER),
            {
                "input": {
                    "templateKey": "change-approval",
                    "title": "Change",
                    "payload": {"title": "Change", "system": "s", "rollback_plan": "undo"},
                }
            },
            "setup",
        )
        item = submitted.json()["data"]["submitItem"]["item"]
        step = next(s["id"] for s in item["steps"] if s["stepState"] == "ACTIVE")
        places = {"$item": item["id"], "$step": step}
        normalise = Normaliser(tenant, [item["id"], step])

        def filled(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: filled(v) for k, v in value.items()}
            return places.get(value, value) if isinstance(value, str) else value

        # every document of the sequence seen once (unauthenticated: refused, nothing changes),
        # in both modes alike; in the known mode that makes each valid one known
        for call in calls:
            await self._send(
                tenant,
                Call(call.query, who=None, operation=call.operation),
                filled(call.variables),
                "warm-up",
            )
        result = Run()
        before = _counted()
        self.caplog.clear()
        with monkeypatch.context() as patch:
            if not known:
                patch.setattr(KnownDocuments, "get", lambda self, query: None)
            for i, call in enumerate(calls):
                response = await self._send(tenant, call, filled(call.variables), f"req-{i}")
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text
                result.answers.append(
                    (
                        response.status_code,
                        response.headers.get("content-type"),
                        response.headers.get("retry-after"),
                        response.headers.get("x-request-id"),
                        normalise(body),
                    )
                )
        after = _counted()
        result.counted = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)}
        result.logged = [
            (r.name, r.levelname, normalise(r.getMessage()))
            for r in self.caplog.records
            if r.name.startswith("signoff")
        ]
        conn = await asyncpg.connect(self.owner_url)
        try:
            rows = await conn.fetch(
                """SELECT action, actor_id, request_id, reason, data::text AS data
                FROM audit_event WHERE tenant_id = $1 ORDER BY id""",
                tenant,
            )
        finally:
            await conn.close()
        result.trail = [normalise(dict(r)) for r in rows]
        return result


@pytest.fixture(params=["development", "production"])
async def sequencer(
    request: pytest.FixtureRequest,
    settings: Settings,
    services: ServiceContext,
    owner_database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Sequencer]:
    # a bucket of the least capacity allowed, refilled too slowly to matter within a test: the
    # costly requests of a sequence run it dry (429), and what is left never depends on time
    configured = dataclasses.replace(
        settings,
        environment=request.param,
        rate_limit_capacity=settings.max_query_cost,
        rate_limit_per_second=0.001,
    )
    application = create_app(configured, clock=services.clock)
    caplog.set_level(logging.INFO, logger="signoff")
    async with running_app(application):
        yield Sequencer(application, settings, services, owner_database_url, caplog)


async def _compare(sequencer: Sequencer, calls: list[Call], monkeypatch: Any) -> Run:
    generic = await sequencer.run(calls, known=False, monkeypatch=monkeypatch)
    known = await sequencer.run(calls, known=True, monkeypatch=monkeypatch)
    assert known.answers == generic.answers
    assert known.trail == generic.trail
    assert known.counted == generic.counted
    assert known.logged == generic.logged
    return known


async def test_every_kind_of_request_is_answered_alike_known_or_not(
    sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await _compare(sequencer, CALLS, monkeypatch)
    statuses = {answer[0] for answer in run.answers}
    # the sequence reaches refusals of every kind, not only successes
    assert {200, 400, 401, 429} <= statuses, statuses
    codes = json.dumps([answer[4] for answer in run.answers])
    for code in (
        "INVALID_INPUT",
        "LIMIT_EXCEEDED",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "RATE_LIMITED",
        "ILLEGAL_TRANSITION",
        "GRAPHQL_VALIDATION_FAILED",
    ):
        assert code in codes, code
    assert run.trail, "the sequence changed nothing"


@given(st.lists(st.sampled_from(CALLS), min_size=1, max_size=8))
@hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_any_sequence_is_answered_alike_known_or_not(
    sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch, calls: list[Call]
) -> None:
    await _compare(sequencer, calls, monkeypatch)
