"""A handed-over subscription's executor runs its selection once per pushed object and keeps
nothing per event (the path `api/live_fanout.py::run_selection` takes for every push)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, cast

import strawberry
from graphql import ExecutionResult
from strawberry.extensions import ParserCache

from signoff.api import shared_results
from signoff.api.live_fanout import run_selection
from signoff.api.push import Handover


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
    async def events(self, label: str = "") -> AsyncGenerator[_Event, None]:
        # What the live subscriptions do: hand the stream over instead of yielding events.
        yield cast(_Event, Handover(lambda target: _never_served()))


async def _never_served() -> None:
    raise AssertionError("not served in this test")


_SCHEMA = strawberry.Schema(
    query=_Query,
    subscription=_Subscription,
    # as the API's schema: the same text is the same parsed operation
    extensions=[lambda: ParserCache(maxsize=16)],
    execution_context_class=shared_results.LiveExecutor,
)


async def _handed_over_executor(query: str, variables: dict[str, Any] | None = None) -> Any:
    stream = await _SCHEMA.subscribe(query, variable_values=variables)
    assert not isinstance(stream, ExecutionResult)
    first = await anext(stream)
    handover = first.data
    assert isinstance(handover, Handover)
    await stream.aclose()
    return handover.executor


async def test_a_handed_over_subscription_keeps_nothing_per_event(monkeypatch: Any) -> None:
    """Each event's executor has its own memo of collected subfields: graphql-core's per-event
    copy would otherwise share the subscription's, where every event's entries stay for the
    subscription's life."""
    executor = await _handed_over_executor("subscription { events { seq leaves { name } } }")
    assert isinstance(executor, shared_results.LiveExecutor)
    built: list[Any] = []
    build = shared_results.LiveExecutor.build_per_event_executor

    def recording(self: Any, payload: Any) -> Any:
        per_event = build(self, payload)
        built.append(per_event)
        return per_event

    monkeypatch.setattr(shared_results.LiveExecutor, "build_per_event_executor", recording)
    texts = [
        (await run_selection(executor, _Event(seq=n, leaves=[_Leaf(name=f"leaf-{n}")])))
        for n in range(30)
    ]
    assert texts == [
        (f'{{"events":{{"seq":{n},"leaves":[{{"name":"leaf-{n}"}}]}}}}', None) for n in range(30)
    ]
    assert len(built) == 30
    assert not executor._relevant_sub_fields
    assert len({id(e._relevant_sub_fields) for e in built}) == 30  # one memo per event


async def test_the_selection_key_ignores_the_subscription_fields_own_arguments() -> None:
    query = "subscription($label: String!) { events(label: $label) { seq } }"
    one = await _handed_over_executor(query, {"label": "a"})
    other = await _handed_over_executor(query, {"label": "b"})
    # The same selection below the field: one result serves both.
    assert shared_results.selection_key(one) == shared_results.selection_key(other)
    reading = """
    subscription($label: String!, $skip: Boolean!) {
      events(label: $label) { seq leaves @skip(if: $skip) { name } }
    }"""
    shown = await _handed_over_executor(reading, {"label": "a", "skip": False})
    hidden = await _handed_over_executor(reading, {"label": "a", "skip": True})
    # A variable the selection reads splits it.
    assert shared_results.selection_key(shown) != shared_results.selection_key(hidden)
