"""Websocket sessions follow their token (graphql-transport-ws), see `docs/realtime.md`.

- The server closes the socket with 4403 when the token expires (its `exp`, plus the configured
  leeway), unless the client refreshed it before: a `ping` whose payload carries
  `{"authorization": "Bearer <new token>"}` for the same tenant and user replaces the token
  (and the roles and groups it grants) and is answered by a `pong` with `{"expiresAt": …}`.
  A refresh with an invalid token, or another user's, closes the socket with 4403.
- Every `subscribe` verifies the current token again, so a subscription never starts on a
  token that has expired or a principal that is no longer what the token says.
- Open sockets are capped per user and per client address across every API process (a lease
  per socket in a Redis sorted set, renewed while the socket lives); over a cap the socket is
  closed with 4429 before `connection_ack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import jwt
import redis.asyncio as aioredis
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.utils.aio import aclosing

from signoff.api.auth import bearer_token
from signoff.api.context import SignoffContext, authenticate
from signoff.api.push import TRANSPORT_SEND, Handover, PushTarget
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError
from signoff.settings import Settings

log = logging.getLogger("signoff.api.ws")

LEASE_SECONDS = 90
_ACQUIRE = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', key, tonumber(ARGV[3]) * 2)
end
return 0
"""


class SocketCaps:
    """Leases of open sockets per user and per client address, shared by all processes."""

    def __init__(self, settings: Settings) -> None:
        self._redis = aioredis.Redis.from_url(settings.redis_url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._prefix = f"{settings.redis_prefix}:ws:"
        self.per_user = settings.ws_max_sockets_per_user
        self.per_address = settings.ws_max_sockets_per_address

    def _keys(self, actor: Actor, address: str) -> list[str]:
        principal = actor.principal
        return [
            f"{self._prefix}user:{principal.tenant_id}:{principal.user_id}",
            f"{self._prefix}addr:{address}",
        ]

    async def acquire(self, actor: Actor, address: str, lease: str) -> str | None:
        """Take a lease for one socket; None when granted, else the cap that is full."""
        full = await self._acquire(
            keys=self._keys(actor, address),
            args=[time.time(), lease, LEASE_SECONDS, self.per_user, self.per_address],
        )
        return None if int(full) == 0 else ("user", "address")[int(full) - 1]

    async def renew(self, actor: Actor, address: str, lease: str) -> None:
        """Keep the lease of a socket that is still open."""
        until = time.time() + LEASE_SECONDS
        for key in self._keys(actor, address):
            await self._redis.zadd(key, {lease: until}, xx=True)

    async def release(self, actor: Actor, address: str, lease: str) -> None:
        """Give the lease back when the socket closes."""
        for key in self._keys(actor, address):
            await self._redis.zrem(key, lease)

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()


def _expiry(token: str) -> float | None:
    # Called only after the verifier accepted the token, so the signature is already checked.
    claims = jwt.decode(token, options={"verify_signature": False})
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _connection_token(params: dict[str, Any] | None) -> str:
    params = params or {}
    raw = params.get("Authorization") or params.get("authorization") or ""
    if not raw and isinstance(params.get("token"), str):
        return str(params["token"])
    return bearer_token(raw) if isinstance(raw, str) else ""


def session_handler(settings: Settings, caps: SocketCaps | None) -> type:
    """The graphql-transport-ws handler class with token-bound sessions and socket caps."""

    class SessionHandler(BaseGraphQLTransportWSHandler[SignoffContext, Any]):
        expiry_task: asyncio.Task[None] | None = None
        lease: str | None = None
        leased_as: tuple[Actor, str] | None = None

        @property
        def signoff_context(self) -> SignoffContext:
            context: SignoffContext = self.context
            return context

        def _address(self) -> str:
            websocket = self.signoff_context.websocket
            client = websocket.client if websocket is not None else None
            return client.host if client else "unknown"

        async def handle_connection_init(self, message: Any) -> None:
            payload = message.get("payload")
            context = self.signoff_context
            if caps is not None and isinstance(payload, dict) and not self.connection_init_received:
                context.connection_params = payload
                try:
                    actor = authenticate(context)
                except DomainError:
                    actor = None  # the base class refuses it with 4403
                if actor is not None:
                    lease = uuid.uuid4().hex
                    full = await caps.acquire(actor, self._address(), lease)
                    if full is not None:
                        log.warning("websocket refused: too many open sockets per %s", full)
                        await self.websocket.close(code=4429, reason=f"Too many sockets ({full})")
                        return
                    self.lease, self.leased_as = lease, (actor, self._address())
            await super().handle_connection_init(message)
            if self.connection_acknowledged:
                self._arm_expiry()

        def _arm_expiry(self) -> None:
            if self.expiry_task is not None:
                self.expiry_task.cancel()
            token = _connection_token(self.signoff_context.connection_params)
            expires = _expiry(token) if token else None
            self.expiry_task = asyncio.create_task(self._close_at(expires))

        async def _close_at(self, expires: float | None) -> None:
            # Wakes up at least every lease period to renew the socket's lease.
            while True:
                now = time.time()
                if expires is not None and now >= expires + settings.jwt_leeway_seconds:
                    log.info("websocket closed: token expired")
                    await self.websocket.close(code=4403, reason="Token expired")
                    return
                wait = LEASE_SECONDS / 3
                if expires is not None:
                    wait = min(wait, expires + settings.jwt_leeway_seconds - now)
                await asyncio.sleep(max(wait, 0.01))
                if caps is not None and self.lease and self.leased_as:
                    await caps.renew(*self.leased_as, self.lease)

        async def handle_ping(self, message: Any) -> None:
            payload = message.get("payload")
            if not (isinstance(payload, dict) and self.connection_acknowledged):
                await super().handle_ping(message)
                return
            token = _connection_token(payload)
            if not token:
                await super().handle_ping(message)
                return
            context = self.signoff_context
            current = authenticate(context).principal
            try:
                principal = context.verifier.verify(token)
            except DomainError as exc:
                await self.websocket.close(code=4403, reason=f"Refresh refused: {exc.message}")
                return
            if (principal.tenant_id, principal.user_id) != (current.tenant_id, current.user_id):
                await self.websocket.close(code=4403, reason="Refresh refused: another user")
                return
            context.connection_params = {"authorization": f"Bearer {token}"}
            context.cache.pop("actor", None)
            authenticate(context)
            self._arm_expiry()
            await self.send_message({"type": "pong", "payload": {"expiresAt": _expiry(token)}})

        async def handle_subscribe(self, message: Any) -> None:
            if self.connection_acknowledged:
                context = self.signoff_context
                context.cache.pop("actor", None)
                try:
                    authenticate(context)
                except DomainError as exc:
                    await self.websocket.close(code=4403, reason=exc.message[:100])
                    return
            await super().handle_subscribe(message)

        def _transport_send(self) -> Any:
            websocket = self.signoff_context.websocket
            assert websocket is not None
            return websocket.scope.get(TRANSPORT_SEND) or websocket.send

        async def _send_result_stream(self, operation: Operation[Any, Any], source: Any) -> None:
            # A stream handed over (`api/push.py`) is served in this task until it ends; the
            # results around it (errors, the end) take strawberry's path as before.
            async def served() -> Any:
                async for result in source:
                    handover = getattr(result, "data", None)
                    if isinstance(handover, Handover):
                        target = PushTarget(
                            self._transport_send(),
                            operation.id,
                            result.extensions,
                            handover.executor,
                        )
                        await handover.serve(target)
                        continue
                    yield result

            async with aclosing(served()) as results:
                await super()._send_result_stream(operation, results)

        async def shutdown(self) -> None:
            if self.expiry_task is not None:
                self.expiry_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.expiry_task
            if caps is not None and self.lease and self.leased_as:
                with contextlib.suppress(Exception):
                    await caps.release(*self.leased_as, self.lease)
            await super().shutdown()

    return SessionHandler
