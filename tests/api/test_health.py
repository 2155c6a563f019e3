"""Liveness, readiness and CORS."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from signoff.app import create_app

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_all_ok(client):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ready": True,
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


@pytest.fixture
async def app_without_redis(settings, clock) -> AsyncIterator[Any]:
    """A second app whose Redis cannot be reached, its lifespan entered as conftest's `app`."""
    application = create_app(
        dataclasses.replace(settings, redis_url=UNREACHABLE_REDIS), clock=clock
    )
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with application.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 10)
    yield application
    stop.set()
    await task


async def test_readyz_names_unreachable_redis(app_without_redis):
    transport = httpx.ASGITransport(app=app_without_redis)
    async with httpx.AsyncClient(transport=transport, base_url="http://signoff.test") as c:
        response = await c.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False
        assert body["checks"]["redis"].startswith("unreachable")
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["migrations"] == "ok"
        # liveness does not depend on Redis
        assert (await c.get("/healthz")).status_code == 200


async def test_cors_preflight_for_configured_origin(client):
    response = await client.options(
        "/graphql",
        headers={
            "Origin": "http://inbox.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "http://inbox.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers or allowed_headers == "*"


async def test_cors_preflight_for_other_origin_is_refused(client):
    response = await client.options(
        "/graphql",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code >= 400
    assert response.headers.get("access-control-allow-origin") not in (
        "http://evil.example",
        "*",
    )


async def test_cors_headers_on_actual_request(client, gql):
    ok = await client.post(
        "/graphql",
        json={"query": "{ viewer { userId } }"},
        headers={"Origin": "http://inbox.example", "Authorization": f"Bearer {gql.token('a')}"},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://inbox.example"
    evil = await client.post(
        "/graphql",
        json={"query": "{ viewer { userId } }"},
        headers={"Origin": "http://evil.example", "Authorization": f"Bearer {gql.token('a')}"},
    )
    assert "access-control-allow-origin" not in evil.headers
