"""Lawful redaction: the one change the append-only trail allows, and nothing else.

What must always hold: a redaction (text columns emptied, `data` values removed or replaced by
their digest marker) passes the trigger and the chain still verifies, content included for the
events not redacted; every other UPDATE, any DELETE and TRUNCATE are refused by the database
whatever the application does; a redaction cannot be undone or write new content in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit import (
    REDACTABLE_FIELDS,
    content_digest,
    is_redaction_marker,
    redaction_marker,
    verify_events,
)

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=400)

CONTENT = {
    "action": "item.submitted",
    "actor_id": "alice",
    "acting_for": "bob",
    "reason": "customer asked",
    "request_id": "req-1",
    "client_addr": "203.0.113.7",
    "user_agent": "curl/8",
    "data": {"payload": {"iban": "DE00 1234", "amount": 12}, "lines": ["a", "b"], "n": 1},
}


@pytest.fixture
async def trail(tenant: str) -> str:
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant,
            [
                {"occurred_at": NOW, **CONTENT, "data": {**CONTENT["data"], "k": k}}
                for k in range(3)
            ],
        )
    return tenant


async def stored(tenant: str, seq: int) -> dict[str, Any]:
    [event] = await audit_repo.events_after(tenant, seq - 1, 1)
    return event


async def refused(statement: str, *args: Any) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        async with ENGINE.transaction():
            await sql.execute(statement, *args)


async def test_a_redaction_passes_and_the_chain_still_verifies(trail):
    before = await stored(trail, 2)
    data = {**before["data"], "payload": redaction_marker(before["data"]["payload"])}
    async with ENGINE.transaction():
        assert await audit_repo.redact_event(trail, 2, at=LATER, clear=REDACTABLE_FIELDS, data=data)
    after = await stored(trail, 2)
    assert all(after[name] is None for name in REDACTABLE_FIELDS)
    assert after["data"]["payload"] == redaction_marker(before["data"]["payload"])
    assert is_redaction_marker(after["data"]["payload"])
    assert after["redacted_at"] == LATER
    # the chain, content digests included, still verifies; the redacted event by its links
    for column in ("hash", "prev_hash", "content_digest", "action", "actor_id", "occurred_at"):
        assert after[column] == before[column]
    assert content_digest(after) != after["content_digest"]
    assert await audit_repo.verify_chain(trail) is None
    # A later redaction may take more away (the whole data), never bring anything back.
    async with ENGINE.transaction():
        await audit_repo.redact_event(trail, 2, at=LATER, data={})
    assert (await stored(trail, 2))["data"] == {}
    assert await audit_repo.verify_chain(trail) is None


async def test_redacting_a_missing_event_changes_nothing(trail):
    async with ENGINE.transaction():
        assert not await audit_repo.redact_event(trail, 99, at=LATER, clear=("reason",))
    with pytest.raises(ValueError, match="not redactable"):
        await audit_repo.redact_event(trail, 1, at=LATER, clear=("actor_id",))
    assert await audit_repo.verify_chain(trail) is None


@pytest.mark.parametrize(
    "assignment",
    [
        # not marked as a redaction
        "reason = NULL",
        # columns outside the content that may be redacted
        "actor_id = 'mallory', redacted_at = now()",
        "action = 'other', redacted_at = now()",
        "occurred_at = occurred_at + interval '1 second', redacted_at = now()",
        "hash = repeat('0', 64), redacted_at = now()",
        "prev_hash = '', redacted_at = now()",
        "content_digest = repeat('0', 64), redacted_at = now()",
        "seq = seq + 100, redacted_at = now()",
        "item_id = gen_random_uuid(), redacted_at = now()",
        # a redactable column given a new value instead of emptied
        "reason = 'a better reason', redacted_at = now()",
        "client_addr = '10.0.0.1', redacted_at = now()",
        # new content written into data
        "data = data || '{\"approved\": true}', redacted_at = now()",
        "data = jsonb_set(data, '{n}', '2'), redacted_at = now()",
        "data = jsonb_set(data, '{lines,0}', '\"z\"'), redacted_at = now()",
        "data = jsonb_set(data, '{lines}', '[\"a\"]'), redacted_at = now()",
        # a marker that is not a digest
        "data = jsonb_set(data, '{n}', '{\"redacted_sha256\": \"x\"}'), redacted_at = now()",
        "data = jsonb_set(data, '{n}', "
        "jsonb_build_object('redacted_sha256', repeat('a', 64), 'x', 1)), redacted_at = now()",
    ],
)
async def test_anything_but_a_redaction_is_refused(trail, assignment):
    await refused(f"UPDATE audit_event SET {assignment} WHERE tenant_id = $1 AND seq = 2", trail)
    assert await audit_repo.verify_chain(trail) is None


async def test_a_redaction_is_never_undone(trail):
    async with ENGINE.transaction():
        await audit_repo.redact_event(trail, 1, at=LATER, clear=("reason",))
    await refused(
        "UPDATE audit_event SET redacted_at = NULL WHERE tenant_id = $1 AND seq = 1", trail
    )
    await refused(
        "UPDATE audit_event SET redacted_at = redacted_at - interval '1 day' "
        "WHERE tenant_id = $1 AND seq = 1",
        trail,
    )
    await refused(
        "UPDATE audit_event SET reason = 'customer asked' WHERE tenant_id = $1 AND seq = 1", trail
    )


async def test_deleting_and_truncating_stay_refused(trail, owner_transaction):
    await refused("DELETE FROM audit_event WHERE tenant_id = $1 AND seq = 3", trail)
    # the application's role may not truncate at all; the trigger refuses even the owner
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="audit_event"):
        async with ENGINE.transaction():
            await sql.execute("TRUNCATE audit_event CASCADE")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="TRUNCATE"):
        async with owner_transaction():
            await sql.execute("TRUNCATE audit_event CASCADE")
    assert (await audit_repo.chain_head(trail))[0] == 3


# -- the data rule in Python terms ----------------------------------------------------------

# Text PostgreSQL can store (no NUL) and JSON can carry (no lone surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=5)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def redactions(value: Any) -> st.SearchStrategy[Any]:
    """Every way to redact `value`: keep it, replace it by its marker, or redact inside it."""
    options = [st.just(value), st.just(redaction_marker(value))]
    if isinstance(value, dict) and value:
        options.append(
            st.fixed_dictionaries(
                {},
                optional={k: redactions(v) for k, v in value.items()},
            )
        )
    if isinstance(value, list) and value:
        options.append(st.tuples(*[redactions(v) for v in value]).map(list))
    return st.one_of(options)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), original=st.dictionaries(TEXT, JSON, max_size=4))
async def test_any_redaction_of_data_passes_and_verifies(database_url, data, original):
    tenant = f"r{uuid4().hex[:12]}"
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        [row] = await audit_repo.append_events(
            tenant, [{"occurred_at": NOW, "action": "a", "actor_id": "u", "data": original}]
        )
    seq = row["seq"]
    redacted = data.draw(redactions((await stored(tenant, seq))["data"]))
    if not isinstance(redacted, dict):
        redacted = {}
    async with ENGINE.transaction():
        await audit_repo.redact_event(tenant, seq, at=LATER, data=redacted)
    assert await audit_repo.verify_chain(tenant, seq) is None
    events = await audit_repo.events_after(tenant, seq - 1, 1)
    assert verify_events(events) is None
