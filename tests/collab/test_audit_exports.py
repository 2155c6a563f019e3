"""Audit exports requested through GraphQL and run by a real arq worker, stored through the
storage interface (local directory and an S3-compatible server).

What must always hold: only auditors and admins export or download; a request is idempotent by
key; the stored file verifies alone against its manifest; an export whose worker died is run
again and completes, and an attempt that lost its lease never marks the export done.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.db import scope
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit_export import ExportFilter, ExportFormat, read_rows, verify_export
from signoff.services import audit_exports as export_services
from signoff.services.context import ServiceContext
from signoff.worker import build_worker
from tests.conftest import actor

START = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)

REQUEST = """
mutation($input: RequestAuditExportInput!) {
  requestAuditExport(input: $input) {
    export { id exportStatus rowsWritten rowsTotal toSeq exportAttempts }
    errors { code field }
  }
}"""
STATUS = """
query($id: ID!) {
  auditExport(id: $id) {
    exportStatus rowsWritten rowsTotal exportAttempts fileSha256 fileSize manifest downloadUrl
    manifestUrl error
  }
}"""


async def load(tenant: str, count: int) -> None:
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant,
            [
                {
                    "occurred_at": START + timedelta(seconds=n),
                    "action": "step.approve" if n % 2 else "comment.created",
                    "actor_id": f"user{n % 3}",
                    "data": {"n": n},
                }
                for n in range(count)
            ],
        )


async def run_worker(settings: Any, clock: Any) -> None:
    worker = build_worker(
        settings, clock=clock, burst=True, poll_delay=0.01, handle_signals=False, cron_jobs=[]
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def test_an_export_runs_in_the_background_and_downloads_for_auditors(gql, settings, clock):
    await load(gql.tenant, 2_500)
    refused = await gql.data(REQUEST, {"input": {}}, as_user="bob")
    assert refused["requestAuditExport"]["errors"] == [{"code": "FORBIDDEN", "field": None}]
    variables = {"input": {"format": "CSV", "guards": {"idempotencyKey": "q4"}}}
    requested = await gql.data(REQUEST, variables, as_user="audrey", roles=("auditor",))
    export = requested["requestAuditExport"]["export"]
    assert export["exportStatus"] == "QUEUED" and export["toSeq"] == 2_500
    # a replay returns the same export; the same key for another request is refused
    again = await gql.data(REQUEST, variables, as_user="audrey", roles=("auditor",))
    assert again["requestAuditExport"]["export"]["id"] == export["id"]
    other = await gql.data(
        REQUEST,
        {"input": {"guards": {"idempotencyKey": "q4"}}},
        as_user="audrey",
        roles=("auditor",),
    )
    assert other["requestAuditExport"]["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"

    await run_worker(settings, clock)

    status = (await gql.data(STATUS, {"id": export["id"]}, as_user="ann", roles=("admin",)))[
        "auditExport"
    ]
    assert status["exportStatus"] == "COMPLETED" and status["exportAttempts"] == 1
    # the request itself is audited (seq 2,501), after the head the export was made at
    assert status["rowsWritten"] == status["rowsTotal"] == 2_500
    manifest = status["manifest"]
    assert manifest["rows"] == 2_500 and manifest["chain"]["last_seq"] == 2_500
    response = await gql.http.get(status["downloadUrl"])
    assert response.status_code == 200
    body = response.content
    assert hashlib.sha256(body).hexdigest() == status["fileSha256"] == manifest["sha256"]
    assert len(body) == status["fileSize"]
    rows = read_rows(ExportFormat.CSV, body.decode().splitlines(keepends=True))
    assert verify_export(rows, manifest) is None
    served = await gql.http.get(status["manifestUrl"])
    assert json.loads(served.content) == manifest

    # the bearer way in is checked like the data: auditors and admins only
    path = status["downloadUrl"].split("?")[0]
    plain = await gql.http.get(path, headers={"Authorization": f"Bearer {gql.token('bob')}"})
    assert plain.status_code == 403
    auditor = gql.token("audrey", "auditor")
    fetched = await gql.http.get(path, headers={"Authorization": f"Bearer {auditor}"})
    assert fetched.status_code == 200 and fetched.content == body
    # a link expires, and a reader of the item is not an auditor
    clock.advance(timedelta(minutes=11))
    assert (await gql.http.get(status["downloadUrl"])).status_code == 404
    response = await gql.run(STATUS, {"id": export["id"]}, token=gql.token("bob"))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_bad_filter_is_a_typed_error_and_records_nothing(gql):
    await ensure_tenant(gql.tenant)
    before = await audit_repo.chain_head(gql.tenant)
    bad = {"filter": {"since": "2026-12-01T00:00:00+00:00", "until": "2026-11-01T00:00:00+00:00"}}
    answer = await gql.data(REQUEST, {"input": bad}, as_user="a", roles=("auditor",))
    assert answer["requestAuditExport"]["errors"] == [
        {"code": "INVALID_INPUT", "field": "filter.since"}
    ]
    wrong_id = {"filter": {"itemId": "not-an-id"}}
    answer = await gql.data(REQUEST, {"input": wrong_id}, as_user="a", roles=("auditor",))
    assert answer["requestAuditExport"]["errors"][0]["code"] == "INVALID_INPUT"
    assert await audit_repo.chain_head(gql.tenant) == before


async def test_an_export_whose_worker_died_is_run_again_and_completes(
    settings, clock, store, tenant
):
    ctx = ServiceContext(settings=settings, clock=clock, storage=store.storage)
    await load(tenant, 4_321)
    auditor = actor(tenant, "audrey", "auditor")
    export = await export_services.request_export(auditor, ctx, ExportFilter(), ExportFormat.NDJSON)
    # A worker took it and died: the row says running, its heartbeat stops.
    dead = uuid4()
    claimed = await claim_as_a_worker(tenant, export["id"], dead, clock.now())
    assert claimed is not None and claimed["attempts"] == 1
    # While its heartbeat is fresh nobody else runs it.
    assert await export_services.run_export(ctx, tenant, export["id"]) == "skipped"
    clock.advance(export_services.STALE_AFTER + timedelta(seconds=1))
    assert await export_services.run_export(ctx, tenant, export["id"]) == "completed"
    # the dead attempt can neither report progress nor complete any more
    assert not await export_repo.progress(tenant, export["id"], dead, 10, clock.now(), None)
    done = await export_services.get_export(auditor, ctx, export["id"])
    assert done["status"] == "completed" and done["attempts"] == 2
    assert done["rows_written"] == done["rows_total"] == 4_321
    export_row, reader = await export_services.open_export_file(auditor, ctx, export["id"])
    body = b"".join([chunk async for chunk in reader.chunks()])
    manifest = export_row["manifest"]
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
    lines = body.decode().splitlines(keepends=True)
    assert verify_export(read_rows(ExportFormat.NDJSON, lines), manifest) is None
    assert manifest["export_id"] == str(export["id"])
    # Running it again changes nothing: it is done.
    assert await export_services.run_export(ctx, tenant, export["id"]) == "skipped"
    # Completing is audited.
    events = await audit_repo.events_after(tenant, 4_321, 10)
    assert [e["action"] for e in events] == ["audit.export_requested", "audit.export_completed"]
    assert events[1]["data"]["sha256"] == manifest["sha256"]


async def claim_as_a_worker(tenant: str, export_id: Any, lease: Any, now: datetime) -> Any:
    with scope.tenant(tenant):
        return await export_repo.claim(tenant, export_id, lease, now, now)


@pytest.mark.parametrize("count", [0, 1])
async def test_empty_and_single_event_exports_verify(settings, clock, store, tenant, count):
    ctx = ServiceContext(settings=settings, clock=clock, storage=store.storage)
    await ensure_tenant(tenant)
    if count:
        await load(tenant, count)
    auditor = actor(tenant, "audrey", "admin")
    export = await export_services.request_export(
        auditor, ctx, ExportFilter(actor_id="user0"), ExportFormat.CSV
    )
    assert await export_services.run_export(ctx, tenant, export["id"]) == "completed"
    row, reader = await export_services.open_export_file(auditor, ctx, export["id"])
    body = b"".join([chunk async for chunk in reader.chunks()])
    lines = body.decode().splitlines(keepends=True)
    assert verify_export(read_rows(ExportFormat.CSV, lines), row["manifest"]) is None
    assert row["manifest"]["rows"] == count


async def test_concurrent_requests_and_runs_make_one_export_and_one_file(
    settings, clock, store, tenant
):
    ctx = ServiceContext(settings=settings, clock=clock, storage=store.storage)
    await load(tenant, 3_000)
    auditor = actor(tenant, "audrey", "auditor")
    requests = await asyncio.gather(
        *[
            export_services.request_export(
                auditor, ctx, ExportFilter(), ExportFormat.NDJSON, "same-key"
            )
            for _ in range(4)
        ]
    )
    assert len({r["id"] for r in requests}) == 1
    export_id = requests[0]["id"]
    outcomes = await asyncio.gather(
        *[export_services.run_export(ctx, tenant, export_id) for _ in range(4)]
    )
    assert sorted(outcomes) == ["completed", "skipped", "skipped", "skipped"]
    done = await export_services.get_export(auditor, ctx, export_id)
    assert done["status"] == "completed" and done["attempts"] == 1
    row, reader = await export_services.open_export_file(auditor, ctx, export_id)
    body = b"".join([chunk async for chunk in reader.chunks()])
    lines = body.decode().splitlines(keepends=True)
    assert verify_export(read_rows(ExportFormat.NDJSON, lines), row["manifest"]) is None
    # one request event, one completion event
    events = await audit_repo.events_after(tenant, 3_000, 10)
    assert sorted(e["action"] for e in events) == [
        "audit.export_completed",
        "audit.export_requested",
    ]
