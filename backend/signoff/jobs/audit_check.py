"""Periodic verification of every tenant's audit chain (tamper evidence), and the sweep that
numbers audit events left staged by a crash."""

from __future__ import annotations

import logging
from typing import Any

from signoff.db import audit as audit_repo
from signoff.services import scopes, sequencing

log = logging.getLogger("signoff.jobs.audit")

CHECK_WINDOW = 10_000


async def verify_audit_chains(ctx: dict[str, Any]) -> dict[str, int | None]:
    """Check the newest events of each tenant's chain; log and return the first broken seq."""
    report: dict[str, int | None] = {}
    with scopes.across_tenants("the audit check visits every tenant's chain"):
        heads = await audit_repo.tenants_with_events()
    for tenant_id, head in heads:
        with scopes.for_tenant(tenant_id):
            broken = await audit_repo.verify_chain(tenant_id, max(1, head - CHECK_WINDOW + 1))
        report[tenant_id] = broken.seq if broken is not None else None
        if broken is not None:
            log.error("audit chain of tenant %s is broken at %s", tenant_id, broken)
    return report


async def sequence_audit_events(ctx: dict[str, Any]) -> dict[str, int]:
    """Number the audit events a crash left staged (committed, never sequenced), every tenant;
    per tenant, 1 when it was sequenced."""
    return await sequencing.sweep_pending()
