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

The deadlines and lease renewals of every socket of the process are kept by one task
(`SessionClock`): a socket costs an entry in a heap, not a task and a timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

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

    async def renew(self, leases: list[tuple[Actor, str, str]]) -> None:
        """Keep the leases (actor, address, lease) of sockets that are still open, in one
        round trip."""
        until = time.time() + LEASE_SECONDS
        async with self._redis.pipeline(transaction=False) as pipe:
            for actor, address, lease in leases:
                for key in self._keys(actor, address):
                    pipe.zadd(key, {lease: until}, xx=True)
            await pipe.execute()

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


class Session(Protocol):
    """What the clock keeps of a socket: its lease, and how to close it when its token
    expired."""

    lease: str | None
    leased_as: tuple[Actor, str] | None

    async def expire(self) -> None:
        """Close the socket: its token expired."""


class SessionClock:
    """Every socket's deadline (its token's `exp` plus the leeway) and lease renewal in this
    process, kept by one task that runs while there are sockets: it closes each socket at its
    deadline and renews every lease in one round trip each `renew_every` seconds."""

    def __init__(
        self,
        caps: SocketCaps | None,
        leeway: float,
        *,
        renew_every: float = LEASE_SECONDS / 3,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._caps = caps
        self._leeway = leeway
        self._renew_every = renew_every
        self._now = now
        self._deadlines: dict[Session, float | None] = {}
        self._heap: list[tuple[float, int, Session]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.renewals = 0
        """Lease renewal rounds made (for tests)."""

    def __len__(self) -> int:
        return len(self._deadlines)

    @property
    def running(self) -> bool:
        """The clock's task runs (it does while any socket is watched)."""
        return self._task is not None and not self._task.done()

    def watch(self, session: Session, expires: float | None) -> None:
        """Close `session` when its token (expiring at `expires`, None: never) expires, and
        renew its lease meanwhile; a later call replaces its deadline (a refreshed token)."""
        deadline = None if expires is None else expires + self._leeway
        self._deadlines[session] = deadline
        if deadline is not None:
            entry = (deadline, next(self._order), session)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry and self._wake is not None:
                self._wake.set()
        if len(self._heap) > 2 * len(self._deadlines) + 64:
            self._compact()
        if not self.running:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="signoff-ws-sessions")

    def forget(self, session: Session) -> None:
        """The socket closed: stop watching it (the last one stops the task)."""
        self._deadlines.pop(session, None)
        if not self._deadlines and self._wake is not None:
            self._wake.set()

    def _compact(self) -> None:
        # Entries of forgotten sessions and replaced deadlines wait in the heap until their
        # time; rebuild it when they outnumber the live ones.
        self._heap = [e for e in self._heap if self._deadlines.get(e[2]) == e[0]]
        heapq.heapify(self._heap)

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        next_renewal = self._now() + self._renew_every
        while self._deadlines:
            now = self._now()
            while self._heap and self._heap[0][0] <= now:
                deadline, _, session = heapq.heappop(self._heap)
                if self._deadlines.get(session) == deadline:
                    del self._deadlines[session]
                    closing = asyncio.create_task(session.expire())
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)
            if now >= next_renewal:
                next_renewal = now + self._renew_every
                await self._renew()
            wait = next_renewal - now
            if self._heap:
                wait = min(wait, self._heap[0][0] - now)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(wait, 0.01))

    async def _renew(self) -> None:
        if self._caps is None:
            return
        leases = [
            (*session.leased_as, session.lease)
            for session in self._deadlines
            if session.lease and session.leased_as
        ]
        self.renewals += 1
        if not leases:
            return
        try:
            await self._caps.renew(leases)
        except Exception as exc:  # the next round retries; a lease lapses only after 90 s
            log.warning("socket lease renewal failed (%s)", type(exc).__name__)


def session_handler(settings: Settings, caps: SocketCaps | None) -> type:
    """The graphql-transport-ws handler class with token-bound sessions and socket caps."""
    clock = SessionClock(caps, settings.jwt_leeway_seconds)

    class SessionHandler(BaseGraphQLTransportWSHandler[SignoffContext, Any]):
        sessions = clock
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
            token = _connection_token(self.signoff_context.connection_params)
            clock.watch(self, _expiry(token) if token else None)

        async def expire(self) -> None:
            log.info("websocket closed: token expired")
            with contextlib.suppress(Exception):  # (the socket may be gone meanwhile)
                await self.websocket.close(code=4403, reason="Token expired")

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
            # A stream handed over (`api/push.py`) takes this task only for its catch-up; then
            # the task ends and the operation stays registered, its task replaced by the
            # stream's end (`PushTarget.ended`: cancelled by the client's `complete` and by
            # the socket's shutdown, as the task was). The results before it (errors) take
            # strawberry's path as before.
            async def served() -> Any:
                async for result in source:
                    handover = getattr(result, "data", None)
                    if isinstance(handover, Handover):
                        ended = asyncio.get_running_loop().create_future()
                        target = PushTarget(
                            self._transport_send(),
                            operation.id,
                            result.extensions,
                            handover.executor,
                            ended,
                            lambda: self._forget_operation(operation),
                        )
                        await handover.serve(target)
                        # From here on the stream completes the operation itself: strawberry's
                        # `complete` when this task ends would be a second one.
                        operation.completed = True
                        # (the handler only cancels and awaits it: a future does both)
                        operation.task = ended  # type: ignore[assignment]
                        return
                    yield result

            async with aclosing(served()) as results:
                await super()._send_result_stream(operation, results)

        def _forget_operation(self, operation: Operation[Any, Any]) -> None:
            if self.operations.get(operation.id) is operation:
                del self.operations[operation.id]

        async def shutdown(self) -> None:
            clock.forget(self)
            if caps is not None and self.lease and self.leased_as:
                with contextlib.suppress(Exception):
                    await caps.release(*self.leased_as, self.lease)
            await super().shutdown()

    return SessionHandler
