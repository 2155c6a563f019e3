"""The schema as the server runs it: an execution timeout for every query and mutation (over
HTTP and the websocket), one log line per refusal, and every error finished the same way
(masked when unexpected, suggestions hidden in production, the request id in `extensions`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextvars import ContextVar
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from signoff import metrics
from signoff.api.context import tenant_scope_of
from signoff.api.errors import should_mask
from signoff.api.extension_hooks import KnownDocuments, ResolvedExtensionsRunner
from signoff.domain.errors import DomainError, ErrorCode
from signoff.request_ids import current_request_id

log = logging.getLogger("signoff.api")

_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
UNEXPECTED = "Unexpected error."
# Set while `GuardedSchema.execute` (a query or mutation) builds its runner: only there does a
# known document skip its document-level hooks (a websocket's streams keep the generic way).
_EXECUTING: ContextVar[bool] = ContextVar("signoff_executing", default=False)


def timeout_error(seconds: float) -> GraphQLError:
    """The typed refusal of an operation that ran past the execution timeout."""
    return GraphQLError(
        f"The operation took longer than {seconds:g} s and was abandoned; nothing it did was kept.",
        extensions={"code": ErrorCode.TIMEOUT.value},
    )


class OperationTimeout(SchemaExtension):
    """Queries and mutations end at the execution timeout whatever carries them: an HTTP
    request, or a `subscribe` message on the websocket (where nothing else would bound them).
    A subscription's stream is long-lived by design and is not cut, only its setup is."""

    def __init__(self, *, seconds: float | None) -> None:
        self.seconds = seconds

    async def on_execute(self) -> AsyncIterator[None]:
        """Run the operation under the timeout; past it, cancelled (its transaction rolls
        back) and refused with TIMEOUT."""
        if not self.seconds or self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            yield
            return
        try:
            async with asyncio.timeout(self.seconds):
                yield
        except TimeoutError:
            log.warning("operation timed out after %s s", self.seconds)
            raise timeout_error(self.seconds) from None


class GuardedSchema(strawberry.Schema):
    """A strawberry schema whose errors are logged once each and reach the client finished by
    `finish_error` (the execution timeout is the `OperationTimeout` extension, the same for
    HTTP and the websocket)."""

    def __init__(
        self,
        *args: Any,
        mask: bool = True,
        hide_suggestions: bool = True,
        document_level: tuple[type[SchemaExtension], ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mask = mask
        self.hide_suggestions = hide_suggestions
        self.document_level = document_level
        self.known_documents = KnownDocuments(maxsize=512)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        """The runner of one operation's extensions, their hooks looked up once per class
        (`api/extension_hooks.py`), not on every request. A query or mutation whose text is a
        known document starts from its parsed document and skips the `document_level`
        extensions' hooks, whose outcome its text has already decided."""
        query = execution_context.query
        if (
            self.document_level
            and query
            and execution_context.graphql_document is None
            and _EXECUTING.get()
        ):
            document = self.known_documents.get(query)
            if document is not None:
                execution_context.graphql_document = document
                return ResolvedExtensionsRunner(
                    execution_context=execution_context,
                    extensions=extensions,
                    known=True,
                    document_level=self.document_level,
                )
        return ResolvedExtensionsRunner(execution_context=execution_context, extensions=extensions)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Run the operation in the caller's tenant scope; finish its errors."""
        with tenant_scope_of(_context(args, kwargs)):
            executing = _EXECUTING.set(True)
            try:
                result = await super().execute(*args, **kwargs)
            finally:
                _EXECUTING.reset(executing)
        return self._finish(result)

    async def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        """Subscribe; every result pushed is finished like a query's."""
        context = _context(args, kwargs)
        with tenant_scope_of(context):
            results = await super().subscribe(*args, **kwargs)
        return self._finish_any(results, context)

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        """Any operation over the websocket; its results are finished like a query's."""
        context = _context(args, kwargs)
        with tenant_scope_of(context):
            results = await super().stream(*args, **kwargs)
        return self._finish_any(results, context)

    def _finish_any(self, results: Any, context: Any) -> Any:
        if hasattr(results, "__aiter__"):
            return self._finish_each(results, context)
        return self._finish(results)

    async def _finish_each(
        self, results: AsyncGenerator[Any, None], context: Any
    ) -> AsyncIterator[Any]:
        # Each step runs in the caller's tenant scope (set around the step only: a scope
        # held across `yield` would leak into whatever else the consumer does).
        metrics.SUBSCRIPTIONS.inc()
        try:
            while True:
                with tenant_scope_of(context):
                    try:
                        result = await anext(results)
                    except StopAsyncIteration:
                        break
                yield self._finish(result)
        finally:
            metrics.SUBSCRIPTIONS.dec()
            await results.aclose()

    def _finish(self, result: Any) -> Any:
        errors = getattr(result, "errors", None)
        if errors:
            for error in errors:
                code = (
                    "INTERNAL_ERROR"
                    if should_mask(error)
                    else (error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED"
                )
                metrics.GRAPHQL_ERRORS.labels(str(code), "graphql").inc()
            result.errors = [
                finish_error(e, mask=self.mask, hide_suggestions=self.hide_suggestions)
                for e in errors
            ]
            for error in errors:
                drop_tracebacks(error)
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Refusals are one line each (a refused token at WARNING, without a traceback);
        unexpected failures are logged with their traceback."""
        seen: set[tuple[str, str]] = set()
        for error in errors:
            if should_mask(error):
                original = error.original_error
                log.error(
                    "unexpected error at %s: %s",
                    ".".join(str(p) for p in error.path or ()) or "-",
                    error.message,
                    exc_info=(type(original), original, original.__traceback__)
                    if original is not None
                    else None,
                )
                continue
            code = str((error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED")
            if (code, error.message) in seen:
                continue
            seen.add((code, error.message))
            level = logging.WARNING if code == ErrorCode.UNAUTHENTICATED.value else logging.INFO
            log.log(level, "refused %s: %s", code, error.message)


def drop_tracebacks(error: BaseException) -> None:
    """Forget the tracebacks of an error and of the errors behind it, once it is logged
    (`process_errors` runs first). A traceback holds the frames that raised and caught it, and
    those hold the error: a cycle that would keep the request's executor and context for the
    garbage collector (docs/architecture.md, "Inbox pages and the garbage collector")."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        for behind in (exc.__cause__, exc.__context__, getattr(exc, "original_error", None)):
            if isinstance(behind, BaseException):
                pending.append(behind)


def _context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The context value of a call of `execute`/`subscribe`/`stream` (third positional)."""
    if "context_value" in kwargs:
        return kwargs["context_value"]
    return args[2] if len(args) > 2 else None


def _request_id() -> dict[str, str]:
    request_id = current_request_id()
    return {"requestId": request_id} if request_id else {}


def finish_error(error: GraphQLError, *, mask: bool, hide_suggestions: bool) -> GraphQLError:
    """The error as the client sees it: masked when unexpected (if `mask`), without "Did you
    mean" suggestions (if `hide_suggestions`), always with a `code` and the request id."""
    if should_mask(error):
        return GraphQLError(
            UNEXPECTED if mask else error.message,
            nodes=error.nodes,
            path=error.path,
            original_error=None if mask else error.original_error,
            extensions={"code": "INTERNAL_ERROR", **_request_id()},
        )
    message = error.message
    if hide_suggestions:
        message = _SUGGESTION.sub("", message)
    extensions = dict(error.extensions or {})
    original = error.original_error
    if "code" not in extensions:
        if isinstance(original, DomainError):
            extensions["code"] = original.code.value
        elif "more than" in message and "tokens" in message:
            extensions["code"] = ErrorCode.LIMIT_EXCEEDED.value
            extensions["limit"] = "tokens"
        elif original is None or isinstance(original, GraphQLError):
            extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
        else:  # a scalar refusing a literal while the document is validated
            extensions["code"] = ErrorCode.INVALID_INPUT.value
    extensions.update(_request_id())
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source if not error.nodes else None,
        positions=error.positions if not error.nodes else None,
        path=error.path,
        original_error=original,
        extensions=extensions,
    )
