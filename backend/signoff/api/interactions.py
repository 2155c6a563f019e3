"""Interactive callbacks from channels (Slack buttons): verified by the channel's plugin,
applied through the same idempotent service call as the GraphQL mutations."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

from litestar import Request, Response, post
from litestar.datastructures import State

from signoff.db import notifications as notification_repo
from signoff.domain.actors import Actor, Principal, RequestMeta
from signoff.domain.errors import DomainError, ErrorCode
from signoff.notify import (
    ChannelNotConfigured,
    Interaction,
    InteractionRejected,
    NotifierRegistry,
    UnknownChannel,
)
from signoff.services import items as item_services
from signoff.services.context import ServiceContext

log = logging.getLogger("signoff.api")

REGISTRY_STATE_KEY = "notifier_registry"


def _reply(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(body, status_code=status)


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


async def actor_for(
    channel: str, interaction: Interaction, request: Request[Any, Any, Any]
) -> Actor | None:
    """The signoff user behind a channel identity, in the tenant of the item acted on.

    The tenant comes from the item, the person from `user_profile.addresses[channel]` in that
    tenant; roles and groups are the profile's. None when either is unknown.
    """
    item_id = _uuid(interaction.item_id)
    tenant_id = await notification_repo.tenant_of_item(item_id) if item_id else None
    if tenant_id is None:
        return None
    profile = await notification_repo.profile_by_address(
        tenant_id, channel, interaction.actor_external_id
    )
    if profile is None:
        return None
    principal = Principal(
        profile["user_id"],
        tenant_id,
        roles=frozenset(profile["roles"] or ()),
        groups=frozenset(profile["groups"] or ()),
    )
    client = request.client
    meta = RequestMeta(
        request_id=(request.headers.get("x-request-id") or uuid.uuid4().hex)[:100],
        client_addr=client.host if client else None,
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
    )
    return Actor(principal, meta)


@post("/hooks/{channel:str}/interactions", include_in_schema=False, status_code=200)
async def channel_interaction(
    channel: str, request: Request[Any, Any, Any], state: State
) -> Response[dict[str, Any]]:
    """Verify a channel callback and apply the decision it carries, once per click.

    401 when the plugin rejects the callback (signature, timestamp, body), 404 for a channel
    that is not enabled, 403 for a person signoff does not know or who may not decide, 409
    when the decision is refused (already decided, ...), 200 otherwise.
    """
    registry: NotifierRegistry = state[REGISTRY_STATE_KEY]
    services: ServiceContext = state["services"]
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        interaction = await registry.parse_interaction(channel, headers, body)
    except InteractionRejected as exc:
        log.warning("callback on channel %r rejected: %s", channel, exc.reason)
        return _reply(401, {"ok": False, "error": "rejected"})
    except (UnknownChannel, ChannelNotConfigured):
        return _reply(404, {"ok": False, "error": "unknown channel"})
    if interaction is None:
        return _reply(200, {"ok": True})
    actor = await actor_for(channel, interaction, request)
    if actor is None:
        return _reply(403, {"ok": False, "error": "unknown user"})
    step_id = _uuid(interaction.step_id)
    if step_id is None:
        return _reply(400, {"ok": False, "error": "the callback names no step"})
    inp = item_services.DecideStepInput(
        step_id=step_id,
        outcome=item_services.Outcome(interaction.action),
        reason=interaction.reason,
        idempotency_key=interaction.idempotency_key,
    )
    try:
        view = await item_services.decide_step(actor, services, inp)
    except DomainError as exc:
        status = 403 if exc.code == ErrorCode.FORBIDDEN else 409
        if exc.code == ErrorCode.NOT_FOUND:
            status = 404
        return _reply(status, {"ok": False, "code": exc.code.value, "message": exc.message})
    return _reply(200, {"ok": True, "item_state": view.item.state.value})
