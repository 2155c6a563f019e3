"""The schema extensions' hooks, looked up once per extension class instead of on every request.

strawberry makes new extension instances for every operation (they hold the operation's
state) and, for each of the four stages (operation, parsing, validation, execution), looks up
every instance's hook again: an attribute lookup, `inspect` checks of what kind of function it
is, and a context manager factory wrapped around a bound method (`functools.update_wrapper`
each time) — 32 lookups per request for our eight extensions, all with the same answer, since
a hook is a method of the extension's class. Here each class's hook for a stage is resolved
once into a factory taking the instance; a request only calls the factories of the hooks its
extensions have. What runs, in which order, and how an error in one unwinds the others is
strawberry's own: a stage enters its hooks in order and leaves them in reverse, the way
strawberry's exit stack does (an error in one is thrown into those entered before it; one that
fails to enter leaves those before it entered, as strawberry leaves them), without building an
exit stack for every stage of every request.

A *known document* (`KnownDocuments`: a query text that parsed and validated before) skips
the hooks of the extensions whose whole work depends on the document's text alone (the token
limit, the nesting check, the parser and validation caches): the parsed document and an empty
list of validation errors are what they would give it again. Every other hook runs as for any
request (docs/architecture.md, "A known document skips only what its text decided").
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

HookFactory = Callable[[SchemaExtension], Any]


@dataclass(frozen=True)
class ClassHook:
    """How to enter one stage's hook of an extension class: `factory(extension)` makes the
    context manager (async or not, as `is_async` says)."""

    factory: HookFactory
    is_async: bool


_RESOLVED: dict[tuple[type[SchemaExtension], str], ClassHook | None] = {}


def class_hook(extension_class: type[SchemaExtension], stage: str) -> ClassHook | None:
    """The hook `extension_class` defines for `stage` (`on_operation`, `on_parse`,
    `on_validate`, `on_execute`), or None when it keeps strawberry's default (no hook) —
    decided as strawberry's `ExtensionContextManagerBase.get_hook` decides it, once per
    class and stage (extension classes are few and live as long as the process)."""
    key = (extension_class, stage)
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve(extension_class, stage)
    return _RESOLVED[key]


def _resolve(extension_class: type[SchemaExtension], stage: str) -> ClassHook | None:
    hook = getattr(extension_class, stage)
    if hook is getattr(SchemaExtension, stage):
        return None
    if inspect.isgeneratorfunction(hook):
        return ClassHook(contextlib.contextmanager(hook), is_async=False)
    if inspect.isasyncgenfunction(hook):
        return ClassHook(contextlib.asynccontextmanager(hook), is_async=True)
    if not callable(hook):
        raise ValueError(f"Hook {stage} on {extension_class} must be callable, received {hook!r}")
    if inspect.iscoroutinefunction(hook):

        @contextlib.asynccontextmanager
        async def awaited(extension: SchemaExtension) -> AsyncIterator[None]:
            await hook(extension)
            yield

        return ClassHook(awaited, is_async=True)

    @contextlib.contextmanager
    def called(extension: SchemaExtension) -> Iterator[None]:
        hook(extension)
        yield

    return ClassHook(called, is_async=False)


class _ResolvedHooks(ExtensionContextManagerBase):
    """A stage's hooks from the per-class table. Entered synchronously by strawberry's base;
    asynchronously (every query and mutation) by `__aenter__`/`__aexit__` below, which do
    what the base's `AsyncExitStack` does, in the same order."""

    __slots__ = ("entered",)

    def __init__(self, extensions: list[SchemaExtension]) -> None:
        self.hooks = []
        for extension in extensions:
            found = class_hook(type(extension), self.HOOK_NAME)
            if found is not None:
                self.hooks.append(
                    WrappedHook(
                        extension=extension,
                        hook=functools.partial(found.factory, extension),
                        is_async=found.is_async,
                    )
                )

    async def __aenter__(self) -> None:
        # Like the base: each hook entered in turn; one that fails to enter propagates and
        # those entered before it are not left (strawberry does not call `__aexit__` then).
        self.entered: list[tuple[Any, bool]] = []
        for hook in self.hooks:
            manager: Any = hook.hook()
            if hook.is_async:
                await manager.__aenter__()
            else:
                manager.__enter__()
            self.entered.append((manager, hook.is_async))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # `contextlib.AsyncExitStack.__aexit__`: leave in reverse order, each hook handed the
        # error the ones after it left (one may suppress it or raise another). Like
        # strawberry's stage, whose exit stack's answer it drops, the stage itself never
        # suppresses the error its body raised.
        frame = sys.exc_info()[1]
        details: tuple[Any, Any, Any] = (exc_type, exc_val, exc_tb)
        pending = False
        while self.entered:
            manager, is_async = self.entered.pop()
            try:
                if is_async:
                    suppress = await manager.__aexit__(*details)
                else:
                    suppress = manager.__exit__(*details)
                if suppress:
                    pending = False
                    details = (None, None, None)
            except BaseException:
                new = sys.exc_info()
                _chain(new[1], details[1], frame)
                pending = True
                details = new
        if pending:
            error = details[1]
            context = error.__context__
            try:
                raise error
            except BaseException:
                error.__context__ = context
                raise


def _chain(
    new: BaseException | None, old: BaseException | None, frame: BaseException | None
) -> None:
    """`AsyncExitStack`'s `_fix_exception_context`: the error a hook raised while leaving
    names the one it was handed as its context."""
    if new is None:
        return
    while True:
        context = new.__context__
        if context is None or context is old:
            return
        if context is frame:
            break
        new = context
    new.__context__ = old


class OperationHooks(_ResolvedHooks, OperationContextManager):
    __slots__ = ()


class ParsingHooks(_ResolvedHooks, ParsingContextManager):
    __slots__ = ()


class ValidationHooks(_ResolvedHooks, ValidationContextManager):
    __slots__ = ()


class ExecutingHooks(_ResolvedHooks, ExecutingContextManager):
    __slots__ = ()


class KnownDocuments:
    """Query texts that parsed and validated without an error, each with its parsed document
    (the parser cache's own object); at most `maxsize`, the oldest forgotten first."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode | None:
        """The parsed document of `query` if it is known to be valid."""
        return self._documents.get(query)

    def remember(self, query: str, document: DocumentNode) -> None:
        """`query` parsed into `document`, which the schema's validation found valid."""
        if query not in self._documents:
            self._documents[query] = document
            if len(self._documents) > self.maxsize:
                self._documents.popitem(last=False)

    def __len__(self) -> int:
        return len(self._documents)


class RememberValidDocuments(SchemaExtension):
    """Remembers a query text whose document validated without an error, in the schema's
    `known_documents` (after the validation cache in the schema's extensions, before the
    checks that depend on the variables or the caller)."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.pre_execution_errors == [] and ctx.graphql_document is not None and ctx.query:
            known: KnownDocuments | None = getattr(ctx.schema, "known_documents", None)
            if known is not None:
                known.remember(ctx.query, ctx.graphql_document)
        yield


class ResolvedExtensionsRunner(SchemaExtensionsRunner):
    """strawberry's runner of one operation's extensions, with the hooks of each stage taken
    from the per-class table (`class_hook`). Streamed results keep strawberry's own lookup
    (a subscription's stream is set up once, not per request).

    For a known document (`known=True`: the execution context already holds its parsed
    document), the hooks of the `document_level` extensions are not run, and the validation
    stage starts with the validation errors the cache would give a valid document: none."""

    def __init__(
        self,
        execution_context: ExecutionContext,
        extensions: list[SchemaExtension] | None = None,
        *,
        known: bool = False,
        document_level: tuple[type[SchemaExtension], ...] = (),
    ) -> None:
        super().__init__(execution_context=execution_context, extensions=extensions)
        self.known = known
        self.hooked = (
            [e for e in self.extensions if not isinstance(e, document_level)]
            if known
            else self.extensions
        )

    def operation(self) -> OperationContextManager:
        return OperationHooks(self.hooked)

    def validation(self) -> ValidationContextManager:
        if self.known:
            self.execution_context.pre_execution_errors = []
        return ValidationHooks(self.hooked)

    def parsing(self) -> ParsingContextManager:
        return ParsingHooks(self.hooked)

    def executing(self) -> ExecutingContextManager:
        return ExecutingHooks(self.hooked)

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        # strawberry's, asking only the extensions whose class has results to give (the
        # base class's `get_results` gives none)
        data: dict[str, Any] = {}
        for extension in self.extensions:
            if gives_results(type(extension)):
                data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data


_GIVES_RESULTS: dict[type[SchemaExtension], bool] = {}


def gives_results(extension_class: type[SchemaExtension]) -> bool:
    """Whether `extension_class` overrides `get_results` (decided once per class)."""
    found = _GIVES_RESULTS.get(extension_class)
    if found is None:
        found = extension_class.get_results is not SchemaExtension.get_results
        _GIVES_RESULTS[extension_class] = found
    return found
