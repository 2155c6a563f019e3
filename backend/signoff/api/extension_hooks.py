"""The schema extensions' hooks, looked up once per extension class instead of on every request.

strawberry makes new extension instances for every operation (they hold the operation's
state) and, for each of the four stages (operation, parsing, validation, execution), looks up
every instance's hook again: an attribute lookup, `inspect` checks of what kind of function it
is, and a context manager factory wrapped around a bound method (`functools.update_wrapper`
each time) — 32 lookups per request for our eight extensions, all with the same answer, since
a hook is a method of the extension's class. Here each class's hook for a stage is resolved
once into a factory taking the instance; a request only calls the factories of the hooks its
extensions have. What runs, in which order, and how an error in one unwinds the others is
strawberry's own (`ExtensionContextManagerBase` enters the hooks in the same exit stack).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
    """A stage's hooks from the per-class table; entered and left by strawberry's base."""

    __slots__ = ()

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


class OperationHooks(_ResolvedHooks, OperationContextManager):
    __slots__ = ()


class ParsingHooks(_ResolvedHooks, ParsingContextManager):
    __slots__ = ()


class ValidationHooks(_ResolvedHooks, ValidationContextManager):
    __slots__ = ()


class ExecutingHooks(_ResolvedHooks, ExecutingContextManager):
    __slots__ = ()


class ResolvedExtensionsRunner(SchemaExtensionsRunner):
    """strawberry's runner of one operation's extensions, with the hooks of each stage taken
    from the per-class table (`class_hook`). Streamed results keep strawberry's own lookup
    (a subscription's stream is set up once, not per request)."""

    def operation(self) -> OperationContextManager:
        return OperationHooks(self.extensions)

    def validation(self) -> ValidationContextManager:
        return ValidationHooks(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return ParsingHooks(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return ExecutingHooks(self.extensions)
