"""A newcomer's first look, in a real browser: `signoff dev` (API and worker in one process, on
the test's PostgreSQL and Redis) serves the console it finds built at the root, with its demo
data. bob signs in with one click as a demo user, approves the demo item, and watches alice's
new request arrive live; alice, signed in with one click too, finds both under "My requests".
GraphiQL, opened from the console, draws its editor from the package's own files with every
request outside the server refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from signoff.settings import Settings
from signoff.testing import child_environment, free_port, signoff_processes
from tests.console.conftest import ARTIFACTS, STARTUP_TIMEOUT, new_context, new_page, submit

DEMO_ITEM = "Roll out payments service v2.3 to production"  # signoff/demo_data.py


async def _demo_tokens(http: httpx.AsyncClient, base: str) -> dict[str, str]:
    """The demo users' tokens, once `signoff dev` has seeded its demo data."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while True:
        users = (await http.get(f"{base}/dev/demo-users")).json()["users"]
        if users:
            return {u["user"]: u["token"] for u in users}
        assert loop.time() < deadline, "signoff dev did not seed its demo data:\n" + "\n".join(
            (ARTIFACTS / "dev.log").read_text(errors="replace").splitlines()[:60]
        )
        await asyncio.sleep(0.2)  # waiting for a real process to seed


@pytest.mark.timeout(600)
async def test_signoff_dev_opens_a_console_where_demo_users_sign_in_with_one_click(
    settings: Settings, owner_database_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_environment(
        SIGNOFF_ENVIRONMENT="development",
        SIGNOFF_DATABASE_URL=settings.database_url,
        SIGNOFF_MIGRATION_DATABASE_URL=owner_database_url,
        SIGNOFF_REDIS_URL=settings.redis_url,
        # a queue of its own: its worker runs this test's jobs only, not those other tests of
        # this process left queued (a failed run's log showed it running other tenants' audit
        # exports while its seeding never finished)
        SIGNOFF_REDIS_PREFIX=f"{settings.redis_prefix}-dev-console",
        SIGNOFF_DATA_DIR=str(tmp_path),
        # the worker in real time fires the demo tenant's timers only, not other tests'
        SIGNOFF_TIMER_TENANTS="demo",
    )
    commands = {"dev": ["dev", "--port", str(port)]}
    async with (
        signoff_processes(commands, env, ARTIFACTS, [f"{base}/readyz"], timeout=STARTUP_TIMEOUT),
        httpx.AsyncClient(timeout=30) as http,
    ):
        tokens = await _demo_tokens(http, base)
        context = await new_context(chromium)
        outside: list[str] = []

        async def local_only(route: Any) -> None:
            if urlsplit(route.request.url).netloc == f"127.0.0.1:{port}":
                await route.continue_()
            else:
                outside.append(route.request.url)
                await route.abort()

        await context.route("**/*", local_only)
        page = await new_page(context)

        # the root opens the console; bob signs in with one click and finds the demo item
        await page.goto(base)
        assert urlsplit(page.url).path == "/console/", page.url
        await page.get_by_role("button", name="Sign in as bob").click()
        await expect(page.get_by_test_id("user")).to_have_text("bob")
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await expect(page.get_by_role("link", name=DEMO_ITEM)).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "18-dev-demo-inbox.png")

        # he approves it, and it leaves his inbox
        await page.get_by_role("link", name=DEMO_ITEM).click()
        await expect(page.get_by_test_id("item")).to_have_attribute("data-state", "PENDING")
        review = page.get_by_test_id("actions-review")
        await review.get_by_role("button", name="Approve").click()
        await expect(page.get_by_test_id("item")).to_have_attribute("data-state", "APPROVED")
        await page.get_by_role("link", name="Inbox").click()
        await expect(page.get_by_test_id("inbox-empty")).to_be_visible()

        # alice's new request arrives live
        title = "Rotate the payments signing key"
        item_id = await submit(http, base, tokens["alice"], title)
        await expect(page.locator(f"tr[data-item-id='{item_id}']")).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "19-dev-live-request.png")

        # alice signs in with one click: her requests, one approved, one pending
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_role("button", name="Sign in as alice").click()
        await expect(page.get_by_test_id("user")).to_have_text("alice")
        await page.get_by_role("link", name="My requests").click()
        requests = page.locator("[data-testid=requests] tbody tr")
        await expect(requests).to_have_count(2)
        await expect(requests.filter(has_text=DEMO_ITEM)).to_contain_text("approved")
        await expect(requests.filter(has_text=title)).to_contain_text("pending")

        # GraphiQL, from the console's link, works from the server's own files
        async with context.expect_page() as opened:
            await page.get_by_role("link", name="GraphiQL").click()
        graphiql = await opened.value
        await expect(graphiql.locator(".graphiql-container")).to_be_visible()
        await expect(graphiql.locator(".graphiql-query-editor")).to_be_visible()
        await graphiql.screenshot(path=ARTIFACTS / "20-dev-graphiql.png")
        assert outside == [], f"requests outside the server: {outside}"
