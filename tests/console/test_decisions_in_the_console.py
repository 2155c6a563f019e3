"""The decisions a reviewer console exists for, done successfully through the console in a real
browser against a real `signoff serve`, `signoff worker`, PostgreSQL and Redis, each checked
against the API (state and audit event with actor and reason), each refusal shown in words with
nothing changed.

bob rejects a change (refused without a reason, then done: the item is rejected). He requests
changes on another and alice resubmits it from the console (her item is pending again, in its
next revision). An administrator overrides a step (refused with a justification shorter than
the deployment's minimum, then done). Screenshots go to console/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from signoff.settings import Settings
from tests.console.conftest import (
    ARTIFACTS,
    audited,
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
    revision
    steps { stepState }
    auditEvents(last: 50) { nodes { action actorId reason } }
  }
}"""
REASON_REQUIRED = ("JUSTIFICATION_REQUIRED", "Give a (longer) reason.")


@pytest.mark.timeout(600)
async def test_a_reviewer_rejects_a_requester_resubmits_and_an_administrator_overrides(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    token = minter(settings, tenant)
    bob, alice = token("bob", "change-approver"), token("alice", "requester")
    admin = token("admin", "admin")
    async with httpx.AsyncClient(timeout=30) as http:
        titles = ("Drop the legacy queue", "Raise the connection limit", "Hotfix the login page")
        drop, limit, hotfix = [await submit(http, deployment, alice, title) for title in titles]

        async def read(item_id: str) -> dict[str, Any]:
            return await read_item(http, deployment, admin, READ, item_id)

        async def refused_in_words(page: Any, within: Any, button: str, item_id: str) -> None:
            """`button` is refused as JUSTIFICATION_REQUIRED, in words, and changes nothing."""
            before = await read(item_id)
            await within.get_by_role("button", name=button, exact=True).click()
            await expect(
                within.get_by_role("alert").locator(f"[data-code={REASON_REQUIRED[0]}]")
            ).to_contain_text(REASON_REQUIRED[1])
            after = await read(item_id)
            assert (after["state"], after["version"]) == (before["state"], before["version"])

        page = await new_page(await new_context(chromium, height=1100))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, bob, "bob")
        actions = page.get_by_test_id("actions-review")
        reason = page.get_by_label("Reason for Change review")

        # reject: refused without a reason, then done
        await page.goto(f"{deployment}/console/item/{drop}")
        await refused_in_words(page, actions, "Reject", drop)
        await reason.fill("Two services still read the legacy queue")
        await actions.get_by_role("button", name="Reject", exact=True).click()
        await expect(page.get_by_test_id("item")).to_have_attribute("data-state", "REJECTED")
        await page.screenshot(path=ARTIFACTS / "31-rejected.png", full_page=True)
        item = await read(drop)
        assert item["state"] == "REJECTED"
        assert item["steps"] == [{"stepState": "REJECTED"}]
        assert ("step.reject", "bob", "Two services still read the legacy queue") in audited(item)

        # changes requested by bob; alice resubmits from the console
        await page.goto(f"{deployment}/console/item/{limit}")
        await reason.fill("Say which pool and by how much")
        await actions.get_by_role("button", name="Request changes").click()
        await expect(page.get_by_test_id("item")).to_have_attribute(
            "data-state", "CHANGES_REQUESTED"
        )
        first = await read(limit)
        mine = await new_page(await new_context(chromium))
        await mine.goto(f"{deployment}/console/")
        await sign_in(mine, alice, "alice")
        await mine.goto(f"{deployment}/console/item/{limit}")
        await mine.get_by_label("Reason for this request").fill("The API pool, from 50 to 80")
        await mine.get_by_test_id("item-actions").get_by_role("button", name="Resubmit").click()
        await expect(mine.get_by_test_id("item")).to_have_attribute("data-state", "PENDING")
        await mine.screenshot(path=ARTIFACTS / "32-resubmitted.png", full_page=True)
        item = await read(limit)
        assert item["state"] == "PENDING"
        assert item["revision"] == first["revision"] + 1
        assert ("item.resubmit", "alice", "The API pool, from 50 to 80") in audited(item)

        # an administrator overrides: too short a justification is refused, then done
        boss = await new_page(await new_context(chromium))
        await boss.goto(f"{deployment}/console/")
        await sign_in(boss, admin, "admin")
        await boss.goto(f"{deployment}/console/item/{hotfix}")
        theirs = boss.get_by_test_id("actions-review")
        justification = boss.get_by_label("Reason for Change review")
        await justification.fill("urgent")
        await refused_in_words(boss, theirs, "Override", hotfix)
        why = "The login page is down for every customer; the fix is one line"
        assert len(why) >= settings.override_min_justification
        await justification.fill(why)
        await theirs.get_by_role("button", name="Override", exact=True).click()
        await expect(boss.get_by_test_id("item")).to_have_attribute("data-state", "APPROVED")
        await boss.screenshot(path=ARTIFACTS / "33-overridden.png", full_page=True)
        item = await read(hotfix)
        assert item["state"] == "APPROVED"
        assert ("step.override", "admin", why) in audited(item)
