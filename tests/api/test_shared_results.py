"""The JSON of pushed messages: the same text as a plain encoding, whatever the data, and one
encoding of a shared result's data for every subscriber."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from graphql import ExecutionResult
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.api import shared_results

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    op_id=st.text(),
    data=st.dictionaries(st.text(), JSON_VALUES, max_size=5),
    kind=st.sampled_from(["next", "complete", "error"]),
)
def test_encoding_equals_the_plain_encoding(op_id: str, data: dict[str, Any], kind: str) -> None:
    message = {"id": op_id, "type": kind, "payload": {"data": data}}
    plain = json.dumps(message, separators=(",", ":"))
    assert shared_results.encode_json(message) == plain
    assert shared_results.encode_json(message) == plain  # remembered: the same text


def test_a_shared_payload_is_encoded_once(monkeypatch: Any) -> None:
    data = {"inboxChanged": {"seq": 7, "item": {"title": "Deploy"}}}
    calls: list[object] = []
    real = json.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        calls.append(value)
        return real(value, **kwargs)

    monkeypatch.setattr(shared_results.json, "dumps", counting)
    texts = [
        shared_results.encode_json({"id": str(n), "type": "next", "payload": {"data": data}})
        for n in range(50)
    ]
    assert [json.loads(t)["id"] for t in texts] == [str(n) for n in range(50)]
    assert all(json.loads(t)["payload"] == {"data": data} for t in texts)
    assert sum(1 for c in calls if isinstance(c, dict)) == 1  # the payload, once


@strawberry.type
class _Leaf:
    name: str


@strawberry.type
class _Event:
    seq: int
    leaves: list[_Leaf]


@strawberry.type
class _Query:
    ping: int = 0


@strawberry.type
class _Subscription:
    @strawberry.subscription
    async def events(self, count: int) -> AsyncGenerator[_Event, None]:
        for n in range(count):
            yield _Event(seq=n, leaves=[_Leaf(name=f"leaf-{n}")])


async def test_a_subscription_keeps_nothing_per_event(monkeypatch: Any) -> None:
    """Each event's executor has its own memo of collected subfields: graphql-core's per-event
    copy would otherwise share the subscription's, where every event's entries stay."""
    executors: list[Any] = []
    build = shared_results.SharingExecutor.build_per_event_executor

    def recording(self: Any, payload: Any) -> Any:
        executor = build(self, payload)
        executors.append((self, executor))
        return executor

    monkeypatch.setattr(shared_results.SharingExecutor, "build_per_event_executor", recording)
    schema = strawberry.Schema(
        query=_Query,
        subscription=_Subscription,
        execution_context_class=shared_results.SharingExecutor,
    )
    stream = await schema.subscribe("subscription { events(count: 30) { seq leaves { name } } }")
    assert not isinstance(stream, ExecutionResult)
    seqs = [result.data["events"]["seq"] async for result in stream if result.data]
    assert seqs == list(range(30))
    assert len(executors) == 30
    parents = {id(parent): parent for parent, _ in executors}
    assert all(not p._relevant_sub_fields for p in parents.values())
    memos = {id(e._relevant_sub_fields) for _, e in executors}
    assert len(memos) == 30  # one memo per event, dropped with its executor
