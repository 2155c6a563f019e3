"""The permission table of a tenant: read it, check against it, change it (audited).

`require` is what every service calls before a sensitive action; the rule itself is
`domain.permissions.allows`. The progression receives the table in its context and checks
item permissions (decide, override, execute, manage_items) with the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from signoff.db import permissions as repo
from signoff.domain.actors import Actor
from signoff.domain.permissions import (
    SPECS,
    Grant,
    Grants,
    Permission,
    Source,
    allows,
    check_grantees,
    check_template_scope,
    default_grantees,
)
from signoff.domain.permissions import require as require_permission
from signoff.services.context import ServiceContext
from signoff.services.uow import remember_result, replayed_result, unit_of_work
from signoff.settings import Settings


def defaults_of(settings: Settings) -> Mapping[Permission, frozenset[str]]:
    """The deployment's default grantees, from its role settings (made once per set of
    roles: every change reads them)."""
    return _defaults(
        settings.admin_roles,
        settings.override_roles,
        settings.legal_hold_roles,
        settings.auditor_roles,
    )


@lru_cache(maxsize=16)
def _defaults(
    admin: tuple[str, ...],
    override: tuple[str, ...],
    legal_hold: tuple[str, ...],
    auditor: tuple[str, ...],
) -> Mapping[Permission, frozenset[str]]:
    return MappingProxyType(
        default_grantees(
            {
                "admin_roles": admin,
                "override_roles": override,
                "legal_hold_roles": legal_hold,
                "auditor_roles": auditor,
            }
        )
    )


async def grants_of(tenant_id: str, ctx: ServiceContext) -> Grants:
    """The tenant's permission table (its stored grants over the defaults)."""
    return grants_from(ctx, await repo.grants_of(tenant_id))


def grants_from(ctx: ServiceContext, stored: tuple[Grant, ...]) -> Grants:
    """The permission table made of a tenant's stored grants (read elsewhere) over the
    defaults."""
    return Grants(defaults_of(ctx.settings), stored)


async def _grants_for(actor: Actor, ctx: ServiceContext) -> Grants:
    # The operator's permissions do not depend on the table: no read.
    return Grants() if actor.principal.operator else await grants_of(actor.tenant_id, ctx)


async def may(
    actor: Actor,
    ctx: ServiceContext,
    permission: Permission,
    *,
    template_key: str | None = None,
    requester: str | None = None,
) -> bool:
    """Whether `actor` holds `permission` in its tenant (for an item of `template_key`)."""
    grants = await _grants_for(actor, ctx)
    return allows(
        grants, actor.principal, permission, template_key=template_key, requester=requester
    )


async def require(
    actor: Actor,
    ctx: ServiceContext,
    permission: Permission,
    what: str,
    *,
    template_key: str | None = None,
    requester: str | None = None,
) -> None:
    """FORBIDDEN unless `actor` holds `permission` (the message says who does)."""
    grants = await _grants_for(actor, ctx)
    require_permission(
        grants, actor.principal, permission, what, template_key=template_key, requester=requester
    )


@dataclass(frozen=True)
class PermissionEntry:
    """One permission's grantees as they apply (for `template_key`'s items, when given)."""

    permission: Permission
    grantees: frozenset[str]
    source: Source
    template_key: str | None
    per_template: bool


@dataclass(frozen=True)
class SetPermissionInput:
    """Grant `permission` to `grantees` (tenant-wide, or for `template_key`'s items); None
    removes the stored grant, so the next rule applies again."""

    permission: Permission
    grantees: tuple[str, ...] | None
    template_key: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None


def _entries(grants: Grants, template_key: str | None) -> list[PermissionEntry]:
    entries = []
    for spec in SPECS:
        key = template_key if spec.per_template else None
        grantees, source = grants.lookup(spec.permission, key)
        entries.append(PermissionEntry(spec.permission, grantees, source, key, spec.per_template))
    return entries


async def permission_table(
    actor: Actor, ctx: ServiceContext, template_key: str | None = None
) -> list[PermissionEntry]:
    """Every permission and who holds it in the actor's tenant (for `template_key`'s items when
    given), with where that comes from (administer_permissions)."""
    await require(actor, ctx, Permission.ADMINISTER_PERMISSIONS, "reading the permission table")
    key = (template_key or "").strip() or None
    return _entries(await grants_of(actor.tenant_id, ctx), key)


def _data(grant: Grant | None) -> list[str] | None:
    return None if grant is None else sorted(grant.grantees)


async def set_permission(
    actor: Actor, ctx: ServiceContext, inp: SetPermissionInput
) -> PermissionEntry:
    """Set or reset one grant (administer_permissions; audited as `permission.set` with the
    grantees before and after); the permission as it applies afterwards."""
    await require(actor, ctx, Permission.ADMINISTER_PERMISSIONS, "changing permissions")
    key = check_template_scope(inp.permission, inp.template_key)
    grantees = None if inp.grantees is None else check_grantees(inp.grantees, inp.permission)
    fingerprint = {
        "permission": inp.permission.value,
        "grantees": None if grantees is None else sorted(grantees),
        "template_key": key,
        "reason": inp.reason,
    }
    async with unit_of_work(actor, ctx) as uow:
        if await replayed_result(uow, inp.idempotency_key, "setPermission", fingerprint) is None:
            now = ctx.clock.now()
            if grantees is None:
                before = await repo.delete_grant(actor.tenant_id, key, inp.permission)
            else:
                grant = Grant(inp.permission, grantees, key)
                before = await repo.put_grant(actor.tenant_id, grant, actor.user_id, now)
            uow.record(
                "permission.set",
                reason=inp.reason,
                data={
                    "permission": inp.permission.value,
                    "template_key": key or None,
                    "before": _data(before),
                    "after": None if grantees is None else sorted(grantees),
                },
            )
            await remember_result(uow, inp.idempotency_key, {"done": True})
        grants = await grants_of(actor.tenant_id, ctx)
    entry = next(e for e in _entries(grants, key or None) if e.permission is inp.permission)
    return entry
