"""Request ids: accepted or created, echoed, in error extensions, on log lines and on the audit
event; refused tokens log one WARNING line without a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.request_ids import RequestIdFilter, accept_or_create, settle_header

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id auditEvents { nodes { requestId } } } errors { code } }
}"""
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


async def test_a_given_request_id_is_echoed_and_recorded_on_the_audit_event(gql, demo_templates):
    token = gql.token("alice")
    response = await gql.http.post(
        "/graphql",
        json={
            "query": SUBMIT,
            "variables": {
                "input": {"templateKey": "change-approval", "title": "t", "payload": PAYLOAD}
            },
        },
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-42.a:b"},
    )
    assert response.headers["x-request-id"] == "req-42.a:b"
    events = response.json()["data"]["submitItem"]["item"]["auditEvents"]["nodes"]
    assert events and {e["requestId"] for e in events} == {"req-42.a:b"}


@pytest.mark.parametrize("given", [None, "", "x" * 101, "evil\r\nX-Injected: 1", "a b"])
async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(client, given):
    headers = {} if given is None else {"X-Request-Id": given}
    try:
        response = await client.post(
            "/graphql", json={"query": "{ viewer { userId } }"}, headers=headers
        )
    except Exception:  # httpx itself refuses to send a header with CR/LF
        assert given is not None and "\n" in given
        return
    echoed = response.headers["x-request-id"]
    assert echoed != given and len(echoed) == 32
    (error,) = response.json()["errors"]
    assert error["extensions"]["requestId"] == echoed


async def test_every_error_carries_the_request_id(client):
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { userId } nosuchfield }"},
        headers={"X-Request-Id": "r-1"},
    )
    errors = response.json()["errors"]
    assert errors and all(e["extensions"]["requestId"] == "r-1" for e in errors)
    assert all("code" in e["extensions"] for e in errors)


async def test_a_refused_token_logs_one_warning_line_with_the_request_id(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="signoff"):
        await client.post(
            "/graphql",
            json={"query": "{ a: viewer { userId } b: viewer { userId } c: inbox { totalCount } }"},
            headers={"Authorization": "Bearer not-a-token", "X-Request-Id": "r-2"},
        )
    records = [r for r in caplog.records if r.name.startswith("signoff")]
    assert [r.levelno for r in records] == [logging.WARNING]
    (record,) = records
    assert record.exc_info is None
    assert "UNAUTHENTICATED" in record.getMessage()
    assert record.request_id == "r-2"  # type: ignore[attr-defined]
    assert len(caplog.text) < 1000


HEADER_NAMES = st.sampled_from([b"x-request-id", b"X-Request-Id", b"user-agent", b"host", b"a"])
HEADER_VALUES = st.one_of(
    st.sampled_from([b"", b"req-1", b"r" * 100, b"r" * 101, b"a b", b"ok:._-"]),
    st.binary(max_size=8),
)


@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6))
def test_the_request_id_header_is_settled_in_the_scope_itself(headers: list[Any]) -> None:
    """Whatever headers arrive: one `x-request-id` is left, last, the first given one when it
    is well formed, else a fresh one; every other header stays, in order; the scope is the
    same object (a websocket keeps it for its life: no copy per socket)."""
    scope: dict[str, Any] = {"type": "websocket", "headers": list(headers)}
    original = scope
    request_id = settle_header(scope)
    assert scope is original
    settled = scope["headers"]
    assert settled[-1] == (b"x-request-id", request_id.encode())
    assert [h for h in settled[:-1] if h[0].lower() == b"x-request-id"] == []
    assert settled[:-1] == [h for h in headers if h[0].lower() != b"x-request-id"]
    given_ids = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-request-id"]
    if given_ids and accept_or_create(given_ids[0]) == given_ids[0]:
        assert request_id == given_ids[0]
    else:
        assert len(request_id) == 32 and request_id not in given_ids
