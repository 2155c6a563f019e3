"""The audit chain: links, content digests and the verifier, in Python and against the database.

What must always hold: events appended through `append_events` verify from any starting seq;
the database and the application compute the same link; stored content reads back as exactly
what was digested; and every kind of tampering is reported at the event where it happened.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit import (
    GENESIS_HASH,
    BreakKind,
    canonical,
    chain_hashes,
    content_digest,
    legacy_event_hash,
    link_hash,
    verify_events,
)
from signoff.jobs.audit_check import verify_audit_chains

# -- strategies ------------------------------------------------------------------------------

# Text PostgreSQL can store (no NUL) and JSON can carry (no lone surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=6,
)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
TIMES = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)),
    ZONES,
)
EVENTS = st.fixed_dictionaries(
    {
        "item_id": st.none() | st.uuids(),
        "step_id": st.none() | st.uuids(),
        "action": TEXT.filter(bool),
        "actor_id": TEXT.filter(bool),
        "acting_for": st.none() | TEXT,
        "reason": st.none() | TEXT,
        "request_id": st.none() | TEXT,
        "client_addr": st.none() | TEXT,
        "user_agent": st.none() | TEXT,
        "data": st.dictionaries(TEXT, JSON, max_size=3),
        "occurred_at": TIMES,
    }
)


# A shared, busy machine makes generation slow; the checks themselves are fast.
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Values that jsonb does not hand back as they went in unless the content is canonical first.
TRICKY = {
    "item_id": uuid4(),
    "step_id": None,
    "action": "step.approve",
    "actor_id": "bob",
    "acting_for": None,
    "reason": "quotes ' \" and \\ and a newline\n and ünïcödé 🎉",
    "request_id": None,
    "client_addr": "::1",
    "user_agent": None,
    "data": {"f": 1e16, "z": -0.0, "small": 1.5e-7, "big": 2**70, "at": datetime(2026, 1, 1)},
    "occurred_at": datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-8))),
}


def chain_of(tenant: str, contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as `append_events` would store them, built in Python only."""
    rows = [{**c, "tenant_id": tenant, "data": canonical(c["data"])} for c in contents]
    digests = [content_digest(r) for r in rows]
    links = chain_hashes(GENESIS_HASH, tenant, 1, digests)
    for row, digest, (seq, prev, current) in zip(rows, digests, links, strict=True):
        row.update(seq=seq, prev_hash=prev, hash=current, content_digest=digest)
    return rows


# -- the chain in Python ---------------------------------------------------------------------


def test_link_is_sha256_of_its_four_parts():
    digest = "ab" * 32
    expected = hashlib.sha256(f"prev\nacme\n7\n{digest}".encode()).hexdigest()
    assert link_hash("prev", "acme", 7, digest) == expected


@PROPERTY
@given(st.lists(EVENTS, min_size=1, max_size=6), st.data())
def test_any_single_change_breaks_the_chain_where_it_is_made(contents, data):
    events = chain_of("acme", contents)
    assert verify_events(events, anchor=GENESIS_HASH, first_seq=1) is None
    k = data.draw(st.integers(0, len(events) - 1))
    field = data.draw(st.sampled_from(["reason", "actor_id", "data", "occurred_at", "hash"]))
    tampered = [dict(e) for e in events]
    if field == "data":
        tampered[k]["data"] = {**tampered[k]["data"], "injected": True}
    elif field == "occurred_at":
        tampered[k]["occurred_at"] = tampered[k]["occurred_at"] + timedelta(microseconds=1)
    elif field == "hash":
        tampered[k]["hash"] = "0" * 64
    else:
        tampered[k][field] = f"{tampered[k][field]}!"
    broken = verify_events(tampered, anchor=GENESIS_HASH, first_seq=1)
    assert broken is not None and broken.seq == k + 1
    assert broken.kind == (BreakKind.HASH if field == "hash" else BreakKind.CONTENT)


@PROPERTY
@given(st.lists(EVENTS, min_size=3, max_size=6), st.data())
def test_removing_or_reordering_events_is_found(contents, data):
    events = chain_of("acme", contents)
    k = data.draw(st.integers(1, len(events) - 2))
    removed = events[:k] + events[k + 1 :]
    broken = verify_events(removed, anchor=GENESIS_HASH, first_seq=1)
    assert broken is not None and (broken.seq, broken.kind) == (k + 1, BreakKind.MISSING)
    # Renumbering the rest to hide the hole breaks the link instead.
    renumbered = events[:k] + [{**e, "seq": e["seq"] - 1} for e in events[k + 1 :]]
    broken = verify_events(renumbered, anchor=GENESIS_HASH, first_seq=1)
    assert broken is not None and (broken.seq, broken.kind) == (k + 1, BreakKind.LINK)


def test_redacted_content_keeps_the_links_verifiable():
    events = chain_of(
        "acme", [{"action": "a", "actor_id": "u", "reason": "secret", "data": {}}] * 3
    )
    events[1] = {**events[1], "reason": None, "data": {}}
    assert verify_events(events, check_content=False) is None
    broken = verify_events(events)
    assert broken is not None and (broken.seq, broken.kind) == (2, BreakKind.CONTENT)


def test_events_written_before_content_digests_still_verify():
    legacy = {"tenant_id": "acme", "seq": 1, "action": "a", "actor_id": "u", "data": {}}
    legacy.update(prev_hash=GENESIS_HASH, content_digest=None)
    legacy["hash"] = legacy_event_hash(GENESIS_HASH, legacy)
    [new] = chain_of("acme", [{"action": "b", "actor_id": "u", "data": {}}])
    new.update(seq=2, prev_hash=legacy["hash"])
    new["hash"] = link_hash(legacy["hash"], "acme", 2, new["content_digest"])
    assert verify_events([legacy, new], anchor=GENESIS_HASH, first_seq=1) is None
    broken = verify_events([{**legacy, "actor_id": "mallory"}, new])
    assert broken is not None and (broken.seq, broken.kind) == (1, BreakKind.HASH)


@PROPERTY
@given(JSON)
def test_canonical_content_is_stable(value):
    assert canonical(canonical(value)) == canonical(value)


# -- the chain in the database ---------------------------------------------------------------


NOW = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)


async def append(tenant: str, contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with ENGINE.transaction():
        return await audit_repo.append_events(
            tenant, [{"occurred_at": NOW, **content} for content in contents]
        )


@pytest.fixture
async def fresh_tenant(tenant: str) -> str:
    await ensure_tenant(tenant)
    return tenant


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(EVENTS, min_size=1, max_size=4), min_size=1, max_size=3))
@example(batches=[[TRICKY]])
async def test_stored_events_read_back_as_digested_and_verify(database_url, batches):
    tenant = f"h{uuid4().hex[:12]}"
    await ensure_tenant(tenant)
    written = [row for batch in batches for row in await append(tenant, batch)]
    stored = await audit_repo.events_after(tenant, 0, 1000)
    assert [e["seq"] for e in stored] == list(range(1, len(written) + 1))
    for row, event in zip(written, stored, strict=True):
        # The database linked exactly what the application computed...
        assert (event["prev_hash"], event["hash"]) == (row["prev_hash"], row["hash"])
        # ...and the content reads back as exactly what was digested.
        assert content_digest(event) == event["content_digest"] == row["content_digest"]
    assert await audit_repo.verify_chain(tenant) is None
    assert await audit_repo.verify_chain(tenant, len(written)) is None


async def test_the_database_computes_the_applications_link(fresh_tenant):
    [row] = await append(fresh_tenant, [{"action": "a", "actor_id": "u", "data": {}}])
    assert row["seq"] == 1 and row["prev_hash"] == GENESIS_HASH
    stored = await sql.fetchrow(
        "SELECT hash FROM audit_event WHERE tenant_id = $1 AND seq = 1", fresh_tenant
    )
    assert stored is not None
    assert stored["hash"] == link_hash(GENESIS_HASH, fresh_tenant, 1, row["content_digest"])


async def test_events_are_written_only_inside_a_transaction(fresh_tenant):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await audit_repo.append_events(fresh_tenant, [{"action": "a", "actor_id": "u"}])


async def test_a_new_event_needs_a_content_digest(fresh_tenant):
    with pytest.raises(asyncpg.CheckViolationError):
        await sql.execute(
            """INSERT INTO audit_event (tenant_id, seq, action, actor_id, prev_hash, hash)
            VALUES ($1, 1, 'a', 'u', '', 'x')""",
            fresh_tenant,
        )


class Tampered(Exception):
    """Rolls back a transaction in which a test tampered with the trail."""


async def tamper(tenant: str, statement: str, *args: Any) -> None:
    # Replica mode skips the append-only trigger, as a database administrator could (the
    # caller runs this in `owner_transaction`: the application's role can do neither).
    await sql.execute("SET LOCAL session_replication_role = replica")
    await sql.execute(statement, tenant, *args)


async def five_events(tenant: str) -> list[dict[str, Any]]:
    return [
        row
        for n in range(5)
        for row in await append(
            tenant, [{"action": f"a{n}", "actor_id": "u", "reason": "why", "data": {"n": n}}]
        )
    ]


async def test_the_verifier_names_the_first_tampered_event(fresh_tenant, owner_transaction):
    rows = await five_events(fresh_tenant)
    assert await audit_repo.verify_chain(fresh_tenant) is None
    t = fresh_tenant
    cases = [
        # changed content
        (
            "UPDATE audit_event SET reason = 'other' WHERE tenant_id = $1 AND seq = 3",
            (),
            3,
            "content",
        ),
        # changed content with a matching new digest: its own link no longer holds
        (
            "UPDATE audit_event SET reason = 'other', content_digest = $2 "
            "WHERE tenant_id = $1 AND seq = 3",
            (content_digest({**rows[2], "reason": "other"}),),
            3,
            "hash",
        ),
        # the event rewritten with a consistent link: the next event's link breaks
        (
            "UPDATE audit_event SET reason = 'other', content_digest = $2, hash = $3 "
            "WHERE tenant_id = $1 AND seq = 3",
            (
                d := content_digest({**rows[2], "reason": "other"}),
                link_hash(rows[2]["prev_hash"], t, 3, d),
            ),
            4,
            "link",
        ),
        # an event removed
        ("DELETE FROM audit_event WHERE tenant_id = $1 AND seq = 2", (), 2, "missing"),
    ]
    for statement, args, seq, kind in cases:
        with pytest.raises(Tampered):
            async with owner_transaction():
                await tamper(t, statement, *args)
                broken = await audit_repo.verify_chain(t)
                assert broken is not None and (broken.seq, broken.kind.value) == (seq, kind), (
                    statement
                )
                # From a seq after the damage the rest still verifies against its anchor.
                assert await audit_repo.verify_chain(t, 5) is None
                # The periodic check reports the same event.
                report = await verify_audit_chains({})
                assert report[t] == seq
                raise Tampered
    assert await audit_repo.verify_chain(t) is None


async def test_redacted_content_verifies_by_links_only(fresh_tenant, owner_transaction):
    await five_events(fresh_tenant)
    with pytest.raises(Tampered):
        async with owner_transaction():
            await tamper(
                fresh_tenant,
                "UPDATE audit_event SET reason = NULL, data = '{}' "
                "WHERE tenant_id = $1 AND seq = 2",
            )
            assert await audit_repo.verify_chain(fresh_tenant, check_content=False) is None
            broken = await audit_repo.verify_chain(fresh_tenant)
            assert broken is not None and (broken.seq, broken.kind) == (2, BreakKind.CONTENT)
            raise Tampered


async def test_verifying_reads_in_batches(fresh_tenant):
    await five_events(fresh_tenant)
    assert await audit_repo.verify_chain(fresh_tenant, batch_size=2) is None
    assert await audit_repo.verify_chain(fresh_tenant, 3, batch_size=1) is None
    assert await audit_repo.verify_chain(fresh_tenant, 6) is None  # nothing after the head
    assert await audit_repo.chain_head(fresh_tenant) == (
        5,
        (await audit_repo.events_after(fresh_tenant, 4, 1))[0]["hash"],
    )


def _canonical_reference(value: Any) -> Any:
    """`canonical` as it was written before its exact-type fast paths (the specification)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        exact = Decimal(repr(value))
        return int(exact) if exact == exact.to_integral_value() else value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical_reference(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_reference(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Colour(StrEnum):
    RED = "red"


class _Level(IntEnum):
    HIGH = 3


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | st.datetimes(timezones=st.just(UTC) | st.none())
    | st.uuids()
    | st.sampled_from([_Colour.RED, _Level.HIGH])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(
            st.text(max_size=3) | st.sampled_from([_Colour.RED]), children, max_size=3
        )
        | st.dictionaries(st.text(max_size=3), children, max_size=3).map(MappingProxyType)
    ),
    max_leaves=12,
)


@PROPERTY
@given(_VALUES)
def test_canonical_matches_its_specification(value):
    expected = _canonical_reference(value)
    got = canonical(value)
    assert got == expected
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
