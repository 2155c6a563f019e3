"""Subscription results shared between subscribers: the selection of a pushed object is run once.

graphql-core runs a subscription's selection set once per event per subscriber. The realtime
layer hands every subscriber who sees the same thing the *same* pushed object (see
`api/live_types.py::BatchState`), so `SharingExecutor` keys the per-event result by that
object, the operation, and the values of the variables the selection below the subscription
field reads (a subscription's own arguments, such as its resume cursor, do not change what
is selected from the object); the first subscriber runs the selection, the others reuse its
result. A result lives as long as the object: a batch's objects are released when every
subscriber has taken them.

The rule this relies on: what a field of a pushed type returns depends on the object, the
tenant and the variables, never on which caller asks (the objects encode per-caller
visibility, e.g. `InboxChange.item` is null for a caller who may not read the item).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any, cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    visit,
)
from graphql.execution import ExecutionResult, Executor
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from signoff.api.push import Handover


class SharingStats:
    """How many subscription event results were computed and how many were reused (for tests
    and the benchmark)."""

    computed = 0
    reused = 0


_Results = dict[tuple[int, str], tuple[Any, "asyncio.Future[Any]"]]
_ATTRIBUTE = "_signoff_shared_results"


class _VariablesBelowRoot(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.names.add(node.name.value)


def selection_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    """Names of the variables used anywhere below the operation's root fields (in their
    selections, directives and the fragments), not in the root fields' own arguments."""
    visitor = _VariablesBelowRoot()
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.selection_set is not None:
                visit(selection.selection_set, visitor)
            for directive in selection.directives or ():
                visit(directive, visitor)
        else:
            visit(selection, visitor)
    for fragment in fragments.values():
        visit(fragment, visitor)
    return tuple(sorted(visitor.names))


def selection_key(executor: Any) -> tuple[int, str]:
    """What a subscription's per-event result depends on besides the pushed object: its
    operation (the parsed document is cached, so the same text is the same node) and the values
    of the variables its selection reads (not the subscription field's own arguments)."""
    names = selection_variables(executor.operation, executor.fragment_definitions)
    coerced = executor.variable_values.coerced
    values = json.dumps([coerced.get(n) for n in names], default=str, sort_keys=True)
    return (id(executor.operation), values)


async def _shared(future: asyncio.Future[Any]) -> Any:
    # A subscriber cancelled while waiting does not cancel the others' result.
    return await asyncio.shield(future)


class SharingExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, sharing a subscription event's result between the subscribers
    given the same object (see the module's docstring)."""

    _variables: tuple[str, ...] | None = None
    _per_event = False

    def build_per_event_executor(self, payload: Any) -> Executor:
        if self._variables is None:
            self._variables = selection_variables(self.operation, self.fragment_definitions)
        executor = super().build_per_event_executor(payload)
        executor._per_event = True  # type: ignore[attr-defined]
        # graphql-core's per-event executor is a shallow copy that shares the subscription's
        # memo of collected subfields, keyed by the identity of lists each event's execution
        # makes anew and keeps alive: without a memo of its own, every event a subscription
        # executes stays in that memo for the subscription's life (tracemalloc: ~100 bytes per
        # socket and event, without bound).
        executor._relevant_sub_fields = {}
        return executor

    async def _released_after(self, result: Any) -> Any:
        try:
            return await result
        finally:
            self._release()

    def _release(self) -> None:
        """Cut the executor's reference to itself once its query or mutation is answered:
        graphql-core hands resolvers helpers that are the executor's own bound methods, so
        without this every executor, with its memo of collected fields and the context,
        outlives its request as cyclic garbage that a young collection must walk
        (docs/architecture.md, "Inbox pages and the garbage collector")."""
        self.__dict__.pop("async_helpers", None)

    @property
    def strawberry_schema(self) -> Any:
        """The strawberry schema this executor runs (its error handling)."""
        return self.schema._strawberry_schema  # type: ignore[attr-defined]

    def execute_event(self, payload: Any) -> AwaitableOrValue[ExecutionResult]:
        """The subscription's selection over `payload`, run now and not shared (for callers
        that share results themselves: `api/live_fanout.py`)."""
        executor = self.build_per_event_executor(payload)
        run = StrawberryGraphQLCoreExecutionContext.execute_operation
        # a subscription's event never has incremental results
        return cast(AwaitableOrValue[ExecutionResult], run(executor, False))

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self._per_event:
            result = super().execute_operation(serially)
            if self.operation.operation is OperationType.SUBSCRIPTION:
                return result
            if self.is_awaitable(result):
                return self._released_after(result)
            self._release()
            return result
        payload = self.root_value
        if isinstance(payload, Handover):
            # Not an event: the stream leaves this path; whoever serves it runs the selection
            # with this executor (`execute_event`).
            payload.executor = self
            return ExecutionResult(data=payload, errors=None)  # type: ignore[arg-type]
        results: _Results | None = getattr(payload, _ATTRIBUTE, None)
        if results is None:
            results = {}
            try:
                # Kept on the object itself: it lives exactly as long as the object.
                object.__setattr__(payload, _ATTRIBUTE, results)
            except (AttributeError, TypeError):  # an object without a __dict__
                return super().execute_operation(serially)
        coerced = self.variable_values.coerced
        values = json.dumps(
            [coerced.get(name) for name in self._variables or ()], default=str, sort_keys=True
        )
        key = (id(self.operation), values)
        known = results.get(key)
        if known is not None:
            SharingStats.reused += 1
            return _shared(known[1])
        SharingStats.computed += 1
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            future: asyncio.Future[Any] = asyncio.ensure_future(result)  # type: ignore[arg-type]
            # The operation node is kept with the result so that its id is not reused meanwhile.
            results[key] = (self.operation, future)
            return _shared(future)
        done = asyncio.get_running_loop().create_future()
        done.set_result(result)
        results[key] = (self.operation, done)
        return result


_ENCODED: OrderedDict[int, tuple[object, str]] = OrderedDict()
_ENCODED_MAX = 1024


def encode_json(message: object) -> str:
    """A message as JSON, compact (what strawberry's view writes). The payload of a `next`
    message is encoded once per result data and reused: subscribers given a shared result
    differ only in their operation id. The data objects are kept while remembered (the last
    1,024), so that an id cannot name another object meanwhile."""
    if (
        isinstance(message, dict)
        and message.get("type") == "next"
        and message.keys() == {"id", "type", "payload"}
        and isinstance(message["payload"], dict)
        and message["payload"].keys() == {"data"}
    ):
        data = message["payload"]["data"]
        known = _ENCODED.get(id(data))
        if known is not None and known[0] is data:
            text = known[1]
        else:
            text = json.dumps(message["payload"], separators=(",", ":"))
            _ENCODED[id(data)] = (data, text)
            if len(_ENCODED) > _ENCODED_MAX:
                _ENCODED.popitem(last=False)
        return '{"id":' + json.dumps(message["id"]) + ',"type":"next","payload":' + text + "}"
    return json.dumps(message, separators=(",", ":"))
