"""Every reviewer action without a browser test elsewhere, done through the console in a real
browser against a real `signoff serve`, `signoff worker`, PostgreSQL and Redis, each checked
against the API (state and audit event), and each refusal shown in words with nothing changed.

bob (a change approver) sees every row of his inbox say "unclaimed", the rows that arrive live
as well as the rows loaded with the page, and a row carol claims turn to "others" without a
reload. He claims a step and releases it; carol's claim of the step bob holds is refused in
words. He requests changes (refused without a reason), delegates his seat (refused without a
reason) and reassigns a step (refused without a reason; the item is then no longer his to
read, and the page says so). alice cancels her request, which is
refused without a reason, then done. Screenshots go to console/artifacts/.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from signoff.settings import Settings
from tests.console.conftest import (
    ARTIFACTS,
    audited,
    graphql,
    minter,
    new_context,
    new_page,
    read_item,
    sign_in,
    submit,
)

READ = """
query($id: ID!) {
  item(id: $id) {
    state
    version
    steps {
      stepState
      claimedBy
      assignees { users roles }
      seats { holder delegate }
    }
    auditEvents(last: 50) { nodes { action actorId reason } }
  }
}"""
CLAIM = """
mutation($input: StepReasonInput!) {
  claimStep(input: $input) { errors { code message } }
}"""
STEPS = """
query($id: ID!) {
  item(id: $id) { steps { id } }
}"""
REASON_REQUIRED = ("JUSTIFICATION_REQUIRED", "Give a (longer) reason.")


@pytest.mark.timeout(600)
async def test_a_reviewer_claims_releases_requests_changes_delegates_and_reassigns_and_a_requester_cancels(  # noqa: E501
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    token = minter(settings, tenant)
    bob, carol = token("bob", "change-approver"), token("carol", "change-approver")
    alice = token("alice", "requester")
    async with httpx.AsyncClient(timeout=30) as http:
        titles = ("Rotate the signing keys", "Move DNS to the new provider", "Patch the kernel")
        rotate, move, patch = [await submit(http, deployment, alice, title) for title in titles]

        async def read(item_id: str) -> dict[str, Any]:
            return await read_item(http, deployment, token("admin", "admin"), READ, item_id)

        page = await new_page(await new_context(chromium, height=1100))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, bob, "bob")

        def row(item_id: str) -> Any:
            return page.locator(f'[data-testid=inbox] tr[data-item-id="{item_id}"]')

        # A loaded row and a live row say the same about a claim, and a live claim shows.
        for item_id in (rotate, move, patch):
            await expect(row(item_id).get_by_test_id("claim")).to_have_text("unclaimed")
        live = await submit(http, deployment, alice, "Renew the TLS certificate")
        await expect(row(live).locator(".badge")).to_have_text("new")
        await expect(row(live).get_by_test_id("claim")).to_have_text("unclaimed")
        step_of_live = (await graphql(http, deployment, carol, STEPS, {"id": live}))["item"]
        claimed = await graphql(
            http,
            deployment,
            carol,
            CLAIM,
            {"input": {"stepId": step_of_live["steps"][0]["id"]}},
        )
        assert claimed["claimStep"]["errors"] == []
        await expect(row(live).get_by_test_id("claim")).to_have_text("others")
        await page.screenshot(path=ARTIFACTS / "21-inbox-claims.png", full_page=True)

        # claim, then release
        await row(rotate).get_by_role("link", name=titles[0]).click()
        actions = page.get_by_test_id("actions-review")
        await actions.get_by_role("button", name="Claim", exact=True).click()
        await expect(actions.get_by_role("button", name="Release claim")).to_be_visible()
        await expect(page.get_by_test_id("step-review")).to_contain_text("claimed by")
        item = await read(rotate)
        assert item["steps"][0]["claimedBy"] == "bob"
        assert ("step.claim", "bob", None) in audited(item)

        # carol's claim of the step bob holds is refused in words and changes nothing
        other = await new_page(await new_context(chromium))
        await other.goto(f"{deployment}/console/")
        await sign_in(other, carol, "carol")
        await other.goto(f"{deployment}/console/item/{rotate}")
        theirs = other.get_by_test_id("actions-review")
        await theirs.get_by_role("button", name="Claim", exact=True).click()
        await expect(
            theirs.get_by_role("alert").locator("[data-code=ALREADY_CLAIMED]")
        ).to_contain_text("Somebody else claimed this step.")
        await other.screenshot(path=ARTIFACTS / "22-claim-refused.png", full_page=True)
        unchanged = await read(rotate)
        assert unchanged["steps"][0]["claimedBy"] == "bob"
        assert unchanged["version"] == item["version"]

        await actions.get_by_role("button", name="Release claim").click()
        await expect(actions.get_by_role("button", name="Claim", exact=True)).to_be_visible()
        item = await read(rotate)
        assert item["steps"][0]["claimedBy"] is None
        assert ("step.unclaim", "bob", None) in audited(item)

        reason = page.get_by_label("Reason for Change review")

        async def refused_without_a_reason_then_done(item_id: str, button: str, why: str) -> None:
            """`button` without a reason: refused in words, the item unchanged; then with
            `why`."""
            version = (await read(item_id))["version"]
            await actions.get_by_role("button", name=button).click()
            await expect(
                actions.get_by_role("alert").locator(f"[data-code={REASON_REQUIRED[0]}]")
            ).to_contain_text(REASON_REQUIRED[1])
            assert (await read(item_id))["version"] == version
            await reason.fill(why)
            await actions.get_by_role("button", name=button).click()

        # request changes
        await refused_without_a_reason_then_done(
            rotate, "Request changes", "Say when the old keys stop working"
        )
        await expect(page.get_by_test_id("item")).to_have_attribute(
            "data-state", "CHANGES_REQUESTED"
        )
        item = await read(rotate)
        assert item["state"] == "CHANGES_REQUESTED"
        assert ("step.request_changes", "bob", "Say when the old keys stop working") in audited(
            item
        )

        # delegate his seat
        await page.goto(f"{deployment}/console/item/{move}")
        await page.get_by_label("Delegate to").fill("erin")
        await refused_without_a_reason_then_done(move, "Delegate", "Away this week")
        await expect(page.get_by_test_id("seats-review")).to_contain_text("bob (delegated to erin)")
        item = await read(move)
        assert item["steps"][0]["seats"] == [{"holder": "bob", "delegate": "erin"}]
        assert ("step.reassign", "bob", "Away this week") in audited(item)
        await page.screenshot(path=ARTIFACTS / "23-delegated.png", full_page=True)

        # reassign; the item leaves bob's inbox
        await page.goto(f"{deployment}/console/item/{patch}")
        await page.get_by_label("Reassign to users").fill("dave")
        await refused_without_a_reason_then_done(patch, "Reassign", "dave owns the kernel patches")
        # the reload after it says he may no longer read the item
        await expect(page.get_by_role("alert")).to_contain_text(
            "No such item, or you may not read it"
        )
        item = await read(patch)
        assert item["steps"][0]["assignees"] == {"users": ["dave"], "roles": []}
        assert ("step.reassign", "bob", "dave owns the kernel patches") in audited(item)
        await page.get_by_role("link", name="Inbox").click()
        await expect(row(live)).to_be_visible()
        await expect(row(patch)).to_have_count(0)

        # alice cancels her request: refused without a reason, then done
        mine = await new_page(await new_context(chromium))
        await mine.goto(f"{deployment}/console/")
        await sign_in(mine, alice, "alice")
        await mine.goto(f"{deployment}/console/item/{rotate}")
        buttons = mine.get_by_test_id("item-actions")
        await buttons.get_by_role("button", name="Cancel this request").click()
        await expect(
            mine.get_by_role("alert").locator(f"[data-code={REASON_REQUIRED[0]}]")
        ).to_contain_text(REASON_REQUIRED[1])
        assert (await read(rotate))["state"] == "CHANGES_REQUESTED"
        await mine.get_by_label("Reason for this request").fill("The keys were rotated by hand")
        await buttons.get_by_role("button", name="Cancel this request").click()
        await expect(mine.get_by_test_id("item")).to_have_attribute("data-state", "CANCELLED")
        await mine.screenshot(path=ARTIFACTS / "24-cancelled.png", full_page=True)
        item = await read(rotate)
        assert item["state"] == "CANCELLED"
        assert ("item.cancel", "alice", "The keys were rotated by hand") in audited(item)


@pytest.mark.timeout(300)
async def test_nothing_on_an_item_page_moves_when_its_graph_appears(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    """The graph is drawn after the item, once mermaid has loaded: its box is the same size
    before and after, so a button below it does not move under the pointer (a click aimed at
    it while the graph appeared went to whatever moved in its place). mermaid is held back
    until the page has been measured without it."""
    from playwright.async_api import expect

    token = minter(settings, tenant)
    alice = token("alice", "requester")
    async with httpx.AsyncClient(timeout=30) as http:
        item_id = await submit(http, deployment, alice, "Rotate the signing keys")
        page = await new_page(await new_context(chromium))
        held: list[Any] = []
        asked = asyncio.Event()

        def hold(route: Any) -> None:
            held.append(route)
            asked.set()

        await page.route("**/assets/mermaid.core-*.js", hold)
        await page.goto(f"{deployment}/console/")
        await sign_in(page, alice, "alice")
        await page.goto(f"{deployment}/console/item/{item_id}")
        cancel = page.get_by_test_id("item-actions").get_by_role(
            "button", name="Cancel this request"
        )
        await expect(cancel).to_be_visible()
        await asyncio.wait_for(asked.wait(), 60)
        graph = page.locator("[data-testid=diagram] svg")
        assert await graph.count() == 0  # the graph is not drawn yet
        before = await cancel.bounding_box()
        for route in held:
            await route.continue_()
        await expect(graph.locator("g.node")).to_have_count(1)
        assert await cancel.bounding_box() == before
