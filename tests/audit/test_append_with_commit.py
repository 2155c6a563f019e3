"""A unit of work stages its audit events with its COMMIT: one round trip, and no tenant-wide
lock inside the transaction; the sequencer numbers them after the commit. The events travel as
one SQL literal; whatever they hold, they are stored as written, numbered and chained as
always, and a failure leaves nothing behind."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.domain.actors import Actor, Principal
from signoff.services.uow import unit_of_work

TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@pytest.mark.parametrize("conforming", ["on", "off"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=TEXT)
async def test_a_literal_reads_back_as_its_text_whatever_the_string_setting(
    owner_transaction, conforming, text
):
    async with owner_transaction() as conn:
        await conn.execute(f"SET LOCAL standard_conforming_strings = {conforming}")
        for each in (text, "'", "\\", "\\'", "E'x'", "a'); DROP TABLE tenant; --", "é\n\t"):
            assert await conn.fetchval(f"SELECT {audit_repo.literal(each)}") == each


def test_a_literal_refuses_a_nul_character():
    with pytest.raises(ValueError):
        audit_repo.literal("a\x00b")


def uow_actor(tenant: str) -> Actor:
    return Actor(Principal("ann", tenant, roles=frozenset({"admin"})))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reason=TEXT, value=TEXT, key=TEXT.filter(bool))
async def test_events_sent_with_the_commit_are_stored_as_written_and_chained(
    tenant, services, statements, reason, value, key
):
    with statements:
        async with unit_of_work(uow_actor(tenant), services) as uow:
            uow.record("test.event", reason=reason, data={key: value, "n": [1, 2.5, None]})
            uow.record("test.second", data={})
    [sent] = statements.matching("audit_stage")
    assert sent.endswith("; COMMIT") and "$1" not in sent
    rows = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 2", tenant
    )
    second, first = (sql.record_dict(r, ("data",)) for r in rows)
    assert (first["action"], first["reason"], first["data"]) == (
        "test.event",
        reason,
        {key: value, "n": [1, 2.5, None]},
    )
    assert second["seq"] == first["seq"] + 1 and second["prev_hash"] == first["hash"]
    assert [r["content_digest"] for r in uow.written] == [
        first["content_digest"],
        second["content_digest"],
    ]
    assert await audit_repo.verify_chain(tenant) is None


async def test_an_append_that_fails_at_commit_writes_nothing_and_frees_its_connection(
    tenant, services, monkeypatch
):
    async with unit_of_work(uow_actor(tenant), services) as uow:
        uow.record("test.before")
    head = await audit_repo.chain_head(tenant)

    def broken(tenant_id: str, events: Any) -> tuple[str, list[dict[str, Any]]]:
        statement, rows = original(tenant_id, events)
        return statement.replace("FROM audit_stage(", "FROM audit_stage_missing("), rows

    original = audit_repo.append_statement
    monkeypatch.setattr(audit_repo, "append_statement", broken)
    with pytest.raises(asyncpg.UndefinedFunctionError):
        async with unit_of_work(uow_actor(tenant), services) as uow:
            await sql.execute("UPDATE tenant SET id = id WHERE id = $1", tenant)
            uow.record("test.lost")
    monkeypatch.undo()
    assert await audit_repo.chain_head(tenant) == head
    assert await sql.fetch("SELECT * FROM audit_pending WHERE tenant_id = $1", tenant) == []
    assert ENGINE.pool is not None
    assert ENGINE.pool.get_idle_size() == ENGINE.pool.get_size()
    # every pooled connection is outside any transaction again
    for _ in range(ENGINE.pool.get_size()):
        async with ENGINE.pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT 1") == 1
