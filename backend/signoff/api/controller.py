"""The GraphQL HTTP and websocket endpoint: strawberry's Litestar controller with signoff's
connection rules (websocket authentication, request bodies that cannot hurt the parser)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import strawberry
from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTasks
from litestar.exceptions import NotFoundException, ValidationException
from litestar.status_codes import HTTP_200_OK
from strawberry.exceptions import ConnectionRejectionError
from strawberry.litestar import make_graphql_controller
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from signoff.api.context import SignoffContext, authenticate
from signoff.api.graphiql import GRAPHIQL_PAGE
from signoff.api.loaders import release_loaders
from signoff.api.push import encode
from signoff.api.ws_sessions import SocketCaps, session_handler
from signoff.domain.errors import DomainError
from signoff.settings import Settings

MAX_JSON_DEPTH = 64
SUB_RESPONSE = "signoff.sub_response"


async def http_context(
    request: Request[Any, Any, Any],
    context_getter: Callable[..., Awaitable[SignoffContext]],
) -> SignoffContext:
    """The context of an HTTP request, with the response a resolver may add headers or a
    status to (one per request, also kept in the request's state: `get_sub_response`).

    strawberry's handlers take the context, the root value and that response as four
    dependencies, which Litestar resolves on every request (in batches of several, as anyio
    task groups, and the response in a worker thread); the handlers here build the same
    context themselves, on the event loop, without dependency injection."""
    context = await context_getter(request.app.state)
    context.request = request
    context.response = Response({}, background=BackgroundTasks([]))
    request.state[SUB_RESPONSE] = context.response
    return context


def end_request(context: Any) -> None:
    """Let go of what an answered HTTP request's context holds (its loaders' rows, the actor,
    the request and the sub-response). graphql-core's execution leaves the context in
    reference cycles; cut loose here, a page's objects are freed when the request ends
    instead of piling up as cyclic garbage that a young collection must walk with the event
    loop stopped (docs/architecture.md, "Inbox pages and the garbage collector")."""
    if not isinstance(context, SignoffContext):
        return
    loaders = context.cache.get("loaders")
    if loaders is not None:
        release_loaders(loaders)
    context.cache.clear()
    context.request = None
    context.response = None


def decode_request_json(data: str | bytes) -> object:
    """JSON of a request body or websocket message; anything the decoder cannot take (too
    deep, a number too long for an int) is a JSONDecodeError, i.e. a 400 / a 4400 close."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        # no deeper than its brackets, strings included: the scan below cannot refuse it
        return _loads(text)
    depth = 0
    in_string = escaped = False
    for char in text:  # a cheap bracket scan, so the recursive decoder never runs too deep
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise json.JSONDecodeError("nested too deeply", text, 0)
        elif char in "]}":
            depth -= 1
    return _loads(text)


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise json.JSONDecodeError(str(exc)[:200], text, 0) from None


def graphql_controller(
    schema: strawberry.Schema,
    settings: Settings,
    context_getter: Callable[..., Awaitable[SignoffContext]],
    caps: SocketCaps | None = None,
) -> type:
    """The controller class serving `schema` on `/graphql` (HTTP and graphql-transport-ws,
    whose sessions follow their token: `api/ws_sessions.py`)."""
    base = make_graphql_controller(
        schema,
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        context_getter=context_getter,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
        allowed_origins=settings.cors_origins,
    )

    class GraphQLController(base):  # type: ignore[valid-type,misc]
        graphql_transport_ws_handler_class = session_handler(settings, caps)

        # strawberry's HTTP handlers, taking only the request: the context is built by
        # `http_context` (the websocket's handler keeps strawberry's dependencies)
        @get(raises=[ValidationException, NotFoundException])
        async def handle_http_get(self, request: Request[Any, Any, Any]) -> Response[Any]:
            context = await http_context(request, context_getter)
            return await self.execute_request(request=request, context=context, root_value=None)

        @post(status_code=HTTP_200_OK)
        async def handle_http_post(self, request: Request[Any, Any, Any]) -> Response[Any]:
            context = await http_context(request, context_getter)
            return await self.execute_request(request=request, context=context, root_value=None)

        @property
        def graphql_ide_html(self) -> str:
            # Our page, loading GraphiQL from the package (api/graphiql.py), never from a CDN.
            return GRAPHIQL_PAGE

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[Any]:
            try:
                response: Response[Any] = await super().execute_request(
                    request=request, context=context, root_value=root_value
                )
            finally:
                end_request(context)
            return response

        async def get_sub_response(self, request: Request[Any, Any, Any]) -> Response[Any]:
            # strawberry keeps the sub-response on the controller, one instance for every
            # request, and reads it back here; this request's own is in its state, so a
            # status or header a resolver sets (401, 429 and Retry-After) can never reach
            # another request's answer, whatever the library awaits in between.
            response: Response[Any] = request.state[SUB_RESPONSE]
            return response

        def decode_json(self, data: str | bytes) -> object:
            return decode_request_json(data)

        def encode_json(self, data: object) -> str:
            return encode(data)

        async def on_ws_connect(self, context: Any) -> UnsetType | dict[str, object] | None:
            """Authenticate the websocket from the `connection_init` payload."""
            try:
                authenticate(context)
            except DomainError as exc:
                raise ConnectionRejectionError(
                    {"code": exc.code.value, "message": exc.message}
                ) from None
            return await super().on_ws_connect(context)

    return GraphQLController
