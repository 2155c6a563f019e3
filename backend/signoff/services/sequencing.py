"""The audit sequencer's callers: a change's events are numbered after its commit.

A unit of work stages its events with its COMMIT (`db.audit.append_statement`); numbering
them (`db.audit.sequence_pending`) takes the tenant's chain lock for one statement and a
commit. A process coalesces its own requests per tenant: while one sequencing of a tenant
runs, every commit that finishes meanwhile waits for a single next one, which starts when the
running one ends and numbers everything committed before it began. So a busy tenant costs a
process at most one sequencing in flight and one waiting, whatever its request rate, and a
caller returns only once its own events are numbered (a client that reads the trail after its
mutation finds them).

A commit that finds no sequencing of its tenant in flight or queued in its process carries
the sequencing itself, in the same message as its COMMIT (`Sequencer.in_commit`,
`db.audit.sequence_after_commit_statement`): no round trip, pooled connection or task of its
own, and the numbering is done when the COMMIT's answer arrives. While that message is in
flight it counts as the tenant's running sequencing: commits that finish meanwhile wait for
the run after it, as above.

Events a crash left staged (committed, never sequenced) are numbered by the next commit of
their tenant in any process, or by the worker's `sequence_audit_events` sweep, whichever
comes first.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from signoff.db import audit as audit_repo
from signoff.db.engine import ENGINE
from signoff.services import scopes

log = logging.getLogger("signoff.services.sequencing")


@dataclass
class _Tenant:
    """One tenant's sequencing in this process: the run in flight, and the next one its
    late callers wait for (not started yet, so it will see their commits)."""

    running: asyncio.Task[None] | None = None
    next_run: asyncio.Future[None] | None = None
    in_commit: bool = False  # a commit message in flight carries the sequencing


class Sequencer:
    """Per event loop and tenant, at most one sequencing in flight and one queued."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Tenant]] = (
            weakref.WeakKeyDictionary()
        )

    async def number(self, tenant_id: str) -> None:
        """Return once every event of `tenant_id` committed before this call is numbered.

        Raises what the sequencing raised (the events then stay staged for the next one)."""
        loop = asyncio.get_running_loop()
        tenants = self._loops.setdefault(loop, {})
        state = tenants.setdefault(tenant_id, _Tenant())
        if state.next_run is None:
            state.next_run = loop.create_future()
        wanted = state.next_run
        if state.running is None and not state.in_commit:
            self._start(loop, tenants, tenant_id, state)
        # Shielded: a caller that gives up does not cancel the run the others wait for.
        await asyncio.shield(wanted)

    @contextmanager
    def in_commit(self, tenant_id: str) -> Iterator[bool]:
        """Whether the caller's COMMIT message may carry the tenant's sequencing: True when
        none is in flight or queued in this process. Until the block ends, that message is
        the tenant's running sequencing; callers of `number` meanwhile wait for the run
        after it, which starts when the block ends (however it ends)."""
        loop = asyncio.get_running_loop()
        tenants = self._loops.setdefault(loop, {})
        if tenant_id in tenants:
            yield False
            return
        state = tenants[tenant_id] = _Tenant(in_commit=True)
        try:
            yield True
        finally:
            state.in_commit = False
            if state.next_run is not None:
                self._start(loop, tenants, tenant_id, state)
            elif tenants.get(tenant_id) is state:
                del tenants[tenant_id]

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        tenants: dict[str, _Tenant],
        tenant_id: str,
        state: _Tenant,
    ) -> None:
        # Outside the transaction a caller of `in_commit` is still inside (the run would
        # otherwise be sent there); it binds its own tenant scope.
        context = contextvars.copy_context()
        context.run(ENGINE.current_transaction.set, None)
        state.running = loop.create_task(self._drive(tenants, tenant_id, state), context=context)

    async def _drive(self, tenants: dict[str, _Tenant], tenant_id: str, state: _Tenant) -> None:
        try:
            while state.next_run is not None:
                run, state.next_run = state.next_run, None
                try:
                    with scopes.for_tenant(tenant_id):
                        await audit_repo.sequence_pending(tenant_id)
                except BaseException as error:  # handed to the waiters, who log or raise it
                    if not run.done():
                        run.set_exception(error)
                        run.exception()  # retrieved here: nobody may be left waiting
                    if isinstance(error, asyncio.CancelledError):
                        raise
                else:
                    if not run.done():
                        run.set_result(None)
        finally:
            state.running = None
            if state.next_run is not None:  # cancelled with callers queued: fail them
                if not state.next_run.done():
                    state.next_run.set_exception(RuntimeError("the sequencer was stopped"))
                    state.next_run.exception()
                state.next_run = None
            if tenants.get(tenant_id) is state:
                del tenants[tenant_id]


SEQUENCER = Sequencer()


async def number_events(tenant_id: str) -> None:
    """Number the tenant's events committed so far (this process's coalesced sequencing)."""
    await SEQUENCER.number(tenant_id)


async def sweep_pending() -> dict[str, int]:
    """Number every tenant's events left staged (a crash between a commit and its
    sequencing); per tenant, 1 when it was sequenced. One tenant's failure does not stop the
    others'."""
    with scopes.across_tenants("the sequencer sweep finds every tenant's staged events"):
        tenants = await audit_repo.tenants_with_pending()
    done: dict[str, int] = {}
    for tenant_id in tenants:
        try:
            await number_events(tenant_id)
        except Exception:
            log.exception("numbering the staged audit events of tenant %r failed", tenant_id)
            done[tenant_id] = 0
        else:
            done[tenant_id] = 1
    return done
