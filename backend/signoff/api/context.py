"""The per-request GraphQL context, and how a resolver learns who is calling."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from strawberry.litestar import BaseContext
from strawberry.types import Info

from signoff.api.auth import TokenVerifier, bearer_token
from signoff.api.errors import CodedError
from signoff.domain.actors import Actor, RequestMeta
from signoff.domain.errors import DomainError
from signoff.realtime.hub import RealtimeHub
from signoff.request_ids import bind
from signoff.services import scopes
from signoff.services.context import ServiceContext


class SignoffContext(BaseContext, kw_only=True):
    """Built once per HTTP request or websocket connection."""

    services: ServiceContext
    verifier: TokenVerifier
    connection_params: dict[str, Any] | None = None
    realtime: RealtimeHub | None = None
    cache: dict[str, Any] = msgspec.field(default_factory=dict)


def _header(context: SignoffContext, name: str) -> str | None:
    if context.request is not None:
        value: str | None = context.request.headers.get(name)
        return value
    if context.websocket is not None:
        ws_value: str | None = context.websocket.headers.get(name)
        return ws_value
    return None


def _token(context: SignoffContext) -> str:
    if context.request is not None:
        return bearer_token(context.request.headers.get("authorization"))
    params = context.connection_params or {}
    raw = params.get("Authorization") or params.get("authorization") or ""
    if not raw and isinstance(params.get("token"), str):
        return str(params["token"])
    return bearer_token(raw) if isinstance(raw, str) else ""


def request_meta(context: SignoffContext) -> RequestMeta:
    """Request id (given or generated), client address and user agent, for the audit trail."""
    meta = context.cache.get("meta")
    if meta is None:
        connection = context.request or context.websocket
        client = connection.client if connection is not None else None
        meta = RequestMeta(
            request_id=(_header(context, "x-request-id") or uuid.uuid4().hex)[:100],
            client_addr=client.host if client else None,
            user_agent=(_header(context, "user-agent") or "")[:300] or None,
        )
        context.cache["meta"] = meta
    return meta


def authenticate(context: SignoffContext) -> Actor:
    """The verified actor of this request; cached for the request's lifetime."""
    actor = context.cache.get("actor")
    if actor is None:
        principal = context.verifier.verify(_token(context))
        bind(tenant=principal.tenant_id)
        actor = Actor(principal, request_meta(context))
        context.cache["actor"] = actor
    return actor


@contextmanager
def tenant_scope_of(context: Any) -> Iterator[None]:
    """Bind what runs inside to the tenant of the request's verified actor; without one
    (no token, a refused token, no context) to no tenant at all: the database shows nothing,
    and the resolvers refuse the request themselves."""
    actor = None
    if isinstance(context, SignoffContext):
        try:
            actor = authenticate(context)
        except DomainError:
            actor = None
    if actor is None:
        with scopes.no_tenant():
            yield
        return
    with scopes.acting_as(actor):
        yield


def actor_of(info: Info[SignoffContext, Any]) -> Actor:
    """The calling actor, or an UNAUTHENTICATED error (HTTP status 401)."""
    try:
        return authenticate(info.context)
    except DomainError as exc:
        if info.context.response is not None:
            info.context.response.status_code = 401
        raise CodedError(exc) from None


def services_of(info: Info[SignoffContext, Any]) -> ServiceContext:
    """The services' dependencies."""
    return info.context.services
