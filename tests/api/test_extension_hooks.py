"""The extensions' hooks resolved once per class (api/extension_hooks.py) run exactly as
strawberry's own per-request lookup runs them: the same hooks, in the same order, with the
same outcome when one fails; and the library still has the shape the runner relies on."""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

from signoff.api.extension_hooks import ResolvedExtensionsRunner, class_hook
from signoff.api.guarded_schema import GuardedSchema
from signoff.api.schema import schema as signoff_schema

STAGES = ("on_operation", "on_parse", "on_validate", "on_execute")


def test_the_library_has_the_shape_the_runner_relies_on() -> None:
    # Schema.execute (queries and mutations) builds its runner through this method ...
    assert "create_extensions_runner" in inspect.getsource(strawberry.Schema.execute)
    # ... and the base context manager enters `hooks` (WrappedHook: extension, hook, is_async)
    assert {"hooks", "async_exit_stack", "exit_stack"} <= set(ExtensionContextManagerBase.__slots__)
    assert "hook.hook()" in inspect.getsource(ExtensionContextManagerBase.__aenter__)
    for manager, stage in (
        (OperationContextManager, "on_operation"),
        (ParsingContextManager, "on_parse"),
        (ValidationContextManager, "on_validate"),
        (ExecutingContextManager, "on_execute"),
    ):
        assert stage == manager.HOOK_NAME
    for method in ("operation", "parsing", "validation", "executing"):
        assert method in vars(SchemaExtensionsRunner)


def test_signoffs_extensions_get_the_hooks_strawberry_would_give_them() -> None:
    extensions = signoff_schema.get_extensions()
    ours = ResolvedExtensionsRunner(execution_context=None, extensions=extensions)  # type: ignore[arg-type]
    theirs = SchemaExtensionsRunner(execution_context=None, extensions=extensions)  # type: ignore[arg-type]
    for stage in ("operation", "parsing", "validation", "executing"):
        mine = getattr(ours, stage)().hooks
        reference = getattr(theirs, stage)().hooks
        assert [(h.extension, h.is_async) for h in mine] == [
            (h.extension, h.is_async) for h in reference
        ], stage
        assert mine, stage  # every stage has at least one of our hooks
    seen = {class_hook(type(e), s) for e in extensions for s in STAGES} - {None}
    assert seen  # resolved once per class: the same objects on the next request
    again = {class_hook(type(e), s) for e in signoff_schema.get_extensions() for s in STAGES}
    assert seen <= again


LOG: list[str] = []


class EveryKind(SchemaExtension):
    """One hook of each kind strawberry accepts."""

    def on_operation(self) -> Iterator[None]:  # a generator
        LOG.append("operation>")
        yield
        LOG.append("<operation")

    async def on_parse(self) -> AsyncIterator[None]:  # an async generator
        LOG.append("parse>")
        yield
        LOG.append("<parse")

    def on_validate(self) -> None:  # type: ignore[override]  # a plain function
        LOG.append("validate")

    async def on_execute(self) -> None:  # type: ignore[override]  # a coroutine function
        LOG.append("execute")


class Refuses(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        LOG.append("refuses>")
        raise RuntimeError("no")
        yield  # pragma: no cover


class Outer(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        try:
            yield
        finally:
            LOG.append("<outer")


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        LOG.append("resolve")
        return "hi"


def _schema(cls: type[strawberry.Schema], extensions: list[Any]) -> strawberry.Schema:
    kwargs: dict[str, Any] = {"mask": False} if cls is GuardedSchema else {}
    return cls(query=Query, extensions=extensions, **kwargs)


@pytest.mark.parametrize("extensions", [[EveryKind], [Outer, EveryKind, Refuses]])
async def test_hooks_run_as_strawberry_runs_them(extensions: list[Any]) -> None:
    outcomes = []
    for cls in (strawberry.Schema, GuardedSchema):
        LOG.clear()
        result = await _schema(cls, extensions).execute("{ hello }")
        outcomes.append((list(LOG), result.data, [e.message for e in result.errors or []]))
    assert outcomes[0] == outcomes[1]
    log, data, errors = outcomes[1]
    if Refuses in extensions:
        # (strawberry does not unwind the hooks entered before the one that failed: nor do we)
        assert "resolve" not in log and "refuses>" in log and errors
    else:
        assert data == {"hello": "hi"}
        assert log == [
            "operation>",
            "parse>",
            "<parse",
            "validate",
            "execute",
            "resolve",
            "<operation",
        ]


class Swallows(SchemaExtension):
    """Leaves its execution stage by suppressing whatever it is handed."""

    def on_execute(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            LOG.append(f"swallowed {exc}")


class SwallowsOperation(SchemaExtension):
    """Suppresses whatever its operation stage's body raised (strawberry's stage raises it
    all the same)."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            LOG.append(f"swallowed operation {exc}")


class FailsOnLeaving(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        yield
        LOG.append("fails-on-leaving")
        raise ValueError("on the way out")


class FailsOnLeavingAsync(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            LOG.append("async-leaving")
        raise LookupError("async on the way out")


@pytest.mark.parametrize(
    "extensions",
    [
        [Outer, FailsOnLeaving],
        [Swallows, FailsOnLeaving],
        [FailsOnLeaving, Swallows],
        [Outer, FailsOnLeavingAsync, FailsOnLeaving],
        [Swallows, FailsOnLeavingAsync, Outer],
        [EveryKind, Swallows, Refuses],
        [SwallowsOperation, Refuses],
        [SwallowsOperation, Outer, FailsOnLeaving],
    ],
)
async def test_hooks_leave_as_strawberrys_exit_stack_leaves_them(extensions: list[Any]) -> None:
    # Leaving a stage: in reverse order, each hook handed what the ones after it left (the
    # error one raised, or nothing when one suppressed it), as contextlib's exit stack does.
    outcomes = []
    for cls in (strawberry.Schema, GuardedSchema):
        gc.collect()  # hooks an earlier test left entered finish now, not during this one
        LOG.clear()
        result = await _schema(cls, extensions).execute("{ hello }")
        errors = [(e.message, type(e.original_error).__name__) for e in result.errors or []]
        outcomes.append((list(LOG), result.data, errors))
    assert outcomes[0] == outcomes[1]
