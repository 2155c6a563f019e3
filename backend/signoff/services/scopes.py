"""The tenant a piece of work may see: every request, job and command declares it.

Row-level security shows a transaction only the rows of the tenant it declared at BEGIN
(`signoff.db.scope`). Work done for an actor is bound to the actor's tenant; the few jobs that
span tenants say so explicitly with `across_tenants`, each with the reason it needs to (the
list is in docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from signoff.db import roles, scope
from signoff.domain.actors import Actor
from signoff.settings import Settings

log = logging.getLogger("signoff.services")


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Bind the database work inside to `actor`'s tenant."""
    with scope.tenant(actor.tenant_id):
        yield


@contextmanager
def no_tenant() -> Iterator[None]:
    """Bind the database work inside to no tenant: it sees no tenant's rows (an
    unauthenticated request)."""
    with scope.unbound():
        yield


@contextmanager
def for_tenant(tenant_id: str) -> Iterator[None]:
    """Bind the database work inside to `tenant_id` (jobs that carry a tenant)."""
    with scope.tenant(tenant_id):
        yield


@contextmanager
def across_tenants(reason: str) -> Iterator[None]:
    """Let the database work inside see every tenant: only for the jobs that span tenants
    (finding due timers, the audit check, ...), never for work done on behalf of a user.
    `reason` names the job, for the log."""
    log.debug("across tenants: %s", reason)
    with scope.all_tenants():
        yield


async def check_database_role(settings: Settings) -> None:
    """Refuse to run in production (warn in development) when the database role the process
    connects as is not bound by row-level security: a superuser, a role with BYPASSRLS, the
    tables' owner, or not a member of `signoff_app`."""
    reasons = await roles.row_security_bypasses()
    if not reasons:
        return
    message = (
        "row-level security does not bind SIGNOFF_DATABASE_URL's role ("
        + "; ".join(reasons)
        + "): connect as a member of signoff_app that is neither superuser nor owner"
    )
    if settings.is_development:
        log.warning("%s", message)
        return
    raise RuntimeError(message)
