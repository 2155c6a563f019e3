"""`signoff permissions`: show and set a tenant's permission table as an operator (audited as
the actor `cli`, like every other change)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError
from signoff.domain.permissions import Permission
from signoff.services import permissions as permission_services
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `signoff permissions …`."""
    parser = sub.add_parser(
        "permissions", help="show or set a tenant's permissions (docs/reference/permissions.md)"
    )
    parser.add_argument("action", choices=["show", "set", "reset"])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--template", help="a template key: its items only (item permissions)")
    parser.add_argument("--permission", choices=[p.value for p in Permission])
    parser.add_argument(
        "--grantee",
        action="append",
        default=[],
        help="set: a role, * or @requester (repeat; none grants it to nobody)",
    )
    parser.add_argument("--reason", help="why, for the audit trail")
    parser.set_defaults(func=cmd_permissions)


async def _run(args: argparse.Namespace, settings: Settings) -> list[str]:
    configure_engine(settings.database_url)
    await start_pool(1, 2)
    try:
        operator = Actor.operator(args.tenant)
        ctx = ServiceContext(settings=settings)
        with scopes.acting_as(operator):
            if args.action in ("set", "reset"):
                await permission_services.set_permission(
                    operator,
                    ctx,
                    permission_services.SetPermissionInput(
                        permission=Permission(args.permission),
                        grantees=tuple(args.grantee) if args.action == "set" else None,
                        template_key=args.template,
                        reason=args.reason,
                    ),
                )
            table = await permission_services.permission_table(operator, ctx, args.template)
    finally:
        await close_pool()
    return [
        f"{e.permission.value}\t{', '.join(sorted(e.grantees)) or '(nobody)'}\t{e.source.value}"
        for e in table
    ]


def cmd_permissions(args: argparse.Namespace, settings: Settings) -> None:
    """Print the table (after setting or resetting one permission)."""
    if not settings.database_url:
        sys.exit("set SIGNOFF_DATABASE_URL")
    if args.action != "show" and not args.permission:
        sys.exit(f"permissions {args.action} needs --permission")
    try:
        lines = asyncio.run(_run(args, settings))
    except DomainError as exc:
        sys.exit(f"{exc.code}: {exc.message}")
    print("\n".join(lines))
