"""Fixtures of the retention tests: the evidence stores of the collaboration tests (a directory
and a real S3-compatible server), and helpers that bring an item to a decided state."""

from __future__ import annotations

from typing import Any

from signoff.services import retention as retention_services
from signoff.services.context import ServiceContext
from tests.collab.conftest import esvc, moto_endpoint, store  # noqa: F401
from tests.conftest import actor
from tests.realtime.conftest import approve, hub, submit, ws_url  # noqa: F401

ADMIN = ("admin", "admin")


async def decided_item(services: ServiceContext, tenant: str, title: str = "Deploy") -> Any:
    """A change approval submitted by dave and approved by bob (decided: approved)."""
    view = await submit(services, tenant, "change-approval", title)
    return await approve(services, tenant, view, "bob", "change-approver")


async def set_policy(
    services: ServiceContext, tenant: str, days: int, action: str, template: str | None = None
) -> Any:
    """Set a retention policy as an admin."""
    return await retention_services.set_policy(
        actor(tenant, *ADMIN),
        services,
        retention_services.SetPolicyInput(days=days, action=action, template_key=template),
    )
