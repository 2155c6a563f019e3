"""Proving the trail: what every event records, who sees where a change came from, and
`verifyAuditChain` / `signoff audit verify` naming the first broken link after tampering.

Tampering is done the way a database owner could: raw SQL with the append-only trigger
switched off (`session_replication_role = replica`), committed, in a tenant of the test's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from signoff.db import audit as audit_repo
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit import content_digest

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code } }
}"""
EVENTS = """
query($id: ID!) {
  item(id: $id) {
    auditEvents { nodes { action actorId requestId clientAddr userAgent environment seq } }
  }
}"""
VERIFY = """
query($from: Int!) {
  verifyAuditChain(fromSeq: $from) {
    ok fromSeq headSeq headHash firstBreak { seq kind detail }
  }
}"""
PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


async def test_every_event_records_where_it_came_from_seen_only_by_auditors(gql, demo_templates):
    response = await gql.http.post(
        "/graphql",
        json={
            "query": SUBMIT,
            "variables": {
                "input": {"templateKey": "change-approval", "title": "t", "payload": PAYLOAD}
            },
        },
        headers={
            "Authorization": f"Bearer {gql.token('alice')}",
            "User-Agent": "console/1.0",
            "X-Request-Id": "req-audit-1",
        },
    )
    item_id = response.json()["data"]["submitItem"]["item"]["id"]
    plain = await gql.data(EVENTS, {"id": item_id}, as_user="alice")
    events = plain["item"]["auditEvents"]["nodes"]
    assert events
    for event in events:
        assert event["actorId"] == "alice" and event["requestId"] == "req-audit-1"
        assert event["environment"] == "production"
        # the requester reads the item, not where each change came from
        assert event["clientAddr"] is None and event["userAgent"] is None
    for roles in (("auditor",), ("admin",)):
        seen = await gql.data(EVENTS, {"id": item_id}, as_user="alice", roles=roles)
        for event in seen["item"]["auditEvents"]["nodes"]:
            assert event["clientAddr"] == "127.0.0.1" and event["userAgent"] == "console/1.0"
    # stored for every reader, whoever reads them
    stored = [e for e in await audit_repo.events_after(gql.tenant, 0, 100) if e["item_id"]]
    assert {e["user_agent"] for e in stored} == {"console/1.0"}
    assert {e["environment"] for e in stored} == {"production"}


def test_the_environment_is_digested_when_recorded():
    event = {"action": "a", "actor_id": "u", "data": {}, "occurred_at": NOW}
    # events written before it was recorded keep their digest
    assert content_digest({**event, "environment": None}) == content_digest(event)
    assert content_digest({**event, "environment": "staging"}) != content_digest(
        {**event, "environment": "production"}
    )


async def five_events(tenant: str) -> None:
    await ensure_tenant(tenant)
    for n in range(5):
        async with ENGINE.transaction():
            await audit_repo.append_events(
                tenant,
                [{"occurred_at": NOW, "action": f"a{n}", "actor_id": "u", "data": {"n": n}}],
            )


async def tamper(owner_url: str, statement: str, tenant: str) -> None:
    """Change the trail as a database administrator could (the application's role can do
    neither this nor replica mode), and commit it."""
    conn = await asyncpg.connect(owner_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(statement, tenant)
    finally:
        await conn.close()


TAMPERING = {
    "content": ("UPDATE audit_event SET reason = 'x' WHERE tenant_id = $1 AND seq = 3", 3),
    "link": (
        "UPDATE audit_event SET prev_hash = repeat('0', 64) WHERE tenant_id = $1 AND seq = 4",
        4,
    ),
    "missing": ("DELETE FROM audit_event WHERE tenant_id = $1 AND seq = 2", 2),
    "hash": (
        "UPDATE audit_event SET hash = repeat('f', 64) WHERE tenant_id = $1 AND seq = 5",
        5,
    ),
}


async def test_only_auditors_and_admins_verify(gql):
    await five_events(gql.tenant)
    response = await gql.run(VERIFY, {"from": 1}, token=gql.token("alice"))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    for roles in (("auditor",), ("admin",)):
        report = (await gql.data(VERIFY, {"from": 1}, as_user="a", roles=roles))["verifyAuditChain"]
        assert report["ok"] and report["firstBreak"] is None
        assert (report["fromSeq"], report["headSeq"]) == (1, 5)
        assert report["headHash"] == (await audit_repo.chain_head(gql.tenant))[1]


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_verify_names_the_first_tampered_event(gql, kind, owner_database_url):
    await five_events(gql.tenant)
    statement, seq = TAMPERING[kind]
    await tamper(owner_database_url, statement, gql.tenant)
    report = (await gql.data(VERIFY, {"from": 1}, as_user="a", roles=("auditor",)))[
        "verifyAuditChain"
    ]
    assert not report["ok"]
    assert (report["firstBreak"]["seq"], report["firstBreak"]["kind"]) == (seq, kind.upper())
    # From past the damage (anchored on an intact predecessor) the rest verifies.
    restart = seq + 2 if kind == "missing" else seq + 1
    later = await gql.data(VERIFY, {"from": restart}, as_user="a", roles=("auditor",))
    assert later["verifyAuditChain"]["ok"]


async def test_a_bad_first_seq_is_a_typed_error(gql):
    response = await gql.run(VERIFY, {"from": 0}, token=gql.token("a", "auditor"))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_the_command_exits_non_zero_naming_the_first_break(
    database_url, owner_database_url, tenant, signoff_audit
):
    await five_events(tenant)
    healthy = signoff_audit(database_url, "verify", "--tenant", tenant)
    assert healthy.returncode == 0, healthy.stderr
    assert f"tenant {tenant}: ok, seq 1..5 verified" in healthy.stdout
    await tamper(owner_database_url, TAMPERING["content"][0], tenant)
    broken = signoff_audit(database_url, "verify", "--tenant", tenant)
    assert broken.returncode == 1, broken.stderr
    assert f"tenant {tenant}: BROKEN at seq 3: content" in broken.stdout
    after = signoff_audit(database_url, "verify", "--tenant", tenant, "--from", "4")
    assert after.returncode == 0 and "seq 4..5 verified" in after.stdout
    usage = signoff_audit(database_url, "verify", "--from", "0")
    assert usage.returncode == 2 and "--from" in usage.stderr
