"""Request ids: taken from `X-Request-Id` when it is well formed, made up otherwise, echoed in
the response, carried by a context variable onto every log line and into the audit trail."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_current: ContextVar[str | None] = ContextVar("signoff_request_id", default=None)
# What is known about the request so far (tenant, operation), for its log lines. One mutable
# mapping per request, so that what a resolver learns (in a task of its own) reaches the lines
# logged by the request's other tasks too.
_fields: ContextVar[dict[str, str] | None] = ContextVar("signoff_log_fields", default=None)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def current_request_id() -> str | None:
    """The id of the request this task serves, if any."""
    return _current.get()


def accept_or_create(given: str | None) -> str:
    """The client's id when it is safe to log and store (1 to 100 of `A-Za-z0-9._:-`), else a
    fresh one, so that a header can never inject text into logs."""
    if given and _WELL_FORMED.fullmatch(given):
        return given
    return uuid.uuid4().hex


def settle_header(scope: Scope) -> str:
    """The request's id: leaves the request's headers with one `x-request-id`, last, the
    client's when it is well formed (`accept_or_create`), else a fresh one.

    In the request's own scope, not a copy: the server reads nothing of it back, and Litestar
    adds its own keys to it too. A websocket's scope lives as long as its socket, and a copy
    with its headers was ~2 KiB per socket (docs/architecture.md, "Memory per socket")."""
    headers = scope.get("headers") or []
    given: str | None = None
    found = 0
    for key, value in headers:
        if key.lower() == _HEADER_BYTES:
            found += 1
            if given is None:
                given = value.decode("latin-1")
    request_id = accept_or_create(given)
    if found == 1 and request_id == given and headers[-1][0] == _HEADER_BYTES:
        return request_id
    entry = (_HEADER_BYTES, request_id.encode())
    if not found and isinstance(headers, list):
        headers.append(entry)
        scope["headers"] = headers
        return request_id
    kept = [(k, v) for k, v in headers if k.lower() != _HEADER_BYTES]
    kept.append(entry)
    scope["headers"] = kept
    return request_id


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: settles the request id, puts it into the request's headers (so every
    reader downstream sees the same one), the context variable and the response headers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        request_id = settle_header(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                out = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != HEADER.encode()
                ]
                out.append((HEADER.encode(), request_id.encode()))
                message = {**message, "headers": out}
            await send(message)

        token = _current.set(request_id)
        fields = _fields.set({})
        try:
            await app(scope, receive, send_with_id)
        finally:
            _fields.reset(fields)
            _current.reset(token)

    return middleware


def bind(**fields: str) -> None:
    """Name what this request is about (`tenant`, `operation`) on its later log lines."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


class RequestIdFilter(logging.Filter):
    """Adds `request_id`, `tenant` and `operation` to every record ("-" where unknown); a line
    outside a request that names its own `tenant` (a job's) keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or "-"
        fields = _fields.get() or {}
        record.tenant = fields.get("tenant") or getattr(record, "tenant", "-")
        record.operation = fields.get("operation", "-")
        return True


LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(tenant)s %(operation)s] %(message)s"
)
JSON_FIELDS = (
    "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s %(operation)s"
)


def configure_logging(level: str, *, json_lines: bool) -> None:
    """The root logger's one handler: JSON lines (python-json-logger; production) or text, each
    line carrying the request id, tenant and operation; a line's extra fields (`duration_ms`)
    become JSON keys."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    install_log_filter()


def install_log_filter() -> None:
    """Give every handler of the root logger the request id filter."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
