"""Retention run by the worker: the tenants' policies applied to the items that are due."""

from __future__ import annotations

import logging
from typing import Any

from signoff.services.retention import apply_retention

log = logging.getLogger("signoff.jobs")


async def apply_retention_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Redact or purge the content of every item its tenant's policy makes due (cron, hourly);
    items on legal hold are left alone. Audit export files kept long enough are removed."""
    report = await apply_retention(ctx["services"])
    if (
        report.applied
        or report.object_failures
        or report.snapshot_failures
        or report.exports_expired
        or report.export_file_failures
    ):
        log.info(
            "retention: %s items, %s evidence objects deleted, %s deletions to retry, %s held, "
            "%s review snapshots redacted, %s to retry, %s audit exports expired, "
            "%s export files deleted, %s to retry",
            len(report.applied),
            report.objects_deleted,
            report.object_failures,
            report.held,
            report.snapshots_redacted,
            report.snapshot_failures,
            report.exports_expired,
            report.export_files_deleted,
            report.export_file_failures,
        )
    return {
        "applied": len(report.applied),
        "held": report.held,
        "objects_deleted": report.objects_deleted,
        "object_failures": report.object_failures,
        "snapshots_redacted": report.snapshots_redacted,
        "snapshot_failures": report.snapshot_failures,
        "exports_expired": report.exports_expired,
        "export_files_deleted": report.export_files_deleted,
        "export_file_failures": report.export_file_failures,
    }
