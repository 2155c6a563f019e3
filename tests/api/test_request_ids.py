"""Request ids: accepted or created, echoed, in error extensions, on log lines and on the audit
event; refused tokens log one WARNING line without a traceback."""

from __future__ import annotations

import logging

import pytest

from signoff.request_ids import RequestIdFilter

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
