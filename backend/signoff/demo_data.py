"""Demo data for `signoff dev`: the demo templates, a few items, and tokens to try them with."""

from __future__ import annotations

from pathlib import Path

from signoff.api.auth import mint_token
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.services.items import SubmitItemInput, submit_item
from signoff.services.templates import load_templates
from signoff.services.tenants import create_tenant
from signoff.settings import Settings

TENANT = "demo"
USERS: dict[str, tuple[list[str], list[str]]] = {
    # user: (roles, groups)
    "alice": (["requester"], ["engineering"]),
    "bob": (["change-approver"], ["change-managers"]),
    "carol": (["change-approver", "legal", "incident-reviewer"], ["legal"]),
    "dave": (["executive"], ["executives"]),
    "admin": (["admin"], []),
}


def principal(user: str) -> Principal:
    """The demo principal of `user`."""
    roles, groups = USERS[user]
    return Principal(user, TENANT, roles=frozenset(roles), groups=frozenset(groups))


async def seed_demo(settings: Settings, templates_dir: Path) -> dict[str, str]:
    """Load the demo templates and submit demo items once; return a token per demo user."""
    ctx = ServiceContext(settings=settings)
    await create_tenant(ctx, TENANT, "Demo", by="signoff dev")
    await load_templates(Actor(principal("admin")), ctx, templates_dir)
    with scopes.for_tenant(TENANT):
        existing = await sql.fetchrow(
            "SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", TENANT
        )
    if existing is not None and existing["n"] == 0:
        alice = Actor(principal("alice"))
        await submit_item(
            alice,
            ctx,
            SubmitItemInput(
                template_key="change-approval",
                title="Roll out payments service v2.3 to production",
                payload={
                    "title": "Payments v2.3",
                    "system": "payments",
                    "rollback_plan": "Redeploy v2.2 from the release pipeline.",
                },
                idempotency_key="demo-change-1",
            ),
        )
    return {
        user: mint_token(
            settings,
            user_id=user,
            tenant_id=TENANT,
            roles=roles,
            groups=groups,
            ttl_seconds=12 * 3600,
        )
        for user, (roles, groups) in USERS.items()
    }
