"""arq worker settings: the functions a worker runs and its start-up and shut-down."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.jobs.audit_check import verify_audit_chains
from signoff.settings import Settings, get_settings

FUNCTIONS: list[Any] = [verify_audit_chains]


def build_worker(settings: Settings | None = None, **overrides: Any) -> Worker:
    """An arq worker for `settings`; tests pass `burst=True`, `handle_signals=False`."""
    settings = settings or get_settings()
    configure_engine(settings.database_url)

    async def startup(ctx: dict[str, Any]) -> None:
        await start_pool(1, max(2, settings.db_pool_max // 2))
        ctx["settings"] = settings

    async def shutdown(ctx: dict[str, Any]) -> None:
        await close_pool()

    options: dict[str, Any] = {
        "functions": FUNCTIONS,
        "cron_jobs": [cron(verify_audit_chains, minute={7}, run_at_startup=False)],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.job_queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "allow_abort_jobs": True,
        "keep_result": 0,
    }
    options.update(overrides)
    return Worker(**options)
