"""Every input bounded and clean: bad input gets INVALID_INPUT naming the field, changes
nothing, and never becomes "Unexpected error." or an HTTP 500 (the probes of issue #12)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from signoff.api import ids
from signoff.api.event_cursors import MAX_SEQ, decode_cursor, encode_cursor
from signoff.domain.errors import DomainError, ErrorCode

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id title } errors { code message field } }
}"""
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
INBOX = "query($after: String) { inbox(after: $after) { totalCount } }"


def submit_input(**changes: Any) -> dict[str, Any]:
    return {
        "input": {
            "templateKey": "change-approval",
            "title": "Deploy payments",
            "payload": PAYLOAD,
            **changes,
        }
    }


def refused(body: dict[str, Any], field: str) -> None:
    """The response refuses the input with INVALID_INPUT at `field`."""
    data = body.get("data") or {}
    assert all(value is None for value in data.values()), body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    assert error["extensions"]["field"] == field, error
    assert "Unexpected" not in error["message"]


async def post(gql: Any, query: str, variables: dict[str, Any], user: str = "alice") -> Any:
    # json.dumps escapes lone surrogates (`\ud800`), as a JavaScript client would send them
    response = await gql.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}).encode(),
        headers={
            "Authorization": f"Bearer {gql.token(user, 'admin')}",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


async def inbox_titles(gql: Any) -> list[str]:
    data = await gql.data(
        "{ inbox(first: 50) { edges { node { title } } } }", as_user="bob", roles=("admin",)
    )
    return [e["node"]["title"] for e in data["inbox"]["edges"]]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "Deploy\x00payments"}, "input.title"),
        ({"title": "Deploy \ud800 payments"}, "input.title"),
        ({"externalRef": "x" * 5_000}, "input.externalRef"),
        ({"environment": "e" * 5_000}, "input.environment"),
        ({"externalRef": "trace\x00"}, "input.externalRef"),
        ({"payload": {**PAYLOAD, "system": "pay\x00ments"}}, "input.payload"),
        ({"payload": {**PAYLOAD, "pay\ud800": 1}}, "input.payload"),
        ({"guards": {"idempotencyKey": "k" * 1000}}, "input.guards.idempotencyKey"),
    ],
    ids=[
        "NUL",
        "lone surrogate",
        "5 kB externalRef",
        "5 kB environment",
        "NUL externalRef",
        "NUL in JSON",
        "surrogate key in JSON",
        "long idempotency key",
    ],
)
async def test_unclean_submissions_are_refused_and_change_nothing(
    gql, demo_templates, changes, field
):
    body = await post(gql, SUBMIT, submit_input(**changes))
    refused(body, field)
    assert await inbox_titles(gql) == []


async def test_the_same_checks_apply_to_literals_in_the_document(gql, demo_templates):
    query = """mutation { submitItem(input: {templateKey: "change-approval", title: "a\\u0000b"})
      { errors { code } } }"""
    refused(await post(gql, query, {}), "input.title")


async def test_a_megabyte_reason_is_refused(gql, demo_templates):
    body = await post(gql, SUBMIT, submit_input())
    step = body["data"]["submitItem"]["item"]["id"]
    decide = """mutation($input: DecideStepInput!) {
      approveStep(input: $input) { errors { code } } }"""
    step_id = ids.encode("Step", "00000000-0000-0000-0000-000000000000")
    assert step
    refused(
        await post(gql, decide, {"input": {"stepId": step_id, "reason": "r" * 1_000_000}}),
        "input.reason",
    )


@pytest.mark.parametrize("first", [-1, 0, 501])
async def test_paging_arguments_are_range_checked(gql, first):
    body = await post(
        gql, "query($n: Int!) { overdueSteps(first: $n) { nodes { key } } }", {"n": first}
    )
    refused(body, "first")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "A" * 600,
        base64.urlsafe_b64encode(json.dumps(["due", False, "x", "y"]).encode()).decode(),
    ],
)
async def test_malformed_cursors_are_invalid_input(gql, cursor):
    refused(await post(gql, INBOX, {"after": cursor}), "after")


async def test_a_cursor_with_an_oversized_integer_is_invalid_input(gql):
    raw = json.dumps(["priority", True, 10**30, "00000000-0000-0000-0000-000000000000"])
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    body = await post(
        gql,
        "query($after: String) { inbox(sort: {field: PRIORITY}, after: $after) { totalCount } }",
        {"after": cursor},
    )
    refused(body, "after")


@pytest.mark.parametrize(
    "global_id",
    [
        ids.encode("WorkflowItem", "9" * 80),
        ids.encode("WorkflowItem", str(10**30)),
        "Z" * 1000,
        "with spaces and !",
    ],
)
async def test_malformed_ids_are_invalid_input(gql, global_id):
    body = await post(gql, "query($id: ID!) { item(id: $id) { id } }", {"id": global_id})
    refused(body, "id")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"])
async def test_dates_out_of_range_are_invalid_input(gql, moment):
    body = await post(
        gql,
        "query($d: DateTime) { inbox(filter: {dueBefore: $d}) { totalCount } }",
        {"d": moment},
    )
    refused(body, "filter.dueBefore")


async def test_an_unparsable_date_literal_is_invalid_input_not_unexpected(gql):
    body = await post(gql, '{ inbox(filter: {dueBefore: "yesterday"}) { totalCount } }', {})
    (error,) = body["errors"]
    assert error["extensions"]["code"] in ("INVALID_INPUT", "GRAPHQL_VALIDATION_FAILED")
    assert "Unexpected" not in error["message"]


async def test_a_non_string_simulated_decision_is_invalid_input(gql, demo_templates):
    body = await post(
        gql,
        """query($d: JSON) { simulate(templateKey: "change-approval", payload: {}, decisions: $d)
        { outcome } }""",
        {"d": {"review": 5}},
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    assert "Unexpected" not in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ viewer { userId } }", "variables": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"query": "{ viewer { userId } }", "variables": {"x": ' + b"1" * 5000 + b"}}",
        b'{"query": ',
        b"\xff\xfe",
    ],
    ids=["deep JSON", "huge JSON integer", "truncated", "binary"],
)
async def test_http_level_garbage_is_a_400_without_a_token(client, body):
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])


@pytest.mark.parametrize(
    "query",
    [
        "{ inbox(first: " + "1" * 4300 + ") { totalCount } }",
        "{ a: viewer " * 1000,
        "{ inbox(filter: {templateKeys: " + "[" * 1000 + "]" * 1000 + "}) { totalCount } }",
    ],
    ids=["huge literal", "deep document", "deep list literal"],
)
async def test_documents_the_parser_should_not_see_are_refused_without_a_token(client, query):
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "query"


@pytest.mark.parametrize("field", ["externalRef", "environment", "title"])
async def test_a_5_mb_request_is_refused_before_it_is_read(gql, demo_templates, field):
    variables = submit_input(**{field: "x" * 5_000_000})
    response = await gql.run(SUBMIT, variables, token=gql.token("alice"))
    assert response.status_code == 413
    assert await inbox_titles(gql) == []


@pytest.mark.parametrize(
    "seq", [str(MAX_SEQ + 1), "9" * 30, "9" * 5000, "²", "１２", "-1", "", " 1"]
)
def test_an_event_cursor_outside_the_stored_range_is_invalid_input(seq):
    cursor = ids.encode("Event", f"acme:{seq}")
    with pytest.raises(DomainError) as refused:
        decode_cursor(cursor, "acme")
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_INPUT, "after")


def test_an_event_cursor_round_trips_up_to_the_largest_seq():
    for seq in (0, 1, MAX_SEQ):
        assert decode_cursor(encode_cursor("acme", seq), "acme") == seq
