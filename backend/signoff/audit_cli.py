"""`signoff audit`: verify the audit chain or an exported file, and export the trail."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from uuid import UUID

from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.domain.audit_export import EventKind, ExportFilter, ExportFormat
from signoff.services import audit as audit_services
from signoff.services import audit_exports as export_services
from signoff.services import scopes
from signoff.services.audit import ChainReport
from signoff.services.context import ServiceContext
from signoff.settings import Settings

EXIT_BROKEN = 1
EXIT_USAGE = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `signoff audit …`."""
    audit = sub.add_parser("audit", help="verify the audit chain or an export; export the trail")
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
    verify.add_argument(
        "--file",
        type=Path,
        help="check an exported file and its manifest instead, without the database",
    )
    verify.add_argument(
        "--manifest", type=Path, help="the file's manifest (default: FILE.manifest.json)"
    )
    verify.set_defaults(func=cmd_verify)
    export = actions.add_parser(
        "export", help="export a tenant's audit trail to a file, with its manifest beside it"
    )
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", type=Path, required=True, help="the file to write")
    export.add_argument(
        "--format", choices=[f.value for f in ExportFormat], default=ExportFormat.NDJSON.value
    )
    export.add_argument("--since", type=_time, help="events at or after (ISO 8601)")
    export.add_argument("--until", type=_time, help="events before (ISO 8601)")
    export.add_argument("--template", help="events of items of this template key")
    export.add_argument("--item", type=UUID, help="events of this item (uuid)")
    export.add_argument("--actor", help="events made by this actor")
    export.add_argument(
        "--kind",
        action="append",
        choices=[k.value for k in EventKind],
        help="only events of this kind (repeatable)",
    )
    export.add_argument(
        "--role",
        action="append",
        default=[],
        help="write it as a reader with this role sees it under the redaction rules and "
        "the permission table (repeatable; without one, every payload field a rule names is "
        "redacted, and so are client addresses and user agents unless a role holds "
        "read_audit_details)",
    )
    export.set_defaults(func=cmd_export)


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone offset")
    return moment


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


def verify_file(path: Path, manifest_file: Path | None) -> None:
    """`signoff audit verify --file`: exit 0 when the file verifies, 1 naming its problem."""
    try:
        manifest = json.loads((manifest_file or export_services.manifest_path(path)).read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read the manifest: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    problem = export_services.verify_file(path, manifest)
    if problem is not None:
        print(f"{path}: BROKEN at {problem}")
        sys.exit(EXIT_BROKEN)
    chain = manifest["chain"]
    print(
        f"{path}: ok, {manifest['rows']} rows of tenant {manifest['tenant_id']}, "
        f"seq {chain['first_seq']}..{chain['last_seq']}, last hash {chain['last_hash']}"
    )


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    """`signoff audit verify`: exit 0 when every chain checked verifies, 1 on a break."""
    if args.file is not None:
        verify_file(args.file, args.manifest)
        return
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


async def export(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    """Export one tenant's trail into `args.out`."""
    configure_engine(settings.database_url)
    await start_pool(1, 2)
    try:
        f = ExportFilter(
            since=args.since,
            until=args.until,
            template_key=args.template,
            item_id=args.item,
            actor_id=args.actor,
            kinds=tuple(EventKind(k) for k in args.kind or ()),
        )
        reader = export_services.export_reader(args.tenant, args.role or ())
        with scopes.for_tenant(args.tenant):
            details = await export_services.sees_client_details(
                ServiceContext(settings=settings), reader
            )
            return await export_services.export_to_file(
                args.tenant,
                f,
                ExportFormat(args.format),
                args.out,
                reader_roles=args.role,
                hide_client_details=not details,
            )
    finally:
        await close_pool()


def cmd_export(args: argparse.Namespace, settings: Settings) -> None:
    """`signoff audit export`: the file and its manifest, then one line about them."""
    if not settings.database_url:
        print("set SIGNOFF_DATABASE_URL", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    manifest = asyncio.run(export(settings, args))
    print(
        f"{args.out}: {manifest['rows']} rows, sha256 {manifest['sha256']}; manifest "
        f"{export_services.manifest_path(args.out)}"
    )
