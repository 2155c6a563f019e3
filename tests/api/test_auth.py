"""Bearer tokens over HTTP: a valid token works; every kind of bad token is refused clearly."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signoff.api.auth import TokenVerifier
from signoff.db import sql
from signoff.domain.errors import DomainError, ErrorCode

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code message } }
}"""

VIEWER = "{ viewer { userId tenantId roles } }"

SUBMIT_VARS = {
    "input": {
        "templateKey": "change-approval",
        "title": "Deploy payments",
        "payload": {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"},
    }
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(settings, tenant_id: str, **overrides: Any) -> dict[str, Any]:
    """Valid claims for `tenant_id`; an override of None drops that claim."""
    now = int(time.time())
    base = {
        "sub": "alice",
        "tenant": tenant_id,
        "roles": [],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned_token(payload: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{header}.{body}."


async def item_count(tenant: str) -> int:
    row = await sql.fetchrow("SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", tenant)
    assert row is not None
    return int(row["n"])


async def assert_refused(gql, token: str | None, reason: str) -> None:
    """The submit is refused with 401 + UNAUTHENTICATED naming `reason`, and nothing changed."""
    before = await item_count(gql.tenant)
    response = await gql.run(SUBMIT, SUBMIT_VARS, token=token)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert reason in error["message"]
    assert await item_count(gql.tenant) == before


async def test_valid_token_works(gql, demo_templates):
    response = await gql.run(VIEWER, token=gql.token("alice", "reviewer"))
    assert response.status_code == 200
    viewer = response.json()["data"]["viewer"]
    assert viewer == {"userId": "alice", "tenantId": gql.tenant, "roles": ["reviewer"]}
    response = await gql.run(SUBMIT, SUBMIT_VARS, token=gql.token("alice"))
    assert response.json()["data"]["submitItem"]["errors"] == []
    assert await item_count(gql.tenant) == 1


async def test_no_token(gql, demo_templates):
    await assert_refused(gql, None, "missing bearer token")


async def test_non_bearer_scheme(gql, client, demo_templates):
    response = await client.post(
        "/graphql",
        json={"query": VIEWER},
        headers={"Authorization": f"Basic {gql.token('alice')}"},
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_signature(gql, settings, demo_templates):
    token = jwt.encode(
        claims(settings, gql.tenant), "another-secret-that-is-also-32-bytes-long", "HS256"
    )
    await assert_refused(gql, token, "signature invalid")


async def test_tampered_claims(gql, demo_templates):
    header, body, signature = gql.token("alice").split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["roles"] = ["admin"]
    forged = f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"
    await assert_refused(gql, forged, "signature invalid")


async def test_expired_token(gql, settings, demo_templates):
    past = int(time.time()) - settings.jwt_leeway_seconds - 60
    token = jwt.encode(
        claims(settings, gql.tenant, iat=past - 600, exp=past), settings.jwt_secret, "HS256"
    )
    await assert_refused(gql, token, "expired")


async def test_expiry_within_leeway_is_accepted(gql, settings, demo_templates):
    just_past = int(time.time()) - settings.jwt_leeway_seconds // 2
    token = jwt.encode(claims(settings, gql.tenant, exp=just_past), settings.jwt_secret, "HS256")
    response = await gql.run(VIEWER, token=token)
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["userId"] == "alice"


async def test_alg_none(gql, settings, demo_templates):
    await assert_refused(gql, unsigned_token(claims(settings, gql.tenant)), "algorithm")


async def test_wrong_audience(gql, settings, demo_templates):
    token = jwt.encode(claims(settings, gql.tenant, aud="someone-else"), settings.jwt_secret)
    await assert_refused(gql, token, "audience")


async def test_wrong_issuer(gql, settings, demo_templates):
    token = jwt.encode(
        claims(settings, gql.tenant, iss="https://evil.example"), settings.jwt_secret
    )
    await assert_refused(gql, token, "issuer")


async def test_missing_tenant(gql, settings, demo_templates):
    token = jwt.encode(claims(settings, gql.tenant, tenant=None), settings.jwt_secret)
    await assert_refused(gql, token, "'tenant'")


@pytest.mark.parametrize("claimed", ["", "a b", "x'; --", "t" * 201, "é"])
async def test_a_tenant_that_is_not_a_tenant_id(gql, settings, demo_templates, claimed):
    token = jwt.encode(claims(settings, gql.tenant, tenant=claimed), settings.jwt_secret)
    await assert_refused(gql, token, "'tenant'")


@pytest.mark.parametrize("sub", ["", "   "])
async def test_an_empty_subject(gql, settings, demo_templates, sub):
    token = jwt.encode(claims(settings, gql.tenant, sub=sub), settings.jwt_secret)
    await assert_refused(gql, token, "'sub'")


async def test_missing_exp(gql, settings, demo_templates):
    token = jwt.encode(claims(settings, gql.tenant, exp=None), settings.jwt_secret)
    await assert_refused(gql, token, "'exp'")


async def test_malformed_token(gql, demo_templates):
    await assert_refused(gql, "not-a-jwt", "malformed")


async def test_rs256_token_refused_when_hs256_configured(gql, settings, rsa_key, demo_templates):
    token = jwt.encode(claims(settings, gql.tenant), rsa_key, algorithm="RS256")
    await assert_refused(gql, token, "algorithm")


def test_rs256_configuration_verifies_rs256(settings, rsa_key):
    rs_settings = dataclasses.replace(
        settings, jwt_algorithms=("RS256",), jwt_secret="", jwt_public_key=public_pem(rsa_key)
    )
    rs_settings.validate()
    verifier = TokenVerifier(rs_settings)
    token = jwt.encode(claims(settings, "acme", roles=["admin"]), rsa_key, algorithm="RS256")
    principal = verifier.verify(token)
    assert principal.user_id == "alice"
    assert principal.tenant_id == "acme"
    assert principal.roles == frozenset({"admin"})


def test_rs256_configuration_refuses_key_confusion(settings, rsa_key):
    """An HS256 token whose HMAC secret is the public key PEM must not pass as RS256."""
    pem = public_pem(rsa_key)
    rs_settings = dataclasses.replace(
        settings, jwt_algorithms=("RS256",), jwt_secret="", jwt_public_key=pem
    )
    verifier = TokenVerifier(rs_settings)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims(settings, "acme")).encode())
    signing_input = f"{header}.{body}".encode()
    signature = b64url(hmac.new(pem.encode(), signing_input, hashlib.sha256).digest())
    forged = f"{header}.{body}.{signature}"
    with pytest.raises(DomainError) as refused:
        verifier.verify(forged)
    assert refused.value.code == ErrorCode.UNAUTHENTICATED
    assert "algorithm" in refused.value.message


def test_rs256_configuration_refuses_other_key(settings, rsa_key):
    rs_settings = dataclasses.replace(
        settings, jwt_algorithms=("RS256",), jwt_secret="", jwt_public_key=public_pem(rsa_key)
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(settings, "acme"), other, algorithm="RS256")
    with pytest.raises(DomainError) as refused:
        TokenVerifier(rs_settings).verify(token)
    assert refused.value.code == ErrorCode.UNAUTHENTICATED
    assert "signature" in refused.value.message


async def test_concurrent_requests_each_get_their_own_status(gql, demo_templates):
    """A 401 set by one request's resolver never reaches another request's answer: the
    sub-response a resolver writes to is the request's own, however requests interleave."""
    token = gql.token("alice")

    async def one(i: int) -> tuple[bool, Any]:
        signed = i % 2 == 0
        response = await gql.run(SUBMIT, SUBMIT_VARS, token=token if signed else None)
        return signed, response

    results = await asyncio.gather(*(one(i) for i in range(40)))
    for signed, response in results:
        if signed:
            assert response.status_code == 200, response.text
            assert response.json()["data"]["submitItem"]["errors"] == []
        else:
            assert response.status_code == 401, response.text
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await item_count(gql.tenant) == 20
