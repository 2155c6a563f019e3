"""Batch decisions and held steps in the console, in a real browser against a real
`signoff serve`, `signoff worker`, PostgreSQL and Redis, each checked against the API.

bob picks three rows of his inbox, one of them his own request, and approves them in one
request (`decideSteps`): two are approved and leave his inbox live, his own is refused in words
(four-eyes) and stays, undecided. Rejecting a picked row without a reason is refused in words
and changes nothing; with one, it is rejected.

An agent's plan has a step held for its requester (an `ask_user` dependency on a step the
supervisor rejected). The agent's "My requests" marks the item held; on the item, the held step
says why and offers the template's choices. The supervisor's choice is refused in words (only
the requester decides), so is the agent's without a reason; the agent's choice with a reason
skips the step. Screenshots go to console/artifacts/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from signoff.api.auth import mint_token
from signoff.settings import Settings
from tests.console.conftest import (
    ARTIFACTS,
    graphql,
    new_context,
    new_page,
    read_item,
    sign_in,
    submit,
    submit_plan,
)

READ = """
query($id: ID!) {
  item(id: $id) {
    state
    version
    steps { id key stepState decisions { outcome actorId reason } }
    auditEvents(last: 50) { nodes { action actorId reason } }
  }
}"""
REJECT = """
mutation($input: DecideStepInput!) {
  rejectStep(input: $input) { errors { code message } }
}"""
PLAN = {
    "title": "Set up a sync with John",
    "steps": [
        {
            "key": "calendar",
            "action": "create_event",
            "risk": "medium",
            "params": {"title": "Sync"},
        },
        {
            "key": "invite",
            "action": "send_invite",
            "risk": "medium",
            "depends_on": [{"step": "calendar", "effect": "blocks", "resolution": "ask_user"}],
        },
    ],
}


@pytest.mark.timeout(600)
async def test_a_reviewer_decides_picked_rows_in_one_request_each_with_its_own_result(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    bob = mint_token(settings, user_id="bob", tenant_id=tenant, roles=["change-approver"])
    alice = mint_token(settings, user_id="alice", tenant_id=tenant, roles=["requester"])
    admin = mint_token(settings, user_id="admin", tenant_id=tenant, roles=["admin"])
    async with httpx.AsyncClient(timeout=30) as http:
        first = await submit(http, deployment, alice, "Open port 443")
        second = await submit(http, deployment, alice, "Raise the pool size")
        own = await submit(http, deployment, bob, "Bump the cache TTL")
        third = await submit(http, deployment, alice, "Drop the old index")

        async def read(item_id: str) -> dict[str, Any]:
            return await read_item(http, deployment, admin, READ, item_id)

        page = await new_page(await new_context(chromium, height=1100))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, bob, "bob")

        def row(item_id: str) -> Any:
            return page.locator(f'[data-testid=inbox] tr[data-item-id="{item_id}"]')

        for item_id, title in (
            (first, "Open port 443"),
            (second, "Raise the pool size"),
            (own, "Bump the cache TTL"),
        ):
            await row(item_id).get_by_label(f"Pick {title}").check()
        batch = page.get_by_test_id("batch")
        await batch.get_by_role("button", name="Approve picked (3)").click()
        results = page.get_by_test_id("batch-results")
        ok = results.locator("li[data-ok=true]")
        await expect(ok).to_have_count(2)
        await expect(ok.filter(has_text="Open port 443")).to_contain_text("approved (now approved)")
        await expect(ok.filter(has_text="Raise the pool size")).to_contain_text("approved")
        refused = results.locator("li[data-ok=false]")
        await expect(refused).to_have_count(1)
        await expect(refused).to_contain_text("Bump the cache TTL: not approved")
        await expect(refused.locator("[data-code=SEPARATION_OF_DUTIES]")).to_contain_text(
            "The same person may not fill both roles (four-eyes rule)."
        )
        # the approved rows leave the inbox live; the refused one stays
        await expect(row(first)).to_have_count(0)
        await expect(row(second)).to_have_count(0)
        await expect(row(own)).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "31-batch-results.png", full_page=True)
        for item_id in (first, second):
            item = await read(item_id)
            assert item["state"] == "APPROVED"
            assert [d["outcome"] for d in item["steps"][0]["decisions"]] == ["APPROVE"]
            assert ("step.approve", "bob") in [
                (e["action"], e["actorId"]) for e in item["auditEvents"]["nodes"]
            ]
        untouched = await read(own)
        assert untouched["state"] == "PENDING"
        assert untouched["steps"][0]["decisions"] == []

        # rejecting needs a reason: refused in words, nothing changed; then rejected
        await row(own).get_by_label("Pick Bump the cache TTL").uncheck()
        await row(third).get_by_label("Pick Drop the old index").check()
        version = (await read(third))["version"]
        await batch.get_by_role("button", name="Reject picked (1)").click()
        refused = results.locator("li[data-ok=false]")
        await expect(refused).to_contain_text("Drop the old index: not rejected")
        await expect(refused.locator("[data-code=JUSTIFICATION_REQUIRED]")).to_contain_text(
            "Give a (longer) reason."
        )
        assert (await read(third))["version"] == version
        await batch.get_by_label("Reason for the picked items").fill("The index is still read")
        await batch.get_by_role("button", name="Reject picked (1)").click()
        await expect(results.locator("li[data-ok=true]")).to_contain_text(
            "Drop the old index: rejected (now rejected)"
        )
        await expect(row(third)).to_have_count(0)
        item = await read(third)
        assert item["state"] == "REJECTED"
        assert ("step.reject", "bob", "The index is still read") in [
            (e["action"], e["actorId"], e["reason"]) for e in item["auditEvents"]["nodes"]
        ]


@pytest.mark.timeout(600)
async def test_the_requester_resolves_a_held_step_and_nobody_else_may(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    agent = mint_token(settings, user_id="agent-7", tenant_id=tenant, roles=["agent"])
    sam = mint_token(settings, user_id="sam", tenant_id=tenant, roles=["agent-supervisor"])
    async with httpx.AsyncClient(timeout=30) as http:
        item_id = await submit_plan(http, deployment, agent, PLAN, "a sync")

        async def read() -> dict[str, Any]:
            return await read_item(http, deployment, agent, READ, item_id)

        calendar = (await read())["steps"][0]
        assert calendar["key"] == "calendar"
        rejected = await graphql(
            http,
            deployment,
            sam,
            REJECT,
            {"input": {"stepId": calendar["id"], "reason": "no meeting needed"}},
        )
        assert rejected["rejectStep"]["errors"] == []
        assert [s["stepState"] for s in (await read())["steps"]] == ["REJECTED", "HELD"]

        # the supervisor sees the held step, and may not choose
        supervisor = await new_page(await new_context(chromium))
        await supervisor.goto(f"{deployment}/console/")
        await sign_in(supervisor, sam, "sam")
        await supervisor.goto(f"{deployment}/console/item/{item_id}")
        held = supervisor.get_by_test_id("hold-invite")
        await held.get_by_label("Skip this step").check()
        await held.get_by_label("Reason for resolving invite").fill("not needed")
        await held.get_by_role("button", name="Resolve held step").click()
        await expect(held.get_by_role("alert").locator("[data-code=FORBIDDEN]")).to_contain_text(
            "You may not do this."
        )
        version = (await read())["version"]

        # the agent finds it held under "My requests" and chooses, with a reason
        page = await new_page(await new_context(chromium, height=1100))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, agent, "agent-7")
        await page.get_by_role("link", name="My requests").click()
        mine = page.locator(f'[data-testid=requests] tr[data-item-id="{item_id}"]')
        await expect(mine.locator(".badge.held")).to_have_text("held")
        await mine.get_by_role("link", name=PLAN["title"]).click()
        held = page.get_by_test_id("hold-invite")
        await expect(held).to_contain_text("calendar did not succeed")
        for choice in (
            "Review the failed steps again",
            "Skip this step",
            "Provide the value by hand",
            "Cancel the whole request",
        ):
            await expect(held.get_by_label(choice)).to_be_visible()
        await held.get_by_label("Skip this step").check()
        await held.get_by_role("button", name="Resolve held step").click()
        await expect(
            held.get_by_role("alert").locator("[data-code=JUSTIFICATION_REQUIRED]")
        ).to_contain_text("Give a (longer) reason.")
        await page.screenshot(path=ARTIFACTS / "32-held-step.png", full_page=True)
        unchanged = await read()
        assert unchanged["version"] == version
        assert unchanged["steps"][1]["stepState"] == "HELD"

        await held.get_by_label("Reason for resolving invite").fill("no meeting, no invite")
        await held.get_by_role("button", name="Resolve held step").click()
        await expect(page.get_by_test_id("step-invite")).to_contain_text("skipped")
        await expect(page.get_by_test_id("audit")).to_contain_text("step.skip")
        await page.screenshot(path=ARTIFACTS / "33-held-step-resolved.png", full_page=True)
        item = await read()
        assert item["steps"][1]["stepState"] == "SKIPPED"
        assert ("step.skip", "agent-7", "no meeting, no invite") in [
            (e["action"], e["actorId"], e["reason"]) for e in item["auditEvents"]["nodes"]
        ]
