"""Where a change came from (client address, user agent) leaves signoff in an export only for a
reader who holds `read_audit_details`, as on every read.

What must always hold, on every way an export is made (the API's streamed export, the
background job, `signoff audit export --role`), in both formats: a reader who may export but
not see client details (a tenant can grant `export_audit` alone) gets no client address and no
user agent in any row; each row that held one carries its `redacted_digest`; the file verifies
alone and the chain still verifies. A reader holding `read_audit_details` gets them all, and
only rows redacted for another reason carry a digest.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signoff.db import audit as audit_repo
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit_export import (
    REDACTED_DIGEST,
    ExportFilter,
    ExportFormat,
    read_rows,
    verify_export,
)
from signoff.domain.permissions import Permission
from signoff.services import audit as audit_services
from signoff.services import audit_exports as export_services
from signoff.services import permissions as permission_services
from signoff.services.context import ServiceContext
from signoff.storage.local import LocalStorage
from tests.conftest import actor

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ADDRESS, AGENT = "203.0.113.9", "agent/7 (plan runner)"
COMPLIANCE = "compliance"  # may export, may not see client details


def event(n: int) -> dict[str, Any]:
    return {
        "occurred_at": START + timedelta(seconds=n),
        "action": "step.approve",
        "actor_id": f"user{n % 3}",
        # some with both, some with one, some with none
        "client_addr": ADDRESS if n % 3 != 2 else None,
        "user_agent": AGENT if n % 3 != 1 else None,
        "data": {"n": n},
    }


async def setup(services: ServiceContext, tenant: str) -> None:
    await ensure_tenant(tenant)
    await permission_services.set_permission(
        actor(tenant, "ada", "admin"),
        services,
        permission_services.SetPermissionInput(
            Permission.EXPORT_AUDIT, ("auditor", "admin", COMPLIANCE), reason="quarterly review"
        ),
    )
    async with ENGINE.transaction():
        await audit_repo.append_events(tenant, [event(n) for n in range(9)])


async def check(
    fmt: ExportFormat, body: bytes, manifest: dict[str, Any], tenant: str, sees: bool
) -> None:
    stored = await audit_repo.events_after(tenant, 0, manifest["rows"])  # as they are stored
    text = io.StringIO(body.decode(), newline="").readlines()
    rows = list(read_rows(fmt, text))
    assert verify_export(rows, manifest) is None
    assert len(rows) == len(stored) == manifest["rows"]
    for row, original in zip(rows, stored, strict=True):
        held = original["client_addr"] is not None or original["user_agent"] is not None
        if sees:
            assert (row["client_addr"], row["user_agent"]) == (
                original["client_addr"],
                original["user_agent"],
            )
            assert not row.get(REDACTED_DIGEST)
        else:
            assert (row["client_addr"], row["user_agent"]) == (None, None)
            assert bool(row.get(REDACTED_DIGEST)) == held
    assert (ADDRESS.encode() in body) == (AGENT.encode() in body) == sees
    assert manifest["redaction"]["rows"] == (
        0 if sees else sum(1 for r in rows if r.get(REDACTED_DIGEST))
    )


@pytest.mark.parametrize("fmt", list(ExportFormat))
@pytest.mark.parametrize("roles", [(COMPLIANCE,), ("auditor",), ("admin",)])
async def test_a_streamed_export_shows_client_details_only_to_their_readers(
    services, tenant, fmt, roles
):
    await setup(services, tenant)
    reader = actor(tenant, "rita", *roles)
    parts: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        parts.append(chunk)

    manifest = await export_services.export_to_sink(reader, services, sink, fmt=fmt)
    sees = roles != (COMPLIANCE,)
    await check(fmt, b"".join(parts), manifest, tenant, sees)
    assert (await audit_services.verify_tenant_chain(tenant)).ok


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_the_background_export_is_written_as_its_requester_may_see_it(
    settings, clock, tenant, tmp_path, fmt
):
    ctx = ServiceContext(settings=settings, clock=clock, storage=LocalStorage(tmp_path / "s"))
    await setup(ctx, tenant)
    for roles, sees in (((COMPLIANCE,), False), (("auditor",), True)):
        reader = actor(tenant, "rita", *roles)
        export = await export_services.request_export(reader, ctx, ExportFilter(), fmt)
        assert await export_services.run_export(ctx, tenant, export["id"]) == "completed"
        done = await export_services.get_export(reader, ctx, export["id"])
        _, file = await export_services.open_export_file(reader, ctx, export["id"])
        body = b"".join([chunk async for chunk in file.chunks()])
        await check(fmt, body, done["manifest"], tenant, sees)
    assert (await audit_services.verify_tenant_chain(tenant)).ok


async def test_the_command_writes_them_for_a_role_that_holds_the_permission(
    services, tenant, tmp_path, database_url, signoff_audit
):
    await setup(services, tenant)
    for roles, sees in (((), False), ((COMPLIANCE,), False), (("auditor",), True)):
        path = Path(tmp_path) / f"{'-'.join(roles) or 'nobody'}.csv"
        args = [f"--role={r}" for r in roles]
        done = signoff_audit(
            database_url, "export", "--tenant", tenant, "--format", "csv", "--out", str(path), *args
        )
        assert done.returncode == 0, done.stderr
        written = json.loads(export_services.manifest_path(path).read_text())
        await check(ExportFormat.CSV, path.read_bytes(), written, tenant, sees)
        assert export_services.verify_file(path) is None
