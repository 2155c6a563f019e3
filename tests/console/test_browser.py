"""The reference reviewer console in a real browser (Debian's Chromium, driven by Playwright)
against a real `signoff serve`, a `signoff worker`, PostgreSQL, Redis and an SMTP server.

bob signs in; alice's new item appears in his inbox live; his connection drops (a proxy between
the browser and the API cuts every socket and refuses new ones) while alice submits two more,
and once it is back each of them is there exactly once; he opens an item, sees its step graph,
approves it and it leaves his inbox; approving it again from a tab loaded before the approval
shows the typed error in words.

alice watches "My requests": her new request appears without a reload. carol, mailed about it,
opens the decision link of the mail (as the SMTP server received it) and lands on the console's
confirmation page, which decides nothing until she confirms; then the step is hers, approved,
with its audit events, alice's list shows it approved live, and the used link says so in words.
Screenshots go to console/artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import shutil
from typing import Any

import httpx
import pytest

from signoff.api.auth import mint_token
from signoff.settings import Settings
from tests.conftest import Mailbox
from tests.console.conftest import (
    ARTIFACTS,
    CHROMIUM,
    REPO,
    UI_TIMEOUT_MS,
    graphql,
    launch,
    new_page,
    submit,
)

UPSERT_PROFILE = """
mutation($input: UserProfileInput!) {
  upsertUserProfile(input: $input) { profile { userId } errors { code message } }
}"""
DECIDED = """
query($id: ID!) {
  item(id: $id) {
    state
    steps { stepState decisions { outcome actor { userId } } }
    auditEvents(last: 50) { nodes { action actorId } }
  }
}"""
APPROVE_LINK = re.compile(r"^Approve: (\S+)", re.MULTILINE)


class CuttableProxy:
    """A TCP proxy in front of the API that can drop the connection: `cut()` closes every
    socket through it and refuses new ones until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = True
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.writers -= {writer, up_writer}

    def cut(self) -> None:
        self.open = False
        for writer in list(self.writers):
            writer.transport.abort()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.timeout(600)
async def test_a_reviewer_works_the_inbox_live_across_a_dropped_connection(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any
) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    bob = mint_token(
        settings,
        user_id="bob",
        tenant_id=tenant,
        roles=["change-approver"],
        groups=["change-managers"],
    )
    alice = mint_token(
        settings, user_id="alice", tenant_id=tenant, roles=["requester"], groups=["engineering"]
    )
    proxy = CuttableProxy(int(deployment.rsplit(":", 1)[1]))
    await proxy.start()
    console = f"http://127.0.0.1:{proxy.port}/console/"
    async with async_playwright() as pw, httpx.AsyncClient(timeout=30) as http:
        browser = await launch(pw)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = await new_page(context)
            page.on("websocket", lambda ws: print(f"websocket: {ws.url}"))

            async def sign_in(tab: Any) -> None:
                await tab.get_by_label("Bearer token").fill(bob)
                await tab.get_by_role("button", name="Sign in with token").click()
                await expect(tab.get_by_test_id("user")).to_have_text("bob")
                await expect(tab.get_by_test_id("live-status")).to_have_text("live")

            await page.goto(console)
            await sign_in(page)
            await expect(page.get_by_test_id("inbox-empty")).to_be_visible()
            rows = page.locator("[data-testid=inbox] tbody tr")

            # alice's new item appears live
            first = await submit(http, deployment, alice, "Live: payments v2.4")
            await expect(page.locator(f"tr[data-item-id='{first}']")).to_be_visible()
            await expect(rows).to_have_count(1)
            await page.screenshot(path=ARTIFACTS / "1-live-item.png")

            # the connection drops; two items arrive meanwhile; both appear once it is back
            proxy.cut()
            await expect(page.get_by_test_id("live-status")).to_have_text("reconnecting")
            second = await submit(http, deployment, alice, "Offline: billing v7")
            third = await submit(http, deployment, alice, "Offline: search v3")
            await page.screenshot(path=ARTIFACTS / "2-offline.png")
            await expect(rows).to_have_count(1)
            proxy.restore()
            await expect(page.get_by_test_id("live-status")).to_have_text("live")
            for item_id in (second, third):
                await expect(page.locator(f"tr[data-item-id='{item_id}']")).to_have_count(1)
            await expect(rows).to_have_count(3)
            await page.screenshot(path=ARTIFACTS / "3-back-online.png")

            # a second tab with the item, loaded before the approval
            stale = await context.new_page()
            await stale.goto(f"{console}item/{first}")
            await sign_in(stale)
            await expect(stale.get_by_test_id("step-review")).to_contain_text("active")

            # bob opens the item, sees its graph, approves it
            await page.get_by_role("link", name="Live: payments v2.4").click()
            await expect(page.get_by_test_id("item")).to_have_attribute("data-state", "PENDING")
            await expect(page.locator("[data-testid=diagram] svg")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "4-item.png", full_page=True)
            await (
                page.get_by_test_id("actions-review").get_by_role("button", name="Approve").click()
            )
            await expect(page.get_by_test_id("item")).to_have_attribute("data-state", "APPROVED")
            await expect(page.get_by_test_id("step-review")).to_contain_text("bob: approve")
            await page.screenshot(path=ARTIFACTS / "5-approved.png", full_page=True)

            # it has left his inbox
            await page.get_by_role("link", name="Inbox").click()
            await expect(rows).to_have_count(2)
            await expect(page.locator(f"tr[data-item-id='{first}']")).to_have_count(0)

            # the stale tab hears of the change, and approving again is refused in words
            await expect(stale.get_by_test_id("item-changed")).to_be_visible()
            await (
                stale.get_by_test_id("actions-review").get_by_role("button", name="Approve").click()
            )
            alert = stale.get_by_test_id("actions-review").get_by_role("alert")
            await expect(alert).to_be_visible()
            code = await alert.locator("[data-code]").get_attribute("data-code")
            assert code in ("ALREADY_DECIDED", "ILLEGAL_TRANSITION"), code
            words = {
                "ALREADY_DECIDED": "This step was already decided.",
                "ILLEGAL_TRANSITION": "This is not possible in the current state.",
            }[code]
            await expect(alert).to_contain_text(words)
            await stale.screenshot(path=ARTIFACTS / "6-approved-twice.png", full_page=True)
        finally:
            await browser.close()
            await proxy.close()


@pytest.mark.timeout(600)
async def test_a_tab_refused_by_the_socket_cap_goes_live_once_a_seat_frees(
    deploy: Any, settings: Settings, tenant: str, demo_templates: Any
) -> None:
    """bob may hold one socket: his second tab's socket is refused by the cap (close 4429,
    which the graphql-ws client would take as final); it keeps retrying, and once the first
    tab is closed it goes live and its inbox updates live."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    bob = mint_token(settings, user_id="bob", tenant_id=tenant, roles=["change-approver"])
    alice = mint_token(settings, user_id="alice", tenant_id=tenant, roles=["requester"])
    async with (
        deploy(SIGNOFF_WS_MAX_SOCKETS_PER_USER="1") as base,
        async_playwright() as pw,
        httpx.AsyncClient(timeout=30) as http,
    ):
        browser = await launch(pw)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            tabs = [await new_page(context), await new_page(context)]
            for tab in tabs:
                await tab.goto(f"{base}/console/")
                await tab.get_by_label("Bearer token").fill(bob)
            first, second = tabs
            await first.get_by_role("button", name="Sign in with token").click()
            await expect(first.get_by_test_id("live-status")).to_have_text("live")

            # the second tab's socket is refused: the first holds bob's one seat (the listener
            # is there before the socket opens: a refusal can end it before any later wait)
            refused = asyncio.Event()
            second.on("websocket", lambda ws: ws.on("close", lambda _: refused.set()))
            await second.get_by_role("button", name="Sign in with token").click()
            await asyncio.wait_for(refused.wait(), UI_TIMEOUT_MS / 1000)
            await expect(second.get_by_test_id("live-status")).not_to_have_text("live")

            await first.close()  # the seat frees as the server sees the socket end
            await expect(second.get_by_test_id("live-status")).to_have_text("live")
            await expect(second.get_by_test_id("inbox-empty")).to_be_visible()
            item_id = await submit(http, base, alice, "After the cap: ledger v3")
            await expect(second.locator(f"tr[data-item-id='{item_id}']")).to_be_visible()
        finally:
            await browser.close()


async def _mail_to(box: Mailbox, address: str, title: str) -> email.message.EmailMessage:
    """The first mail to `address` about `title` (waiting for the worker to send it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UI_TIMEOUT_MS / 1000
    while True:
        for message in box.messages:
            to = [a.addr_spec for a in message["To"].addresses]
            if address in to and title in str(message["Subject"]):
                return message
        assert loop.time() < deadline, f"no mail to {address} about {title!r}"
        await asyncio.sleep(0.2)  # waiting for a real worker to deliver over SMTP


@pytest.mark.timeout(600)
async def test_requests_update_live_and_an_emailed_decision_link_decides_only_when_confirmed(
    deployment: str,
    settings: Settings,
    tenant: str,
    demo_templates: Any,
    smtp: tuple[Mailbox, int],
) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    box, _ = smtp
    admin = mint_token(settings, user_id="admin", tenant_id=tenant, roles=["admin"])
    alice = mint_token(
        settings, user_id="alice", tenant_id=tenant, roles=["requester"], groups=["engineering"]
    )
    async with async_playwright() as pw, httpx.AsyncClient(timeout=30) as http:
        # carol reviews changes and reads her mail at carol@example.org
        profile = {
            "userId": "carol",
            "displayName": "Carol C.",
            "roles": ["change-approver"],
            "addresses": [{"channel": "email", "address": "carol@example.org"}],
        }
        upserted = await graphql(http, deployment, admin, UPSERT_PROFILE, {"input": profile})
        assert upserted["upsertUserProfile"]["errors"] == []
        browser = await launch(pw)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = await new_page(context)

            # alice watches her requests; a new one appears without a reload
            await page.goto(f"{deployment}/console/requests")
            await page.get_by_label("Bearer token").fill(alice)
            await page.get_by_role("button", name="Sign in with token").click()
            await expect(page.get_by_test_id("live-status")).to_have_text("live")
            await expect(page.get_by_test_id("requests-empty")).to_be_visible()
            title = "Linked: ledger v9"
            item_id = await submit(http, deployment, alice, title)
            row = page.locator(f"tr[data-item-id='{item_id}']")
            await expect(row).to_be_visible()
            await expect(row).to_contain_text("pending")
            await page.screenshot(path=ARTIFACTS / "7-request-live.png")

            # carol's mail, as the SMTP server received it, carries the link
            mail = await _mail_to(box, "carol@example.org", title)
            text = mail.get_body(("plain",)).get_content()
            found = APPROVE_LINK.search(text)
            assert found is not None, text
            link = found.group(1)
            assert link.startswith(f"{deployment}/decide/"), link

            # opening it shows the console's confirmation page, and decides nothing
            tab = await new_page(await browser.new_context())
            await tab.goto(link)
            assert "/console/decide?token=" in tab.url, tab.url
            decide = tab.get_by_test_id("decide")
            await expect(decide).to_have_attribute("data-state", "open")
            await expect(tab.get_by_test_id("decide-item")).to_contain_text(title)
            await expect(tab.get_by_test_id("decide-step")).to_contain_text("Change review")
            await expect(decide).to_contain_text("Carol C.")
            await tab.screenshot(path=ARTIFACTS / "8-decision-link.png")
            before = (await graphql(http, deployment, alice, DECIDED, {"id": item_id}))["item"]
            assert before["state"] == "PENDING" and before["steps"][0]["decisions"] == []

            # confirming decides, as carol, audited with the link's use
            await tab.get_by_role("button", name="Approve").click()
            await expect(decide).to_have_attribute("data-state", "decided")
            await expect(tab.get_by_test_id("decide-done")).to_contain_text("approved")
            await tab.screenshot(path=ARTIFACTS / "9-decided-by-link.png")
            after = (await graphql(http, deployment, alice, DECIDED, {"id": item_id}))["item"]
            assert after["state"] == "APPROVED"
            decisions = after["steps"][0]["decisions"]
            assert [(d["outcome"], d["actor"]["userId"]) for d in decisions] == [
                ("APPROVE", "carol")
            ]
            events = [(e["action"], e["actorId"]) for e in after["auditEvents"]["nodes"]]
            assert ("step.approve", "carol") in events
            assert ("decision_link.used", "carol") in events

            # alice's list shows it approved, live; the used link says so in words
            await expect(row).to_contain_text("approved")
            await tab.goto(link)
            await expect(decide).to_have_attribute("data-state", "used")
            await expect(decide.get_by_role("alert")).to_contain_text(
                "This decision link was already used."
            )
            await tab.screenshot(path=ARTIFACTS / "10-link-used.png")
        finally:
            await browser.close()


def test_the_chromium_named_by_ci_is_the_one_tested() -> None:
    """`.ci/run` installs Debian's chromium at the path this test drives."""
    ci = (REPO / ".ci" / "run").read_text()
    assert "chromium" in ci and "SIGNOFF_REQUIRE_BROWSER=1" in ci
    assert shutil.which("chromium") in (None, CHROMIUM)
