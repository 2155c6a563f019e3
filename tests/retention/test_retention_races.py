"""Retention against concurrent holds and concurrent runs: a purge never happens to an item
that was on hold when it was decided, and an item is handled exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from signoff.db import audit as audit_repo
from signoff.db import retention as retention_repo
from signoff.services import retention as retention_services
from tests.conftest import actor
from tests.retention.conftest import decided_item, set_policy


async def test_a_hold_racing_a_purge_is_never_overtaken(services, clock, tenant, demo_templates):
    await set_policy(services, tenant, 5, "purge")
    items = [await decided_item(services, tenant, f"Change {n}") for n in range(4)]
    clock.advance(timedelta(days=6))
    legal = actor(tenant, "lena", "legal")

    async def hold(view):
        await retention_services.place_hold(
            legal, services, retention_services.HoldInput(view.id, "subpoena")
        )

    await asyncio.gather(
        retention_services.apply_retention(services, tenant),
        *(hold(v) for v in items),
    )
    for view in items:
        actions = [e["action"] for e in await audit_repo.events_for_item(tenant, view.id)]
        applied = await retention_repo.retention_of(tenant, view.id)
        assert "item.legal_hold_placed" in actions
        if applied is not None:
            # Retention won the item's lock: its event precedes the hold's.
            assert actions.index("item.retention_applied") < actions.index("item.legal_hold_placed")
        else:
            assert "item.retention_applied" not in actions
    assert await audit_repo.verify_chain(tenant) is None


async def test_concurrent_runs_handle_each_item_once(services, clock, tenant, demo_templates):
    await set_policy(services, tenant, 5, "redact")
    items = [await decided_item(services, tenant, f"Change {n}") for n in range(3)]
    clock.advance(timedelta(days=6))
    reports = await asyncio.gather(
        *(retention_services.apply_retention(services, tenant) for _ in range(3))
    )
    applied = [item for report in reports for item in report.applied]
    assert sorted(applied) == sorted(v.id for v in items)
    for view in items:
        actions = [e["action"] for e in await audit_repo.events_for_item(tenant, view.id)]
        assert actions.count("item.retention_applied") == 1
    assert await audit_repo.verify_chain(tenant) is None
