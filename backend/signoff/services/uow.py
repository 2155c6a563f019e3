"""The unit of work: one transaction holding a change, its audit events and its idempotency key."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from signoff import metrics
from signoff.db import audit as audit_repo
from signoff.db import idempotency as idempotency_repo
from signoff.db import scope as tenant_scope
from signoff.db import tenants as tenant_repo
from signoff.db.engine import ENGINE, ScopedTransaction
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import sequencing
from signoff.services.context import ServiceContext

log = logging.getLogger("signoff.services")

R = TypeVar("R")


@dataclass(frozen=True)
class Guards:
    """What every mutation may carry: an idempotency key and, where what it changes has a
    version, the version the caller expects."""

    idempotency_key: str | None = None
    expected_version: int | None = None


@dataclass
class UnitOfWork:
    """Collects the audit events of one change; they are written just before commit."""

    actor: Actor
    ctx: ServiceContext
    events: list[dict[str, Any]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    staged: bool = False
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def record(
        self,
        action: str,
        *,
        item_id: UUID | None = None,
        step_id: UUID | None = None,
        reason: str | None = None,
        acting_for: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Add the audit event of one change made in this unit of work."""
        meta = self.actor.meta
        self.events.append(
            {
                "item_id": item_id,
                "step_id": step_id,
                "action": action,
                "actor_id": self.actor.user_id,
                "acting_for": acting_for,
                "reason": reason,
                "request_id": meta.request_id,
                "client_addr": meta.client_addr,
                "user_agent": meta.user_agent,
                "environment": self.actor.principal.environment,
                "data": data or {},
                "occurred_at": self.ctx.clock.now(),
            }
        )

    def act_as(self, actor: Actor) -> None:
        """Record the following events as `actor`'s (the same tenant: one transaction of
        system work, e.g. a batch of timers, each event with its own request id)."""
        if actor.tenant_id != self.actor.tenant_id:
            raise ValueError("a unit of work stays in one tenant")
        self.actor = actor

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)


_CURRENT: ContextVar[UnitOfWork | None] = ContextVar("signoff_unit_of_work", default=None)


class KnownTenants:
    """Tenants this process has seen committed in a database, so that a write need not create
    them again. Bounded: past `limit` entries it starts afresh (costing one upsert each)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._known: set[tuple[str, str]] = set()

    def __contains__(self, tenant_id: str) -> bool:
        return (_database(), tenant_id) in self._known

    def add(self, tenant_id: str) -> None:
        """Remember that `tenant_id` exists (call after the commit that made sure of it)."""
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known.add((_database(), tenant_id))

    def clear(self) -> None:
        """Forget every tenant."""
        self._known.clear()


def _database() -> str:
    return str(ENGINE.config.get("dsn", ""))


KNOWN_TENANTS = KnownTenants()


@asynccontextmanager
async def unit_of_work(
    actor: Actor, ctx: ServiceContext, *, creates_tenant: bool = False
) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; on a clean exit write the audit events, then commit.

    The unit of work that began the transaction stages the events with the COMMIT, in one
    round trip, and returns once they are numbered and chained: by a sequencing sent in the
    same message after the COMMIT, or, when one of its tenant is already in flight in this
    process, by the coalesced next one it waits for (`services/sequencing.py`); one that
    joined a transaction numbers them as its last statement, holding the tenant's chain lock
    to that commit. A tenant this process has not seen yet must exist (UNKNOWN_TENANT
    otherwise), unless `tenants_on_first_use` lets this transaction create it or the
    transaction is its creation (`creates_tenant`); once that commits the process remembers
    it.

    A unit of work opened inside another joins its transaction (piccolo nests by joining) and
    hands its after-commit callbacks to the outermost one, so they run only after the real
    commit.
    """
    uow = UnitOfWork(actor, ctx)
    parent = _CURRENT.get()
    outer = ENGINE.current_transaction.get()
    outermost = outer is None
    if outer is not None:
        await _join(outer, actor.tenant_id)
    tenant_known = actor.tenant_id in KNOWN_TENANTS
    token = _CURRENT.set(uow)
    try:
        with tenant_scope.tenant(actor.tenant_id):
            async with ENGINE.transaction(generic_plans=True) as transaction:
                if not tenant_known:
                    await _check_tenant(actor.tenant_id, ctx, creates_tenant)
                yield uow
                if uow.events:
                    _plan_notifications_after_commit(uow)
                    _count_after_commit(uow)
                    await _append(uow, transaction if outermost else None)
    finally:
        _CURRENT.reset(token)
    if outermost and not tenant_known:
        KNOWN_TENANTS.add(actor.tenant_id)
    if uow.staged:
        try:
            await sequencing.number_events(actor.tenant_id)
        except Exception:
            # Committed and staged: the next sequencing of the tenant, or the worker's sweep,
            # numbers them.
            log.exception("numbering the audit events of tenant %r failed", actor.tenant_id)
    if parent is not None:
        parent._after_commit.extend(uow._after_commit)
        return
    for callback in [*uow._after_commit, *ctx.after_commit_hooks]:
        try:
            await callback()
        except Exception:
            # The change is committed; follow-up work is re-driven by the sweeper.
            log.exception("after-commit callback failed")


async def _append(uow: UnitOfWork, own: Any) -> None:
    """Write the unit's audit events: staged with the COMMIT, in one round trip, when this unit
    of work began the transaction (`own`), to be numbered by the sequencer once it has
    committed (no tenant-wide lock inside the transaction) — in the same message, after the
    COMMIT, when no sequencing of the tenant is in flight in this process; otherwise
    numbered now, as the last statement so far of the transaction it joined (whose commit is
    not ours to send, so the tenant's chain lock is held to that commit)."""
    tenant_id = uow.actor.tenant_id
    if isinstance(own, ScopedTransaction) and own.commits_with_statement:
        statement, uow.written = audit_repo.append_statement(tenant_id, uow.events)
        with sequencing.SEQUENCER.in_commit(tenant_id) as carried:
            then = audit_repo.sequence_after_commit_statement(tenant_id) if carried else None
            await own.commit_with(statement, then=then)
        uow.staged = not carried
    else:
        uow.written = await audit_repo.append_events(tenant_id, uow.events)


async def _check_tenant(tenant_id: str, ctx: ServiceContext, creates_tenant: bool) -> None:
    """A change of a tenant nobody created is refused, unless `tenants_on_first_use` lets the
    change create it (or the change is the tenant's creation)."""
    if creates_tenant:
        return
    if ctx.settings.tenants_on_first_use:
        await tenant_repo.ensure_tenant(tenant_id)
    elif not await tenant_repo.tenant_exists(tenant_id):
        raise DomainError(
            ErrorCode.UNKNOWN_TENANT,
            f"tenant {tenant_id!r} does not exist: an administrator creates it "
            "(`signoff tenants create`)",
        )


async def _join(outer: Any, tenant_id: str) -> None:
    """A unit of work joins an open transaction bound to its tenant. One begun without a
    scope, or across tenants, is narrowed to the tenant now, for the rest of its life (never
    a widening); one bound to another tenant is refused."""
    bound = getattr(outer, "scope", None)
    if bound is not None and bound.tenant == tenant_id:
        return
    if bound is None or bound.all_tenants:
        await tenant_repo.bind_transaction(tenant_id)
        outer.scope = tenant_scope.Scope(tenant=tenant_id)
        return
    raise RuntimeError(
        f"a unit of work for tenant {tenant_id!r} cannot join a transaction bound to {bound}"
    )


def _count_after_commit(uow: UnitOfWork) -> None:
    async def count() -> None:
        metrics.count_committed(uow.written)

    uow.after_commit(count)


def _plan_notifications_after_commit(uow: UnitOfWork) -> None:
    scheduler = uow.ctx.scheduler
    if scheduler is None:
        return
    tenant_id = uow.actor.tenant_id

    async def plan() -> None:
        await scheduler.plan_notifications(tenant_id)

    uow.after_commit(plan)


def request_fingerprint(operation: str, payload: Any) -> str:
    """A stable hash of a mutation's input, to tell a true replay from a reused key."""
    text = json.dumps({"op": operation, "input": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def replayed_result(
    uow: UnitOfWork, key: str | None, operation: str, payload: Any
) -> dict[str, Any] | None:
    """The stored result when `key` was used before for the same request; None to proceed.

    A key reused for a different operation or input is refused, not silently replayed.
    """
    if not key:
        return None
    if len(key) > 200:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "idempotency key too long", "guards.idempotencyKey"
        )
    fingerprint = request_fingerprint(operation, payload)
    previous = await idempotency_repo.claim(
        uow.actor.tenant_id, uow.actor.user_id, key, operation, fingerprint
    )
    if previous is None:
        return None
    if previous["operation"] != operation or previous["request_hash"] != fingerprint:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this idempotency key was used for a different request",
            "guards.idempotencyKey",
        )
    result: dict[str, Any] = previous["result"] or {}
    return result


async def remember_result(uow: UnitOfWork, key: str | None, result: dict[str, Any]) -> None:
    """Store the result of a keyed mutation in the same transaction as the change."""
    if key:
        await idempotency_repo.store_result(uow.actor.tenant_id, uow.actor.user_id, key, result)


async def run_once(
    uow: UnitOfWork,
    key: str | None,
    operation: str,
    request: Any,
    change: Callable[[], Awaitable[R]],
    *,
    keep: Callable[[R], dict[str, Any]],
    replay: Callable[[dict[str, Any]], Awaitable[R]],
) -> R:
    """Make `change` once per idempotency key, in `uow`'s transaction.

    Without a key it simply runs. With one, a replay of the same `operation` and `request`
    returns `replay(kept)`, `kept` being what `keep` made of the first result, and writes
    nothing (no audit event); a key reused for another request is IDEMPOTENCY_KEY_REUSED. A
    concurrent call with the same key waits for the first to commit, then replays it.
    """
    kept = await replayed_result(uow, key, operation, request)
    if kept is not None:
        return await replay(kept)
    result = await change()
    await remember_result(uow, key, keep(result))
    return result
