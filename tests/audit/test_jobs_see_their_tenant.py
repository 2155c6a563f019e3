"""Exports and retention under the application's role: the suite connects as a member of
`signoff_app`, which row-level security binds, and each job binds the tenant it works for. So
a job sees only its tenant even where its SQL would not say so: the tests below make the
job's own query forget the tenant and show the other tenant's rows stay out of its file and
its work, while the same query with every tenant in scope would have seen them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.db import items as items_repo
from signoff.db import retention as retention_repo
from signoff.db import roles, scope, sql
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit_export import ExportFilter, ExportFormat
from signoff.jobs.audit_exports import run_audit_export_job
from signoff.services import audit_exports as export_services
from signoff.services import retention as retention_services
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.storage.local import LocalStorage
from tests.conftest import DEMO_TEMPLATES, actor
from tests.retention.conftest import decided_item, set_policy

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def forgetful(query: str) -> str:
    """The query without its tenant condition (the parameter kept, so it still binds)."""
    for condition in ("WHERE tenant_id = $1", "WHERE i.tenant_id = $1"):
        query = query.replace(condition, "WHERE $1::text IS NOT NULL")
    assert "tenant_id = $1 AND" not in query
    return query


async def trail(tenant: str, count: int) -> None:
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant,
            [
                {
                    "occurred_at": NOW,
                    "action": "step.approve",
                    "actor_id": "u",
                    "data": {"t": tenant},
                }
                for _ in range(count)
            ],
        )


async def test_an_export_job_writes_only_its_tenants_events(
    settings, clock, tenant, tmp_path, monkeypatch
):
    assert await roles.row_security_bypasses() == []  # the suite's role is bound
    other = f"{tenant}o"
    await trail(tenant, 3)
    await trail(other, 5)
    original = export_repo.filtered_query

    def without_tenant(*args: Any, **kwargs: Any) -> tuple[str, list[Any]]:
        query, values = original(*args, **kwargs)
        return forgetful(query), values

    monkeypatch.setattr(export_repo, "filtered_query", without_tenant)
    query, values = export_repo.filtered_query(tenant, ExportFilter(), 3)
    with scope.all_tenants():  # what the query reaches when nothing binds it
        seen = {r["tenant_id"] for r in await sql.fetch(query, *values)}
    assert seen >= {tenant, other}

    ctx = ServiceContext(settings=settings, clock=clock, storage=LocalStorage(tmp_path / "s"))
    auditor = actor(tenant, "audrey", "auditor")
    export = await export_services.request_export(auditor, ctx, ExportFilter(), ExportFormat.NDJSON)
    assert await run_audit_export_job({"services": ctx}, tenant, str(export["id"])) == "completed"
    row, reader = await export_services.open_export_file(auditor, ctx, export["id"])
    rows = [json.loads(line) for line in b"".join([c async for c in reader.chunks()]).splitlines()]
    assert {r["tenant_id"] for r in rows} == {tenant} and len(rows) == 3
    assert row["manifest"]["rows"] == row["rows_total"] == 3
    # another tenant's auditor cannot reach the export by its id
    with pytest.raises(Exception, match="no such audit export"):
        await export_services.get_export(actor(other, "otto", "auditor"), ctx, export["id"])


async def test_retention_of_one_tenant_handles_only_that_tenants_items(
    services, clock, tenant, demo_templates, monkeypatch
):
    other = f"{tenant}o"
    await ensure_tenant(other)
    await load_templates(actor(other, "admin", "admin"), services, DEMO_TEMPLATES)
    mine = await decided_item(services, tenant)
    theirs = await decided_item(services, other)
    for t in (tenant, other):
        await set_policy(services, t, 30, "purge")
    clock.advance(timedelta(days=31))

    original = retention_repo.sql.fetch

    async def fetch(query: str, *args: Any) -> Any:
        return await original(forgetful(query) if "FROM workflow_item i" in query else query, *args)

    monkeypatch.setattr(retention_repo.sql, "fetch", fetch)
    with scope.all_tenants():  # the forgetful query, unbound, hands out the other's item
        assert theirs.id in await retention_repo.due_candidates(tenant, clock.now(), 100)
    with scope.tenant(tenant):
        due = await retention_repo.due_candidates(tenant, clock.now(), 100)
    assert mine.id in due and theirs.id not in due

    report = await retention_services.apply_retention(services, tenant)
    assert report.applied == [mine.id]
    with scope.all_tenants():
        assert (await items_repo.get_item(tenant, mine.id)).payload == {}
        assert (await items_repo.get_item(other, theirs.id)).payload != {}
        assert await retention_repo.retention_of(other, theirs.id) is None
