"""An agent's plan reviewed in the console, in a real browser against a real `signoff serve`,
`signoff worker`, PostgreSQL and Redis.

sam, an agent supervisor, opens the plan from his inbox: its steps with their parameters and
the step graph coloured by state. He edits a step's parameters (a text that is not JSON is
refused before anything is sent; the saved change shows beside the original), comments, and
attaches a file as evidence (its sha256 shown, its download the same bytes; a type the server
refuses is said in words and attaches nothing). Rejecting without a reason and overriding
without the role are refused, in words, and change nothing. "Approve all open steps" approves
the plan; the graph recolours, and the audit trail on the page holds every change he made.
Screenshots go to console/artifacts/.
"""

from __future__ import annotations

import hashlib
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
    sign_in,
    submit_plan,
)

PLAN = {
    "title": "Follow up with John",
    "steps": [
        {
            "key": "draft",
            "action": "create_draft",
            "risk": "medium",
            "params": {"to": "john@example.com", "subject": "Summary"},
        },
        {"key": "send", "action": "send_email", "risk": "high", "depends_on": ["draft"]},
    ],
}
READ = """
query($id: ID!) {
  item(id: $id) {
    state
    version
    steps { key stepState params originalParams paramsDiff { key before after } }
    auditEvents(first: 100) { nodes { action actorId } }
  }
  comments(itemId: $id, first: 10) { nodes { body author { userId } } }
  evidence(itemId: $id) { name size sha256 uploadedBy description }
}"""
NOTE = b"John confirmed the summary by phone on Monday.\n"


@pytest.mark.timeout(600)
async def test_a_supervisor_reviews_an_agent_plan_with_parameter_edits_comments_and_evidence(
    deployment: str, settings: Settings, tenant: str, demo_templates: Any, chromium: Any
) -> None:
    from playwright.async_api import expect

    agent = mint_token(settings, user_id="agent-7", tenant_id=tenant, roles=["agent"])
    sam = mint_token(settings, user_id="sam", tenant_id=tenant, roles=["agent-supervisor"])
    async with httpx.AsyncClient(timeout=30) as http:
        item_id = await submit_plan(http, deployment, agent, PLAN, "meeting follow-up")

        async def read() -> dict[str, Any]:
            return await graphql(http, deployment, sam, READ, {"id": item_id})

        page = await new_page(await new_context(chromium, height=1000))
        await page.goto(f"{deployment}/console/")
        await sign_in(page, sam, "sam")
        await page.get_by_role("link", name=PLAN["title"]).click()
        item = page.get_by_test_id("item")
        await expect(item).to_have_attribute("data-state", "PENDING")
        draft, send = page.get_by_test_id("step-draft"), page.get_by_test_id("step-send")
        await expect(draft).to_contain_text("create_draft")
        await expect(draft).to_contain_text('"subject": "Summary"')
        # the graph is coloured by state: the first step is active, the second waits
        graph = page.locator("[data-testid=diagram] svg")
        await expect(graph.locator("g.node.active")).to_have_count(1)
        await expect(graph.locator("g.node.approved")).to_have_count(0)
        await page.screenshot(path=ARTIFACTS / "11-plan.png", full_page=True)

        # parameters: not JSON is refused in the page; a change (with its reason) is saved
        # beside the original
        params = page.get_by_label("Parameters of draft")
        actions = page.get_by_test_id("actions-draft")
        await params.fill('{"to": "john@example.com",')
        await actions.get_by_role("button", name="Save parameters").click()
        await expect(actions.get_by_role("alert")).to_contain_text("The parameters are not JSON")
        assert (await read())["item"]["steps"][0]["paramsDiff"] == []
        await page.get_by_label("Reason for create_draft").fill("I want the reply too")
        await params.fill('{"to": "john@example.com", "subject": "Summary", "cc": "me"}')
        await actions.get_by_role("button", name="Save parameters").click()
        await expect(draft.locator(".diff")).to_contain_text('cc: null → "me"')
        saved = (await read())["item"]["steps"][0]
        assert saved["params"] == {"to": "john@example.com", "subject": "Summary", "cc": "me"}
        assert saved["originalParams"] == {"to": "john@example.com", "subject": "Summary"}

        # typed errors in words, and nothing changed: a rejection needs a reason, an
        # override needs the role
        version = (await read())["item"]["version"]
        for button, code, words in (
            ("Reject", "JUSTIFICATION_REQUIRED", "Give a (longer) reason."),
            ("Override", "FORBIDDEN", "You may not do this."),
        ):
            await page.get_by_label("Reason for create_draft").fill("")
            await actions.get_by_role("button", name=button, exact=True).click()
            alert = actions.get_by_role("alert")
            await expect(alert.locator(f"[data-code={code}]")).to_contain_text(words)
        await page.screenshot(path=ARTIFACTS / "12-refused-in-words.png", full_page=True)
        unchanged = (await read())["item"]
        assert unchanged["version"] == version
        assert [s["stepState"] for s in unchanged["steps"]] == ["ACTIVE", "WAITING"]

        # a comment
        await page.get_by_label("Comment").fill("cc me: I want to see the reply")
        await page.get_by_role("button", name="Add comment").click()
        await expect(page.get_by_test_id("comments")).to_contain_text(
            "cc me: I want to see the reply"
        )

        # evidence: a type the server refuses attaches nothing; a note attaches, with its
        # digest, and downloads as the same bytes
        attach = page.get_by_test_id("attach-evidence")
        file = page.get_by_label("Evidence file")
        await file.set_input_files(
            files=[{"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}]
        )
        await attach.get_by_role("button", name="Attach evidence").click()
        await expect(
            attach.get_by_role("alert").locator("[data-code=CONTENT_TYPE_NOT_ALLOWED]")
        ).to_contain_text("Files of this type are not accepted.")
        assert (await read())["evidence"] == []
        await file.set_input_files(
            files=[{"name": "call-notes.txt", "mimeType": "text/plain", "buffer": NOTE}]
        )
        await page.get_by_label("Evidence description").fill("the phone call")
        await attach.get_by_role("button", name="Attach evidence").click()
        evidence = page.get_by_test_id("evidence")
        digest = hashlib.sha256(NOTE).hexdigest()
        await expect(evidence).to_contain_text("call-notes.txt")
        await expect(evidence).to_contain_text(digest[:12])
        await expect(evidence).to_contain_text("the phone call")
        href = await evidence.get_by_role("link", name="call-notes.txt").get_attribute("href")
        assert href is not None
        download = await http.get(href)
        assert download.status_code == 200 and download.content == NOTE
        await page.screenshot(path=ARTIFACTS / "13-comment-and-evidence.png", full_page=True)

        # approve the whole plan: the graph recolours, the trail holds every change
        await page.get_by_role("button", name="Approve all open steps").click()
        await expect(item).to_have_attribute("data-state", "APPROVED")
        await expect(graph.locator("g.node.approved")).to_have_count(2)
        await expect(send).to_contain_text("sam: approve")
        trail = page.get_by_test_id("audit")
        for action in ("step.modify", "comment.created", "evidence.attached", "step.approve"):
            await expect(trail).to_contain_text(action)
        await page.screenshot(path=ARTIFACTS / "14-plan-approved.png", full_page=True)

        after = await read()
        assert after["item"]["state"] == "APPROVED"
        assert [c["body"] for c in after["comments"]["nodes"]] == ["cc me: I want to see the reply"]
        assert [
            (e["name"], e["size"], e["sha256"], e["uploadedBy"]) for e in after["evidence"]
        ] == [("call-notes.txt", len(NOTE), hashlib.sha256(NOTE).hexdigest(), "sam")]
        by_sam = {
            e["action"] for e in after["item"]["auditEvents"]["nodes"] if e["actorId"] == "sam"
        }
        assert {"comment.created", "evidence.attached", "step.approve"} <= by_sam
