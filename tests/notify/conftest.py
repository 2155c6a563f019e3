"""Fixtures of the notification pipeline tests: isolated queue, worker runs, profiles, items."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signoff.db import notifications as notification_repo
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.clock import ManualClock
from signoff.jobs.notifications import REGISTRY_KEY
from signoff.notify import NotifierRegistry
from signoff.services import notification_admin
from signoff.services.context import ServiceContext
from signoff.services.items import SubmitItemInput, submit_item
from signoff.settings import Settings
from signoff.testing import FakeChannel, run_burst_after_one
from signoff.worker import build_worker


@pytest.fixture
def notify_settings(settings: Settings, tenant: str) -> Settings:
    """Session settings with small retry/digest numbers, a job queue of this test's own and
    the worker's sweeps limited to the test's tenant.

    The queue of its own keeps jobs other tests left deferred (timers) out of these burst
    workers, which would otherwise wait for them; the tenant keeps the sweeper from planning,
    folding and delivering other tests' notifications (and a worker's timer recovery, which
    finds no hand-over in a new queue, from handing over other tests' timers).
    """
    return dataclasses.replace(
        settings,
        redis_prefix=f"{settings.redis_prefix}-n{uuid.uuid4().hex[:8]}",
        timer_tenants=(tenant,),
        notify_max_attempts=3,
        notify_backoff_base_seconds=10.0,
        notify_backoff_cap_seconds=60.0,
        notify_digest_threshold=3,
        notify_digest_window_seconds=300,
        public_url="https://signoff.example",
    )


@pytest.fixture
def nsvc(notify_settings: Settings, clock: ManualClock) -> ServiceContext:
    """Services bound to the notification settings and the test clock (no timer scheduler)."""
    return ServiceContext(settings=notify_settings, clock=clock)


@pytest.fixture(autouse=True)
async def quiet_leftovers(tenant: str, database_url: str) -> AsyncIterator[None]:
    """After a test, close its open deliveries so later sweepers never pick them up."""
    yield
    await sql.execute(
        """UPDATE notification_delivery SET status = 'suppressed', next_attempt_at = NULL
        WHERE tenant_id = $1 AND status IN ('queued', 'retrying', 'digested')""",
        tenant,
    )


def person(tenant: str, user: str, *roles: str) -> Actor:
    return Actor(Principal(user, tenant, roles=frozenset(roles)))


async def add_profile(
    tenant: str,
    services: ServiceContext,
    user: str,
    addresses: dict[str, str],
    *,
    roles: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    preferences: dict[str, Any] | None = None,
) -> None:
    await notification_admin.upsert_user_profile(
        person(tenant, "admin", "admin"),
        services,
        notification_admin.ProfileInput(
            user_id=user,
            display_name=user.title(),
            roles=roles,
            groups=groups,
            addresses=addresses,
        ),
    )
    if preferences is not None:
        await notification_admin.update_notification_preferences(
            person(tenant, user), services, preferences
        )


def fake_registry(name: str = "fake") -> tuple[NotifierRegistry, FakeChannel]:
    """A registry whose one enabled channel is a `FakeChannel` (it records what it sends)."""
    registry = NotifierRegistry(deliver_timeout=1)
    channel = FakeChannel(name)
    registry.register(channel, name)
    registry.configure({name: {}})
    return registry, channel


async def add_webhook_approvers(
    tenant: str, services: ServiceContext, url: str, count: int
) -> None:
    """`count` change approvers, `user0`…, each with a webhook address under `url`."""
    for n in range(count):
        await add_profile(
            tenant, services, f"user{n}", {"webhook": f"{url}/u{n}"}, roles=("change-approver",)
        )


async def submit_change(tenant: str, services: ServiceContext, title: str = "Deploy api v42"):
    return await submit_item(
        person(tenant, "requester"),
        services,
        SubmitItemInput(
            template_key="change-approval",
            title=title,
            payload={"title": title, "system": "api", "rollback_plan": "redeploy v41"},
        ),
    )


async def run_worker(
    settings: Settings, clock: ManualClock, registry: NotifierRegistry, **overrides: Any
) -> None:
    """Run a real arq worker in burst mode until its queue is empty (`overrides`: more of
    arq's worker options, e.g. `max_jobs`).

    It starts with one notification sweep queued (no cron: arq's crons follow the wall
    clock, and one that came due during the burst would sweep again): the sweep asks for a
    planning job of the tenants that are behind, folds digests and asks for a delivery job,
    which the same burst then runs.
    """
    worker = build_worker(
        settings,
        clock=clock,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        ctx={REGISTRY_KEY: registry},
        cron_jobs=[],
        **overrides,
    )
    await run_burst_after_one(worker, settings, "notification_sweeper", "sweep")


async def deliveries(tenant: str) -> list[dict[str, Any]]:
    """Every delivery of the tenant, oldest first."""
    return await notification_repo.deliveries_of_tenant(tenant)
