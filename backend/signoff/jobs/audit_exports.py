"""Audit export jobs on arq: running one export, and the sweeper that re-runs lost ones."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from signoff.services import audit_exports as export_services
from signoff.services.context import ServiceContext

log = logging.getLogger("signoff.jobs")


async def run_audit_export_job(ctx: dict[str, Any], tenant_id: str, export_id: str) -> str:
    """arq entry point: run one export unless a live worker runs it or it is done."""
    services: ServiceContext = ctx["services"]
    outcome = await export_services.run_export(services, tenant_id, UUID(export_id))
    if outcome == "retry" and services.scheduler is not None:
        export = await export_services.get_export_for_worker(tenant_id, UUID(export_id))
        await services.scheduler.run_audit_export(tenant_id, export_id, int(export["attempts"]) + 1)
    return outcome


async def sweep_audit_exports(ctx: dict[str, Any]) -> int:
    """arq cron entry point: hand exports that lost their job or their worker out again."""
    handed = await export_services.sweep_exports(ctx["services"])
    if handed:
        log.info("handed %s audit exports out again", handed)
    return handed
