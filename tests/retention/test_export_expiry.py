"""Audit export files are kept `audit_export_retention_days` after they complete; then the
retention run removes the file and its manifest from the store (the local directory and a real
S3-compatible server), audits each removal once, and a download is refused with the typed
EXPORT_EXPIRED (HTTP 410), never a 500 or an empty file.

What must always hold: an export is served whole until it expires and never after; every
expiry has exactly one `audit.export_expired` event, however many runs overlap; a deletion that
fails is retried until the objects are gone; the chain still verifies.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from signoff.api import ids
from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.db import scope
from signoff.domain.audit_export import ExportFilter, ExportFormat, read_rows, verify_export
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import audit_exports as export_services
from signoff.services import retention as retention_services
from signoff.services.context import ServiceContext
from signoff.storage import StorageError
from tests.collab.test_audit_exports import load
from tests.conftest import actor

DAYS = 7
STATUS = """
query($id: ID!) {
  auditExport(id: $id) { exportStatus expiresAt expiredAt downloadUrl manifestUrl }
}"""


def context(settings: Any, clock: Any, storage: Any, days: int = DAYS) -> ServiceContext:
    kept = dataclasses.replace(settings, audit_export_retention_days=days)
    return ServiceContext(settings=kept, clock=clock, storage=storage)


async def completed_export(ctx: ServiceContext, tenant: str, fmt: ExportFormat) -> dict[str, Any]:
    export = await export_services.request_export(
        actor(tenant, "audrey", "auditor"), ctx, ExportFilter(), fmt
    )
    assert await export_services.run_export(ctx, tenant, export["id"]) == "completed"
    return await export_services.get_export(actor(tenant, "audrey", "auditor"), ctx, export["id"])


async def read(ctx: ServiceContext, tenant: str, export_id: Any, manifest: bool = False) -> bytes:
    _, reader = await export_services.open_export_file(
        actor(tenant, "audrey", "auditor"), ctx, export_id, manifest=manifest
    )
    return b"".join([chunk async for chunk in reader.chunks()])


def export_keys(store: Any, tenant: str) -> list[str]:
    stored: list[str] = store.keys()
    return [k for k in stored if k.startswith(f"tenants/{tenant}/audit-exports/")]


async def expiry_events(tenant: str) -> list[dict[str, Any]]:
    events = await audit_repo.events_after(tenant, 0, 10_000)
    return [e for e in events if e["action"] == "audit.export_expired"]


@pytest.mark.parametrize("fmt", [ExportFormat.NDJSON, ExportFormat.CSV])
async def test_an_export_file_is_served_until_it_expires_then_removed_and_refused(
    settings, clock, store, tenant, fmt
):
    ctx = context(settings, clock, store.storage)
    await load(tenant, 120)
    export = await completed_export(ctx, tenant, fmt)
    assert export_services.expires_at(ctx, export) == export["finished_at"] + timedelta(days=DAYS)
    body = await read(ctx, tenant, export["id"])
    assert len(export_keys(store, tenant)) == 2  # the file and its manifest

    # A moment before its time nothing happens: it is served whole.
    clock.advance(timedelta(days=DAYS) - timedelta(seconds=1))
    report = await retention_services.apply_retention(ctx, tenant)
    assert (report.exports_expired, report.export_files_deleted) == (0, 0)
    assert await read(ctx, tenant, export["id"]) == body
    lines = body.decode().splitlines(keepends=True)
    assert verify_export(read_rows(fmt, lines), export["manifest"]) is None

    clock.advance(timedelta(seconds=2))
    report = await retention_services.apply_retention(ctx, tenant)
    assert (report.exports_expired, report.export_files_deleted) == (1, 1)
    assert report.export_file_failures == 0
    assert export_keys(store, tenant) == []
    for manifest in (False, True):
        with pytest.raises(DomainError) as refused:
            await read(ctx, tenant, export["id"], manifest=manifest)
        assert refused.value.code is ErrorCode.EXPORT_EXPIRED

    [event] = await expiry_events(tenant)
    assert event["actor_id"] == "system"
    assert event["data"]["export_id"] == str(export["id"])
    assert event["data"]["sha256"] == export["sha256"]
    assert event["data"]["rows"] == 120 and event["data"]["retention_days"] == DAYS
    row = await export_services.get_export(actor(tenant, "ann", "admin"), ctx, export["id"])
    assert row["status"] == "expired" and row["expired_at"] == clock.now()
    assert row["storage_key"] is None and row["sha256"] == export["sha256"]  # the record stays
    assert await audit_repo.verify_chain(tenant) is None

    # Running again changes nothing.
    again = await retention_services.apply_retention(ctx, tenant)
    assert (again.exports_expired, again.export_files_deleted) == (0, 0)
    assert len(await expiry_events(tenant)) == 1


async def test_an_expired_export_is_a_410_with_its_code_and_shows_as_expired(
    gql, settings, clock, tenant
):
    # The test deployment keeps export files 30 days (the default) in its local store.
    ctx = ServiceContext(settings=settings, clock=clock)
    await load(tenant, 10)
    export = await completed_export(ctx, tenant, ExportFormat.NDJSON)
    export_id = ids.encode("AuditExport", export["id"])
    shown = (await gql.data(STATUS, {"id": export_id}, as_user="audrey", roles=("auditor",)))[
        "auditExport"
    ]
    assert shown["exportStatus"] == "COMPLETED" and shown["expiredAt"] is None
    assert shown["expiresAt"].startswith(str((export["finished_at"] + timedelta(days=30)).date()))
    assert (await gql.http.get(shown["downloadUrl"])).status_code == 200

    clock.advance(timedelta(days=31))
    report = await retention_services.apply_retention(ctx, tenant)
    assert report.exports_expired == 1
    auditor = {"Authorization": f"Bearer {gql.token('audrey', 'auditor')}"}
    for part in ("file", "manifest"):
        response = await gql.http.get(f"/audit-exports/{export_id}/{part}", headers=auditor)
        assert response.status_code == 410
        assert response.json()["errors"][0]["code"] == "EXPORT_EXPIRED"
    shown = (await gql.data(STATUS, {"id": export_id}, as_user="audrey", roles=("auditor",)))[
        "auditExport"
    ]
    assert shown["exportStatus"] == "EXPIRED" and shown["expiresAt"] is None
    assert shown["expiredAt"] is not None
    assert shown["downloadUrl"] is None and shown["manifestUrl"] is None


class FailingDeletes:
    """The test's store, except that deleting fails (reads and writes pass)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def delete(self, key: str) -> None:
        raise StorageError("the store refuses deletes")


async def test_a_failed_deletion_refuses_the_download_and_is_retried(
    settings, clock, store, tenant
):
    ctx = context(settings, clock, store.storage)
    await load(tenant, 5)
    export = await completed_export(ctx, tenant, ExportFormat.NDJSON)
    clock.advance(timedelta(days=DAYS + 1))
    broken = context(settings, clock, FailingDeletes(store.storage))
    report = await retention_services.apply_retention(broken, tenant)
    assert (report.exports_expired, report.export_files_deleted) == (1, 0)
    assert report.export_file_failures == 1
    assert len(export_keys(store, tenant)) == 2  # still stored ...
    with pytest.raises(DomainError) as refused:  # ... but refused from the expiry on
        await read(ctx, tenant, export["id"])
    assert refused.value.code is ErrorCode.EXPORT_EXPIRED

    report = await retention_services.apply_retention(ctx, tenant)
    assert (report.exports_expired, report.export_files_deleted) == (0, 1)
    assert export_keys(store, tenant) == []
    assert len(await expiry_events(tenant)) == 1


async def test_overlapping_runs_expire_each_export_once(settings, clock, store, tenant):
    ctx = context(settings, clock, store.storage)
    await load(tenant, 5)
    exports = [await completed_export(ctx, tenant, ExportFormat.CSV) for _ in range(3)]
    clock.advance(timedelta(days=DAYS, seconds=1))
    reports = await asyncio.gather(
        *[retention_services.apply_retention(ctx, tenant) for _ in range(3)]
    )
    assert sum(r.exports_expired for r in reports) == 3
    assert sum(r.export_file_failures for r in reports) == 0
    assert export_keys(store, tenant) == []
    events = await expiry_events(tenant)
    assert sorted(e["data"]["export_id"] for e in events) == sorted(str(e["id"]) for e in exports)
    with scope.tenant(tenant):
        rows = [await export_repo.get(tenant, e["id"]) for e in exports]
    assert all(r is not None and r["status"] == "expired" for r in rows)
    assert await audit_repo.verify_chain(tenant) is None


async def test_nothing_expires_when_files_are_kept_until_removed_by_hand(
    settings, clock, store, tenant
):
    ctx = context(settings, clock, store.storage, days=0)
    await load(tenant, 5)
    export = await completed_export(ctx, tenant, ExportFormat.NDJSON)
    assert export_services.expires_at(ctx, export) is None
    clock.advance(timedelta(days=3650))
    report = await retention_services.apply_retention(ctx, tenant)
    assert report.exports_expired == 0
    assert await read(ctx, tenant, export["id"])
    assert await expiry_events(tenant) == []
