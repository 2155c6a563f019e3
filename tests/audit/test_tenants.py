"""Tenants: created by an administrator (`signoff tenants create`); where the deployment allows
it (`tenants_on_first_use`, as the test deployment does) on first use, once: not upserted by
every transaction."""

from __future__ import annotations

import dataclasses

import pytest

from signoff.api.auth import mint_token
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services.tenants import create_tenant, list_tenants
from signoff.services.uow import KNOWN_TENANTS, KnownTenants, unit_of_work
from tests.test_cli import signoff

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
    # BEGIN, then the events staged with the COMMIT and, in the same message, their numbering
    # in a transaction of its own: nothing else for a unit of work that only audits.
    assert len(statements) == 2, statements.statements
    staged, numbering = statements.statements[1].split("COMMIT", 1)
    assert "audit_stage(" in staged and "audit_sequence_after_commit(" in numbering


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


# -- tenants exist when an administrator creates them -----------------------------------------

SUBMIT = """mutation Submit($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code message field } }
}"""


@pytest.fixture
def strict(services):
    """Services of a deployment where tenants are created by an administrator only."""
    return dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, tenants_on_first_use=False)
    )


async def trail_of(tenant: str) -> list[str]:
    rows = await sql.fetch(
        "SELECT action FROM audit_event WHERE tenant_id = $1 ORDER BY seq", tenant
    )
    return [r["action"] for r in rows]


async def test_a_change_in_an_unknown_tenant_is_refused_and_changes_nothing(tenant, strict):
    with pytest.raises(DomainError) as refused:
        async with unit_of_work(Actor(Principal("alice", tenant)), strict) as uow:
            uow.record("test.first")
    assert refused.value.code == ErrorCode.UNKNOWN_TENANT
    assert not await tenant_exists(tenant)
    assert await trail_of(tenant) == []
    assert tenant not in KNOWN_TENANTS


async def test_an_administrator_creates_the_tenant_once_and_it_is_audited(tenant, strict):
    record, created = await create_tenant(strict, tenant, "Acme Corp")
    assert created and record.name == "Acme Corp"
    again, created_again = await create_tenant(strict, tenant, "Other name")
    assert not created_again and again.id == tenant
    assert await trail_of(tenant) == ["tenant.created"]
    async with unit_of_work(Actor(Principal("alice", tenant)), strict) as uow:
        uow.record("test.first")
    assert await trail_of(tenant) == ["tenant.created", "test.first"]
    assert tenant in [t.id for t in await list_tenants(strict)]


@pytest.mark.parametrize("bad", ["", "Acme", "a b", "-x", "x" * 64, "a'b"])
async def test_a_tenant_id_of_the_wrong_shape_is_invalid_input(strict, bad):
    with pytest.raises(DomainError) as refused:
        await create_tenant(strict, bad)
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert refused.value.field == "id"


async def test_graphql_answers_a_typed_error_for_an_unknown_tenant(app_client, settings, tenant):
    async with app_client(tenants_on_first_use=False) as http:
        token = mint_token(settings, user_id="alice", tenant_id=tenant)
        response = await http.post(
            "/graphql",
            json={
                "query": SUBMIT,
                "variables": {
                    "input": {"templateKey": "change-approval", "title": "x", "payload": {}}
                },
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert response.status_code == 200, body
    codes = (
        [e["code"] for e in body["data"]["submitItem"]["errors"]]
        if body.get("data")
        else [e["extensions"]["code"] for e in body["errors"]]
    )
    assert codes == ["UNKNOWN_TENANT"], body
    assert not await tenant_exists(tenant)


def test_the_command_line_creates_and_lists_tenants(settings, tenant):
    env = {
        "SIGNOFF_DATABASE_URL": settings.database_url,
        "SIGNOFF_REDIS_URL": settings.redis_url,
        "SIGNOFF_ENVIRONMENT": "development",
    }
    created = signoff("tenants", "create", tenant, "--name", "Acme", **env)
    assert created.returncode == 0, created.stderr
    assert f"created: {tenant} (Acme)" in created.stdout
    assert f"exists: {tenant}" in signoff("tenants", "create", tenant, **env).stdout
    assert tenant in signoff("tenants", "list", **env).stdout
    refused = signoff("tenants", "create", "Not A Tenant", **env)
    assert refused.returncode != 0 and "INVALID_INPUT" in refused.stderr
