"""Evidence housekeeping run by the worker: unfinished uploads past their time are removed."""

from __future__ import annotations

import logging
from typing import Any

from signoff.services.evidence import sweep_uploads

log = logging.getLogger("signoff.jobs")


async def sweep_evidence_uploads(ctx: dict[str, Any]) -> int:
    """Expire unfinished evidence uploads and delete whatever they stored (cron, every minute)."""
    expired = await sweep_uploads(ctx["services"])
    if expired:
        log.info("expired %s unfinished evidence uploads", expired)
    return expired
