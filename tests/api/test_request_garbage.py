"""An answered HTTP request leaves nothing for the garbage collector: its executor, its context
and the rows its loaders read are freed when it ends, on every path (a page, a mutation, a typed
error, a refused token, a document that does not validate).

Why it matters: a serving process runs with a young generation of 50,000 objects
(`cli.py::settle_collector`), and whatever a request leaves in reference cycles piles up there
until a young collection walks it with the event loop stopped; that pause was the inbox's p99
(docs/architecture.md, "Inbox pages and the garbage collector").
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from strawberry.dataloader import DataLoader

from signoff.api.context import SignoffContext
from signoff.api.shared_results import LiveExecutor
from signoff.domain.records import Item, Step
from tests.api.test_inbox import INBOX, submit_inbox_items

# What one request makes and nothing outlives: if any of these is cyclic garbage after the
# requests, a request left a cycle holding it.
REQUEST_SCOPED = (LiveExecutor, SignoffContext, DataLoader, Item, Step)

SUBMIT = """mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id title steps { key name } } errors { code message } }
}"""


@contextmanager
def cyclic_garbage() -> Iterator[list[Any]]:
    """The objects that only the collector could free among those made inside the block."""
    gc.collect()
    gc.disable()
    found: list[Any] = []
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.extend(o for o in gc.garbage if isinstance(o, REQUEST_SCOPED))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def kinds(objects: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in objects:
        out[type(o).__name__] = out.get(type(o).__name__, 0) + 1
    return out


@pytest.fixture
async def items(services, tenant, demo_templates):
    return await submit_inbox_items(services, tenant)


async def page(gql: Any) -> None:
    body = (await gql.run(INBOX, {"first": 3}, token=gql.token("bob", "change-approver"))).json()
    assert body["data"]["inbox"]["edges"], body


async def submission(gql: Any) -> None:
    variables = {
        "input": {
            "templateKey": "change-approval",
            "title": "Deploy payments",
            "payload": {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"},
        }
    }
    body = (await gql.run(SUBMIT, variables, token=gql.token("dave"))).json()
    assert (body.get("data") or {}).get("submitItem", {}).get("item"), body


async def typed_error(gql: Any) -> None:
    variables = {"input": {"templateKey": "no-such-template", "title": "x", "payload": {}}}
    body = (await gql.run(SUBMIT, variables, token=gql.token("dave"))).json()
    assert body["data"]["submitItem"]["errors"], body


async def refused_token(gql: Any) -> None:
    response = await gql.run(INBOX, {"first": 3}, token="not-a-token")
    assert response.json()["errors"], response.text


async def invalid_document(gql: Any) -> None:
    response = await gql.run("{ inbox { noSuchField } }", token=gql.token("bob"))
    assert response.json()["errors"], response.text


@pytest.mark.parametrize(
    "request_kind", [page, submission, typed_error, refused_token, invalid_document]
)
async def test_an_answered_request_leaves_no_cyclic_garbage(gql, items, request_kind) -> None:
    await request_kind(gql)  # caches of first use (documents, validation, token) are not garbage
    with cyclic_garbage() as garbage:
        for _ in range(3):
            await request_kind(gql)
    assert kinds(garbage) == {}


async def test_the_probe_sees_a_cycle_that_holds_a_request_object(gql, items) -> None:
    """The check above can fail: a context kept in a cycle is found."""
    with cyclic_garbage() as garbage:
        context: Any = SignoffContext(services=None, verifier=None)  # type: ignore[arg-type]
        context.cache["self"] = context
        del context
    assert kinds(garbage) == {"SignoffContext": 1}
