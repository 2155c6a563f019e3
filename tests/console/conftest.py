"""What the console's browser tests share: a real `signoff serve` and `signoff worker` serving the
console build (`deploy`, `deployment`), Debian's Chromium (`launch`, `new_page`), and the API
as a test calls it beside the browser (`graphql`, `submit`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.api.auth import mint_token
from signoff.settings import Settings
from signoff.testing import child_environment, free_port, signoff_processes
from tests.conftest import Mailbox

REPO = Path(__file__).resolve().parents[2]
CONSOLE_BUILD = REPO / "console" / "dist"
ARTIFACTS = REPO / "console" / "artifacts"
CHROMIUM = os.environ.get("SIGNOFF_CHROMIUM", "/usr/bin/chromium")
STARTUP_TIMEOUT = 90.0
UI_TIMEOUT_MS = 60_000
# no calls home: on a closed network they fail, many at a time, at every start
CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code message } }
}"""


def require_browser() -> None:
    """Skip without Chromium or a console build, unless SIGNOFF_REQUIRE_BROWSER is set (CI)."""
    missing = [
        what
        for what, ok in (
            (f"Chromium at {CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).is_file()),
            ("the console build (scripts/console build)", (CONSOLE_BUILD / "index.html").is_file()),
        )
        if not ok
    ]
    if missing:
        reason = "missing " + " and ".join(missing)
        if os.environ.get("SIGNOFF_REQUIRE_BROWSER"):
            pytest.fail(reason + " (SIGNOFF_REQUIRE_BROWSER is set)")
        pytest.skip(reason)


@pytest.fixture
def deploy(settings: Settings, smtp: tuple[Mailbox, int], tenant: str) -> Any:
    """`async with deploy(**more_env) as base:` `signoff serve` (serving the console build) and
    `signoff worker` on the test database, mailing through the test's SMTP server with decision
    links; yields the API's base URL. Their logs go to the artifacts.

    The worker keeps real time, in which every timer other tests left armed (their clocks
    start in January 2026) is long due: it sweeps and fires the timers of this test's tenant
    only, or it would spend the test firing thousands of them beside the API under test."""

    @contextlib.asynccontextmanager
    async def start(**more_env: str) -> AsyncIterator[str]:
        require_browser()
        port = free_port()
        channels = {
            "email": {
                "host": "127.0.0.1",
                "port": smtp[1],
                "from_address": "signoff@example.org",
                "security": "none",
                "timeout_seconds": 5,
            }
        }
        env = child_environment(
            SIGNOFF_ENVIRONMENT=settings.environment,
            SIGNOFF_DATABASE_URL=settings.database_url,
            SIGNOFF_REDIS_URL=settings.redis_url,
            SIGNOFF_REDIS_PREFIX=settings.redis_prefix,
            SIGNOFF_JWT_SECRET=settings.jwt_secret,
            SIGNOFF_HOST="127.0.0.1",
            SIGNOFF_PORT=str(port),
            SIGNOFF_CONSOLE_DIR=str(CONSOLE_BUILD),
            SIGNOFF_TENANTS_ON_FIRST_USE="true",
            SIGNOFF_PUBLIC_URL=f"http://127.0.0.1:{port}",
            SIGNOFF_NOTIFY_CHANNELS=json.dumps(channels),
            SIGNOFF_DECISION_LINK_CHANNELS="email",
            SIGNOFF_TIMER_TENANTS=tenant,
            **more_env,
        )
        base = f"http://127.0.0.1:{port}"
        commands = {"serve": ["serve"], "worker": ["worker"]}
        async with signoff_processes(
            commands, env, ARTIFACTS, [f"{base}/readyz"], timeout=STARTUP_TIMEOUT
        ) as running:
            assert running.processes["worker"].poll() is None, running.log("worker")
            yield base

    return start


@pytest.fixture
async def deployment(deploy: Any) -> AsyncIterator[str]:
    """The deployment of the console tests (`deploy`), as configured by default."""
    async with deploy() as base:
        yield base


async def graphql(
    http: httpx.AsyncClient, base: str, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    answer = await http.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = answer.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def read_item(
    http: httpx.AsyncClient, base: str, token: str, query: str, item_id: str
) -> dict[str, Any]:
    """`query` (of `$id`) answered for `token`: its `item`."""
    item: dict[str, Any] = (await graphql(http, base, token, query, {"id": item_id}))["item"]
    return item


async def submit(
    http: httpx.AsyncClient,
    base: str,
    token: str,
    title: str,
    template: str = "change-approval",
    payload: dict[str, Any] | None = None,
    **more: Any,
) -> str:
    """Submit an item through the API (a change request by default); its global id."""
    if payload is None:
        payload = {"title": title, "system": "payments", "rollback_plan": "redeploy"}
    variables = {"input": {"templateKey": template, "title": title, "payload": payload, **more}}
    submitted = (await graphql(http, base, token, SUBMIT, variables))["submitItem"]
    assert submitted["errors"] == [], submitted
    item_id: str = submitted["item"]["id"]
    return item_id


def minter(settings: Settings, tenant: str) -> Callable[..., str]:
    """`token(user, *roles)`: a bearer token for `user` of `tenant` with `roles`."""

    def token(user: str, *roles: str) -> str:
        return mint_token(settings, user_id=user, tenant_id=tenant, roles=list(roles))

    return token


def audited(item: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """An item's audit events (`auditEvents { nodes { action actorId reason } }`) as
    (action, actor, reason)."""
    return [(e["action"], e["actorId"], e["reason"]) for e in item["auditEvents"]["nodes"]]


async def submit_plan(
    http: httpx.AsyncClient, base: str, token: str, plan: dict[str, Any], summary: str
) -> str:
    """Submit an agent's plan (the `agent-plan` template) through the API; its global id."""
    return await submit(
        http,
        base,
        token,
        plan["title"],
        template="agent-plan",
        payload={"summary": summary},
        plan=plan,
    )


async def launch(pw: Any) -> Any:
    """Debian's Chromium, headless, with no calls home."""
    return await pw.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )


async def new_page(context: Any) -> Any:
    """A tab whose console output, errors and sockets are printed (pytest shows them on failure)."""
    page = await context.new_page()
    # what the page logged, printed by pytest when the test fails
    page.on("console", lambda m: print(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"page error: {e}"))
    # every socket's end, with its last frame from the server (a close code shows there)
    page.on("websocket", watch_socket)
    return page


def watch_socket(ws: Any) -> None:
    """Print the end of `ws` and its errors."""
    ws.on("close", lambda _: print(f"websocket closed: {ws.url}"))
    ws.on("socketerror", lambda error: print(f"websocket error: {ws.url}: {error}"))


async def sign_in(page: Any, token: str, user: str) -> None:
    """Sign in on the console's sign-in page with `token` and wait until the console is live."""
    from playwright.async_api import expect

    await page.get_by_label("Bearer token").fill(token)
    await page.get_by_role("button", name="Sign in with token").click()
    await expect(page.get_by_test_id("user")).to_have_text(user)
    await expect(page.get_by_test_id("live-status")).to_have_text("live")


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium (`launch`), closed after the test; Playwright's expectations wait up
    to UI_TIMEOUT_MS, and the artifacts directory exists for screenshots."""
    from playwright.async_api import async_playwright, expect

    require_browser()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(browser: Any, height: int = 900) -> Any:
    """A browser context (a profile of its own) whose actions wait up to UI_TIMEOUT_MS."""
    context = await browser.new_context(viewport={"width": 1280, "height": height})
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context
