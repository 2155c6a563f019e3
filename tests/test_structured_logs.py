"""Structured logs of a production server (`signoff serve` in a subprocess): JSON lines, each
with the request id, tenant and operation; one line for a refused request and no traceback;
with the access log on, one line per operation with its duration."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.testing import child_environment, free_port, signoff_processes
from tests.api.test_fuzz import production_token
from tests.conftest import RUN_ID, TEST_SECRET, actor

REPO = Path(__file__).resolve().parents[1]
DEMO_TEMPLATES = REPO / "backend" / "signoff" / "demo"


def _lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    assert "Traceback" not in text, text
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return lines


async def test_production_logs_are_json_lines_with_request_tenant_and_operation(
    database_url: str, redis_url: str, settings: Any, tmp_path: Path
):
    tenant = f"logs{uuid.uuid4().hex[:8]}"
    await load_templates(
        actor(tenant, "admin", "admin"), ServiceContext(settings=settings), DEMO_TEMPLATES
    )
    port = free_port()
    env = child_environment(
        SIGNOFF_ENVIRONMENT="production",
        SIGNOFF_JWT_SECRET=TEST_SECRET,
        SIGNOFF_DATABASE_URL=database_url,
        SIGNOFF_REDIS_URL=redis_url,
        SIGNOFF_REDIS_PREFIX=f"signoff-test-{RUN_ID}-logs",
        SIGNOFF_PORT=str(port),
        SIGNOFF_DB_POOL_MIN="1",
        SIGNOFF_DB_POOL_MAX="2",
        SIGNOFF_ACCESS_LOG="true",
    )
    url = f"http://127.0.0.1:{port}"
    async with (
        signoff_processes({"serve": ["serve"]}, env, tmp_path, [f"{url}/healthz"]),
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        refused = await http.post(
            "/graphql",
            json={"query": "query Mine { inbox(first: 1) { totalCount } }"},
            headers={"Authorization": "Bearer not-a-token", "X-Request-Id": "req-refused-1"},
        )
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        answered = await http.post(
            "/graphql",
            json={"query": "query Mine { inbox(first: 1) { totalCount } }"},
            headers={
                "Authorization": f"Bearer {production_token(tenant, 'bob')}",
                "X-Request-Id": "req-answered-1",
            },
        )
        assert "errors" not in answered.json(), answered.json()

    lines = _lines(tmp_path / "serve.log")
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in lines)
    about_refused = [e for e in lines if e["request_id"] == "req-refused-1"]
    warnings = [e for e in about_refused if e["level"] == "WARNING"]
    assert len(warnings) == 1, about_refused
    assert "UNAUTHENTICATED" in warnings[0]["message"]
    (operation,) = [
        e
        for e in lines
        if e["request_id"] == "req-answered-1" and e["logger"] == "signoff.operations"
    ]
    assert operation["tenant"] == tenant
    assert operation["operation"] == "Mine"
    assert isinstance(operation["duration_ms"], float) and operation["duration_ms"] > 0
    assert operation["errors"] == 0
