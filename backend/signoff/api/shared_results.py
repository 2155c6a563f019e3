"""What a live subscription's pushed result depends on, and the executor that hands a
subscription over to the realtime layer.

The realtime layer (`api/live_fanout.py`) gives every subscriber who sees the same thing the
*same* pushed object (`api/live_types.py::BatchState`) and runs the selection once per pushed
object and `selection_key`: the operation and the values of the variables the selection below
the subscription field reads (a subscription's own arguments, such as its resume cursor, do
not change what is selected from the object).

The rule this relies on: what a field of a pushed type returns depends on the object, the
variables and the caller's judgement class (tenant, roles, groups, environment: what
permissions and redaction read), never on the caller's user id (the objects encode per-caller
visibility, e.g. `InboxChange.item` is null for a caller who may not read the item). So a
result is shared only by streams of one class (`api/live_fanout.py::WritePlan`): a field may
answer by the caller's roles, as `AuditEvent.clientAddr` does by `read_audit_details`.
"""

from __future__ import annotations

import json
from copy import copy
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
from graphql.execution.executor import CollectedErrors
from graphql.pyutils import AwaitableOrValue, RefMap
from graphql.type import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from signoff.api.push import Handover
from signoff.api.selection_plans import PlannedExecutor


class SharingStats:
    """How many pushed results the realtime layer computed and how many it reused (for tests
    and the benchmark)."""

    computed = 0
    reused = 0


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


class LiveExecutor(PlannedExecutor):
    """strawberry's executor; a subscription's `Handover` takes it along, and the realtime layer
    runs the selection with it once per distinct pushed object (`execute_event`)."""

    _per_event = False

    def build_per_event_executor(self, payload: Any) -> Executor:
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

    def detached(self) -> LiveExecutor:
        """A copy that runs this operation's selection for any stream with its
        `selection_key`, holding nothing of this operation's socket: no root value (the
        hand-over), no context (each run is given the stream's: `execute_event`), helpers and
        execution state of its own (graphql-core's are bound to the executor they were made
        by, which holds the context)."""
        executor = copy(self)
        executor.root_value = None
        executor.context_value = None
        executor.async_helpers = GraphQLResolveInfoHelpers(
            gather=executor.gather_async_work, track=executor.track_async_work
        )
        executor.collected_errors = CollectedErrors()
        executor.pending_incremental_futures = set()
        executor.background_futures = set()
        executor.async_work_finished_hook_task = None
        executor._relevant_sub_fields = {}
        executor._selection_plans = None
        executor._stream_usages = RefMap()
        return executor

    @property
    def strawberry_schema(self) -> Any:
        """The strawberry schema this executor runs (its error handling)."""
        return self.schema._strawberry_schema  # type: ignore[attr-defined]

    def execute_event(self, payload: Any, context: Any = None) -> AwaitableOrValue[ExecutionResult]:
        """The subscription's selection over `payload` in `context` (default: the executor's),
        run now and not shared (for callers that share results themselves:
        `api/live_fanout.py`)."""
        executor = self.build_per_event_executor(payload)
        if context is not None:
            executor.context_value = context
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
        return super().execute_operation(serially)
