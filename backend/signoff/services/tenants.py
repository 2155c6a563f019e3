"""Tenants: an administrator creates them; nothing else does (unless `tenants_on_first_use`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from signoff.db import tenants as tenant_repo
from signoff.domain.actors import Actor, is_tenant_id
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.services.uow import unit_of_work


@dataclass(frozen=True)
class TenantRecord:
    """A tenant as an operator sees it."""

    id: str
    name: str
    created_at: datetime | None = None


async def create_tenant(
    ctx: ServiceContext, tenant_id: str, name: str | None = None, *, by: str = "cli"
) -> tuple[TenantRecord, bool]:
    """Create a tenant (an operator's command); idempotent: a tenant that exists is returned
    unchanged with `False`. Its creation is the first event of its audit trail."""
    if not is_tenant_id(tenant_id):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "a tenant id is 1-63 of a-z, 0-9, _ and -, starting with a letter or digit",
            "id",
        )
    display = (name or tenant_id).strip()
    if not display or len(display) > 200 or "\x00" in display:
        raise DomainError(ErrorCode.INVALID_INPUT, "a tenant name is 1-200 characters", "name")
    actor = Actor.system(tenant_id, request_id=f"tenants:{by}")
    async with unit_of_work(actor, ctx, creates_tenant=True) as uow:
        created = await tenant_repo.create_tenant(tenant_id, display)
        if created:
            uow.record("tenant.created", reason=f"created by {by}", data={"name": display})
    return TenantRecord(tenant_id, display), created


async def list_tenants(ctx: ServiceContext) -> list[TenantRecord]:
    """Every tenant (an operator's command: it spans tenants)."""
    with scopes.across_tenants("an operator lists the tenants"):
        rows = await tenant_repo.list_tenants()
    return [TenantRecord(r["id"], r["name"], r["created_at"]) for r in rows]
