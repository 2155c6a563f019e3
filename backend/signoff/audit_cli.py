"""`signoff audit`: verify the audit chain (and, later, exported files) from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys

from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.services import audit as audit_services
from signoff.services.audit import ChainReport
from signoff.settings import Settings

EXIT_BROKEN = 1
EXIT_USAGE = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `signoff audit …`."""
    audit = sub.add_parser("audit", help="verify the audit chain")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="check every link, number and content digest; exit 1 naming the first break",
    )
    verify.add_argument("--tenant", help="only this tenant (default: every tenant)")
    verify.add_argument(
        "--from",
        dest="from_seq",
        type=int,
        default=1,
        help="first seq to check; the event before it anchors the check (default 1)",
    )
    verify.set_defaults(func=cmd_verify)


def describe(report: ChainReport) -> str:
    """One line about one tenant's chain."""
    checked = f"seq {report.from_seq}..{report.head_seq}"
    if report.broken is not None:
        return f"tenant {report.tenant_id}: BROKEN at {report.broken} (checked {checked})"
    if report.head_seq < report.from_seq:
        return f"tenant {report.tenant_id}: nothing to check from seq {report.from_seq}"
    return f"tenant {report.tenant_id}: ok, {checked} verified, head {report.head_hash}"


async def verify(settings: Settings, tenant: str | None, from_seq: int) -> list[ChainReport]:
    """Verify one tenant's chain, or every tenant's."""
    configure_engine(settings.database_url)
    await start_pool(1, 2)
    try:
        tenants = [tenant] if tenant else await audit_services.tenants_to_verify()
        return [await audit_services.verify_tenant_chain(t, from_seq) for t in tenants]
    finally:
        await close_pool()


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    """`signoff audit verify`: exit 0 when every chain checked verifies, 1 on a break."""
    if args.from_seq < 1:
        print("--from must be 1 or more", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if not settings.database_url:
        print("set SIGNOFF_DATABASE_URL", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    reports = asyncio.run(verify(settings, args.tenant, args.from_seq))
    for report in reports:
        print(describe(report))
    if not reports:
        print("no audit events to verify")
    if any(not r.ok for r in reports):
        sys.exit(EXIT_BROKEN)
