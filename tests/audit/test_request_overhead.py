"""What one approval costs besides its rules: round trips, template parsing, thread hops,
server options."""

from __future__ import annotations

import dataclasses
from typing import Any

import litestar.concurrency
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from signoff.cli import server_options
from signoff.domain.actors import Actor, Principal
from signoff.domain.records import TemplateStatus
from signoff.http_server import OneWriteHttpToolsProtocol
from signoff.services import items as item_services
from signoff.services.templates import DEFINITIONS, definition_of
from signoff.settings import Settings

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"}


async def submit(services: Any, tenant: str, title: str) -> item_services.ItemView:
    return await item_services.submit_item(
        Actor(Principal("dave", tenant)),
        services,
        item_services.SubmitItemInput(template_key="change-approval", title=title, payload=PAYLOAD),
    )


async def approve(services: Any, tenant: str, view: item_services.ItemView) -> Any:
    return await item_services.decide_step(
        Actor(Principal("bob", tenant, roles=frozenset({"change-approver"}))),
        services,
        item_services.DecideStepInput(
            step_id=view.steps[0].id, outcome=item_services.Outcome.APPROVE, reason="ok"
        ),
    )


async def test_an_approval_reads_no_template_and_upserts_no_tenant(
    tenant, services, demo_templates, statements
):
    views = [await submit(services, tenant, f"change {n}") for n in range(3)]
    await approve(services, tenant, views[0])  # the first may parse the template version
    parses = DEFINITIONS.parses
    for view in views[1:]:
        with statements:
            decided = await approve(services, tenant, view)
        assert decided.item.state == "approved"
        assert statements.matching("FROM template") == []
        assert statements.matching("INSERT INTO tenant") == []
        assert statements.matching("RESET ALL") == []
        assert statements.matching("audit_append") == []
        assert len(statements.matching("audit_stage")) == 1
        # Everything else is the engine's own reading and writing of the item: the minimum
        # its rules need — what it decides on (the item locked, with its steps, calendar and
        # grants), what it writes (the decision, the step, the item, the void timers: one
        # statement), and the audit events staged with the COMMIT; after the COMMIT, in the
        # same message and a transaction of its own, their numbering and chaining.
        begin, basis, writes, audit = statements.statements
        assert begin.startswith("BEGIN;") and audit.endswith("; COMMIT")
        assert basis.endswith("FOR UPDATE OF i") and "snapshot_steps" in basis
        for table in ("INSERT INTO decision", "UPDATE step", "UPDATE workflow_item"):
            assert writes.count(table) == 1, table
        assert writes.count("UPDATE timer SET status = 'cancelled'") == 1
        change, sequencing = audit.split("COMMIT", 1)
        assert "audit_stage" in change and "pg_notify" not in change
        assert sequencing.lstrip(";\n ").startswith("BEGIN;")
        assert "audit_sequence_after_commit(" in sequencing
    assert DEFINITIONS.parses == parses


async def test_drafts_are_parsed_every_time_published_versions_once(
    tenant, services, demo_templates, settings
):
    published = next(t for t in demo_templates if t.key == "change-approval")
    before = DEFINITIONS.parses
    first = definition_of(published, settings)
    assert definition_of(published, settings) is first
    assert DEFINITIONS.parses <= before + 1
    draft = dataclasses.replace(published, status=TemplateStatus.DRAFT)
    before = DEFINITIONS.parses
    assert definition_of(draft, settings) == first
    assert definition_of(draft, settings) is not definition_of(draft, settings)
    assert DEFINITIONS.parses == before + 3
    # Other limits parse (and check) the version again.
    stricter = dataclasses.replace(
        settings, max_steps_per_template=settings.max_steps_per_template - 1
    )
    assert definition_of(published, stricter) is not first


async def test_a_graphql_request_makes_no_thread_hop(gql, demo_templates, monkeypatch):
    hops: list[Any] = []
    original = litestar.concurrency._run_sync_asyncio

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(litestar.concurrency, "_run_sync_asyncio", counting)
    data = await gql.data("{ viewer { userId } }", as_user="alice")
    assert data["viewer"]["userId"] == "alice"
    assert hops == []


@pytest.mark.parametrize("access_log", [False, True])
def test_the_server_runs_uvloop_and_httptools_and_logs_requests_only_when_asked(
    settings, access_log
):
    configured = dataclasses.replace(settings, access_log=access_log, log_level="WARNING")
    options = server_options(configured, 8123)
    assert options["access_log"] is access_log
    config = uvicorn.Config(lambda *a: None, **options)
    config.load()
    assert config.loop == "uvloop" and config.http_protocol_class is OneWriteHttpToolsProtocol
    assert issubclass(OneWriteHttpToolsProtocol, HttpToolsProtocol)
    assert config.log_level == "warning"
    assert Settings.from_env({}).access_log is False
