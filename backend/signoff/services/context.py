"""What every use case needs besides its input: settings, a clock, and the job queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from signoff.domain.clock import Clock, SystemClock
from signoff.settings import Settings
from signoff.storage import ObjectStorage


class JobScheduler(Protocol):
    """Schedules follow-up work after a commit (timers, deliveries)."""

    async def schedule_timers(self, due_times: Sequence[datetime], *, whole: bool = False) -> None:
        """Make sure stored timers due at these times will fire (a job fires whatever is due
        when it runs, so only the times matter); `whole`: these are every armed timer's."""
        ...

    async def plan_notifications(self, tenant_id: str) -> None:
        """Have the tenant's audit events committed so far turned into notifications."""
        ...

    async def run_audit_export(self, tenant_id: str, export_id: str, attempt: int) -> None:
        """Have a worker run an audit export (`attempt` tells re-deliveries apart)."""
        ...


@dataclass(frozen=True)
class ServiceContext:
    """Dependencies of the services, built once by a composition root."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    scheduler: JobScheduler | None = None
    after_commit_hooks: tuple[Callable[[], Awaitable[None]], ...] = ()
    storage: ObjectStorage | None = None
