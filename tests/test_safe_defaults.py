"""Safe by default: `serve` and `worker` need an explicit environment and key material of their
own, `dev` stays on loopback, and production hides the schema (introspection, suggestions)."""

from __future__ import annotations

import time

import jwt
import pytest

from signoff.api.auth import TokenVerifier
from signoff.cli import DEVELOPMENT_JWT_SECRET
from signoff.settings import Settings
from tests.conftest import TEST_SECRET
from tests.test_cli import SECRET, signoff

URLS = {"SIGNOFF_DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "SIGNOFF_REDIS_URL": "redis://x"}


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_an_implicit_environment(command):
    result = signoff(command, SIGNOFF_JWT_SECRET=SECRET, **URLS)
    assert result.returncode != 0
    assert "SIGNOFF_ENVIRONMENT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_without_a_key(command, environment):
    result = signoff(command, SIGNOFF_ENVIRONMENT=environment, **URLS)
    assert result.returncode != 0
    assert "SIGNOFF_JWT_SECRET" in result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_the_development_secret(command):
    result = signoff(
        command,
        SIGNOFF_ENVIRONMENT="production",
        SIGNOFF_JWT_SECRET=DEVELOPMENT_JWT_SECRET,
        **URLS,
    )
    assert result.returncode != 0
    assert "development secret" in result.stderr


def test_production_refuses_a_short_secret():
    result = signoff("serve", SIGNOFF_ENVIRONMENT="production", SIGNOFF_JWT_SECRET="short", **URLS)
    assert result.returncode != 0
    assert "32 bytes" in result.stderr


def test_dev_refuses_to_listen_beyond_loopback():
    result = signoff("dev", SIGNOFF_ENVIRONMENT="development", SIGNOFF_HOST="0.0.0.0", **URLS)
    assert result.returncode != 0
    assert "loopback" in result.stderr


def test_development_secret_signs_nothing_a_configured_server_accepts():
    """A token minted with the public development secret is refused by the test deployment."""
    claims = {
        "sub": "mallory",
        "tenant": "t",
        "roles": ["admin"],
        "iss": "signoff-dev",
        "aud": "signoff",
        "exp": int(time.time()) + 60,
    }
    forged = jwt.encode(claims, DEVELOPMENT_JWT_SECRET, algorithm="HS256")
    with pytest.raises(Exception, match="signature"):
        TokenVerifier(Settings(jwt_secret=TEST_SECRET)).verify(forged)


def production_token(settings, user: str, *roles: str) -> str:
    claims = {
        "sub": user,
        "tenant": "prod-tenant",
        "roles": list(roles),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


INTROSPECT = "{ __schema { queryType { name } } }"


@pytest.mark.parametrize("who", [None, "reviewer", "admin"])
async def test_production_serves_no_introspection(app_client, settings, who):
    async with app_client(environment="production") as http:
        headers = {}
        if who:
            headers["Authorization"] = f"Bearer {production_token(settings, who, who)}"
        body = (await http.post("/graphql", json={"query": INTROSPECT}, headers=headers)).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("who", "served"), [(None, False), ("reviewer", False), ("admin", True)])
async def test_introspection_for_admins_only(app_client, settings, who, served):
    async with app_client(environment="production", introspection="admins") as http:
        headers = {}
        if who:
            headers["Authorization"] = f"Bearer {production_token(settings, who, who)}"
        body = (await http.post("/graphql", json={"query": INTROSPECT}, headers=headers)).json()
    if served:
        assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "query",
    [
        "{ viewr { userId } }",
        "{ inbox(frist: 5) { totalCount } }",
        "{ inbox(sort: {field: PRIORITYY}) { totalCount } }",
        "query($f: InboxFiltr) { inbox(filter: $f) { totalCount } }",
    ],
)
async def test_production_gives_no_suggestions(app_client, query):
    async with app_client(environment="production") as http:
        body = (await http.post("/graphql", json={"query": query})).json()
    messages = " ".join(e["message"] for e in body["errors"])
    assert "Did you mean" not in messages
    assert "viewer" not in messages and "first" not in messages and "PRIORITY " not in messages


async def test_development_still_suggests(client):
    body = (await client.post("/graphql", json={"query": "{ viewr { userId } }"})).json()
    assert "Did you mean" in body["errors"][0]["message"]


@pytest.mark.parametrize("command", ["serve", "worker", "dev"])
def test_a_bad_channel_configuration_stops_start_up_with_one_line_per_problem(command):
    channels = '{"webhook": {"timeout": "x"}, "nope": {}}'
    result = signoff(
        command,
        SIGNOFF_ENVIRONMENT="development",
        SIGNOFF_JWT_SECRET=SECRET,
        SIGNOFF_NOTIFY_CHANNELS=channels,
        **URLS,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "plugin 'webhook', channel 'webhook', field 'timeout': unknown field" in result.stderr
    assert "channel 'nope': no plugin provides it" in result.stderr


def test_channel_configuration_that_is_not_json_is_one_line():
    result = signoff(
        "worker",
        SIGNOFF_ENVIRONMENT="development",
        SIGNOFF_JWT_SECRET=SECRET,
        SIGNOFF_NOTIFY_CHANNELS="{not json",
        **URLS,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "SIGNOFF_NOTIFY_CHANNELS is not valid JSON" in result.stderr
