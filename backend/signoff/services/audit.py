"""Reading and proving the audit trail: an item's history, and verifying a tenant's chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from signoff.db import audit as audit_repo
from signoff.db import scope as tenant_scope
from signoff.db.paging import Window
from signoff.domain.actors import Actor
from signoff.domain.audit import ChainBreak
from signoff.domain.errors import invalid
from signoff.domain.permissions import Permission
from signoff.services import permissions, scopes
from signoff.services.context import ServiceContext


@dataclass(frozen=True)
class ChainReport:
    """What verifying one tenant's chain found: the range checked and its first break."""

    tenant_id: str
    from_seq: int
    head_seq: int
    head_hash: str
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        """Whether every event checked verifies."""
        return self.broken is None


async def require_auditor(actor: Actor, ctx: ServiceContext, what: str) -> None:
    """Refuse (`FORBIDDEN`) unless `actor` holds `export_audit`."""
    await permissions.require(actor, ctx, Permission.EXPORT_AUDIT, what)


async def verify_tenant_chain(tenant_id: str, from_seq: int = 1) -> ChainReport:
    """Verify `tenant_id`'s chain from `from_seq` to the head read when the check starts.

    Events committed while it runs are left for the next check. For operators (the command
    line); callers of the API go through `verify_chain`.
    """
    if from_seq < 1:
        raise invalid("the first seq to check is 1 or more", "fromSeq")
    with scopes.for_tenant(tenant_id):
        head_seq, head_hash = await audit_repo.chain_head(tenant_id)
        broken = await audit_repo.verify_chain(tenant_id, from_seq, to_seq=head_seq)
    return ChainReport(tenant_id, from_seq, head_seq, head_hash, broken)


async def verify_chain(actor: Actor, ctx: ServiceContext, from_seq: int = 1) -> ChainReport:
    """Verify the actor's tenant's chain (export_audit)."""
    await require_auditor(actor, ctx, "verifying the audit chain")
    return await verify_tenant_chain(actor.tenant_id, from_seq)


async def tenants_to_verify() -> list[str]:
    """Every tenant with an audit trail, by id."""
    with scopes.across_tenants("an operator verifies every tenant's chain"):
        heads = await audit_repo.tenants_with_events()
    return [tenant for tenant, head in heads if head > 0]


async def item_events(
    actor: Actor, ctx: ServiceContext, item_id: UUID, window: Window
) -> list[dict[str, Any]]:
    """A page of the audit events of an item the caller has already been allowed to read,
    oldest first.

    Where each change came from (client address, user agent) is kept only for holders of
    `read_audit_details`; other readers get those fields empty.
    """
    with tenant_scope.tenant(actor.tenant_id):
        rows = await audit_repo.item_events_page(actor.tenant_id, item_id, window)
        details = await permissions.may(actor, ctx, Permission.READ_AUDIT_DETAILS)
    if not details:
        rows = [{**row, "client_addr": None, "user_agent": None} for row in rows]
    return rows
