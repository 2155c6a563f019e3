"""Periodic verification of every tenant's audit chain (tamper evidence)."""

from __future__ import annotations

import logging
from typing import Any

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.domain.audit import first_broken_link

log = logging.getLogger("signoff.jobs.audit")

CHECK_WINDOW = 10_000


async def verify_audit_chains(ctx: dict[str, Any]) -> dict[str, int | None]:
    """Check the newest events of each tenant's chain; log and return the first broken seq."""
    report: dict[str, int | None] = {}
    for row in await sql.fetch("SELECT id, audit_seq FROM tenant ORDER BY id"):
        start = max(0, int(row["audit_seq"]) - CHECK_WINDOW)
        events = await audit_repo.events_after(row["id"], start, CHECK_WINDOW)
        broken = first_broken_link(events)
        report[row["id"]] = broken
        if broken is not None:
            log.error("audit chain of tenant %s is broken at seq %s", row["id"], broken)
    return report
