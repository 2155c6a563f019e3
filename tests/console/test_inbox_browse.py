"""The inbox's filters, facets, sort and paging, and "Decided by me", in a real browser against a
real `signoff serve`, `signoff worker`, PostgreSQL and Redis.

alice has asked bob for 21 changes and 2 policy exceptions. His inbox shows a page of 20 with
facet counts of all 23; "Load more" brings the other 3, each once. The "high" risk facet leaves
the 2 exceptions, and stays live: of a change and an exception submitted next, only the
exception appears. A title search, and the creation order both ways, show what the API says
they should. "Decided by me" gains an item live when bob decides it elsewhere.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from signoff.api.auth import mint_token
from signoff.settings import Settings
from tests.console.conftest import ARTIFACTS, graphql, new_context, new_page, sign_in, submit

APPROVE = """
mutation($input: DecideStepInput!) {
  approveStep(input: $input) { item { state } errors { code message } }
}"""
STEPS = "query($id: ID!) { item(id: $id) { steps { id } } }"
PAGE_SIZE = 20  # the console's (console/src/pages/Inbox.tsx)


async def _exception(http: httpx.AsyncClient, base: str, token: str, title: str) -> str:
    payload = {"policy": "MFA", "justification": "vendor kiosk", "expires_on": "2027-01-31"}
    return await submit(http, base, token, title, template="exception-request", payload=payload)


@pytest.mark.timeout(600)
async def test_filters_facets_sort_and_paging_of_a_live_inbox_and_history_live(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    bob = mint_token(settings, user_id="bob", tenant_id=tenant, roles=["change-approver"])
    alice = mint_token(settings, user_id="alice", tenant_id=tenant, roles=["requester"])
    async with httpx.AsyncClient(timeout=30) as http:
        # submitted in this order: creation order is this order
        exceptions = [await _exception(http, deployment, alice, f"Exception {c}") for c in "AB"]
        changes = [await submit(http, deployment, alice, f"Change {n:02}") for n in range(1, 22)]
        page = await new_page(await new_context(chromium, height=1000))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, bob, "bob")
        rows = page.locator("[data-testid=inbox] tbody tr")
        summary = page.locator("p.summary")

        # one page, and the facet counts of everything that matches
        await expect(rows).to_have_count(PAGE_SIZE)
        await expect(summary).to_contain_text("23 items match")
        risk = page.locator("fieldset", has_text="Risk")
        await expect(risk.get_by_role("checkbox", name="high 2")).to_be_visible()
        await expect(risk.get_by_role("checkbox", name="medium 21")).to_be_visible()
        kind = page.locator("fieldset", has_text="Kind")
        await expect(kind.get_by_role("checkbox", name="approval 21")).to_be_visible()
        await expect(kind.get_by_role("checkbox", name="exception request 2")).to_be_visible()

        # the next page: every item once
        await page.get_by_role("button", name="Load more").click()
        await expect(rows).to_have_count(23)
        for item_id in exceptions + changes:
            await expect(page.locator(f"tr[data-item-id='{item_id}']")).to_have_count(1)
        await expect(page.get_by_role("button", name="Load more")).to_have_count(0)
        await page.screenshot(path=ARTIFACTS / "15-inbox-all-pages.png", full_page=True)

        # a facet filters, and the filtered view stays live for what matches only
        await risk.get_by_role("checkbox", name="high").check()
        await expect(rows).to_have_count(2)
        for item_id in exceptions:
            await expect(page.locator(f"tr[data-item-id='{item_id}']")).to_be_visible()
        medium = await submit(http, deployment, alice, "Change 22")
        high = await _exception(http, deployment, alice, "Exception C")
        # pushed in order: once the later one is shown, the earlier one was judged
        await expect(page.locator(f"tr[data-item-id='{high}']")).to_be_visible()
        await expect(page.locator(f"tr[data-item-id='{medium}']")).to_have_count(0)
        await expect(rows).to_have_count(3)
        await page.screenshot(path=ARTIFACTS / "16-inbox-high-risk-live.png", full_page=True)
        await risk.get_by_role("checkbox", name="high").uncheck()
        await expect(summary).to_contain_text("25 items match")
        await expect(rows).to_have_count(PAGE_SIZE)

        # a title search
        await page.get_by_label("Search titles").fill("exception")
        await page.get_by_role("button", name="Search").click()
        await expect(rows).to_have_count(3)
        await expect(summary).to_contain_text("3 items match")
        await page.get_by_label("Search titles").fill("")
        await page.get_by_role("button", name="Search").click()
        await expect(rows).to_have_count(PAGE_SIZE)

        # creation order, both ways
        await page.get_by_label("Sort by").select_option("CREATED")
        await page.get_by_label("Direction").select_option("ASC")
        await expect(rows.first).to_have_attribute("data-item-id", exceptions[0])
        await page.get_by_label("Direction").select_option("DESC")
        await expect(rows.first).to_have_attribute("data-item-id", high)
        await expect(rows.nth(1)).to_have_attribute("data-item-id", medium)

        # "Decided by me" gains what bob decides elsewhere, live
        await page.get_by_role("link", name="Decided by me").click()
        await expect(page.get_by_test_id("requests-empty")).to_be_visible()
        step = (await graphql(http, deployment, bob, STEPS, {"id": changes[0]}))["item"]
        approved = await graphql(
            http,
            deployment,
            bob,
            APPROVE,
            {"input": {"stepId": step["steps"][0]["id"], "reason": "checked"}},
        )
        assert approved["approveStep"]["errors"] == []
        row = page.locator(f"tr[data-item-id='{changes[0]}']")
        await expect(row).to_contain_text("approved")
        await expect(page.locator("[data-testid=requests] tbody tr")).to_have_count(1)
        await page.screenshot(path=ARTIFACTS / "17-decided-by-me-live.png", full_page=True)
