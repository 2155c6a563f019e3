"""Tenants are created on first use, once: not upserted by every transaction."""

from __future__ import annotations

import pytest

from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.services.uow import KNOWN_TENANTS, KnownTenants, unit_of_work

UPSERT = "INSERT INTO tenant"


class Refused(Exception):
    pass


async def tenant_exists(tenant: str) -> bool:
    return await sql.fetchrow("SELECT 1 FROM tenant WHERE id = $1", tenant) is not None


async def test_an_unknown_tenant_is_created_by_its_first_write_only(tenant, services, statements):
    actor = Actor(Principal("alice", tenant))
    assert not await tenant_exists(tenant)
    with statements:
        async with unit_of_work(actor, services) as uow:
            uow.record("test.first")
    assert len(statements.matching(UPSERT)) == 1
    assert await tenant_exists(tenant)
    with statements:
        async with unit_of_work(actor, services) as uow:
            uow.record("test.second")
    assert statements.matching(UPSERT) == []
    # BEGIN, the audit append, COMMIT: nothing else for a unit of work that only audits.
    assert len(statements) == 3, statements.statements


async def test_a_first_write_that_rolls_back_leaves_the_tenant_unknown(tenant, services):
    actor = Actor(Principal("alice", tenant))
    with pytest.raises(Refused):
        async with unit_of_work(actor, services) as uow:
            uow.record("test.refused")
            raise Refused
    assert tenant not in KNOWN_TENANTS
    assert not await tenant_exists(tenant)
    async with unit_of_work(actor, services) as uow:
        uow.record("test.accepted")
    assert tenant in KNOWN_TENANTS
    assert await tenant_exists(tenant)


def test_the_known_tenants_stay_bounded():
    known = KnownTenants(limit=3)
    for n in range(10):
        known.add(f"t{n}")
        assert f"t{n}" in known
    assert sum(f"t{n}" in known for n in range(10)) <= 3
