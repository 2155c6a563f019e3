"""The alert evaluator: every enabled alert rule, once a minute."""

from __future__ import annotations

from typing import Any

from signoff.services import alerts as alert_services
from signoff.services.context import ServiceContext


async def evaluate_alert_rules_job(ctx: dict[str, Any]) -> dict[str, int]:
    """arq cron entry point: evaluate every enabled rule (of `timer_tenants` when that setting
    names any); a firing reaches its recipients through the notification pipeline."""
    services: ServiceContext = ctx["services"]
    done = await alert_services.evaluate_rules(services, services.settings.timer_tenants or None)
    return {
        "evaluated": done.evaluated,
        "fired": len(done.fired),
        "cleared": len(done.cleared),
        "skipped": done.skipped,
    }
