"""The demo scenario of docs/product/demo-scenario.md, step by step through GraphQL (and the
command line for the export): an agent's plan reviewed, a comment thread with evidence, an
escalation, an override, execution, an incident review, and an audit export that verifies.

Each step below is a section of the document; if one changes, change the other."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signoff.api import ids
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from tests.test_cli import signoff

AGENT = ("billing-agent", ())
SAM = ("sam", ("agent-supervisor",))
OLGA = ("olga", ("override",))
AUDREY = ("audrey", ("auditor",))

PLAN = {
    "title": "Service credit for INC-2291",
    "summary": "Email a 25 EUR credit to the customers hit by the 3-hour outage",
    "steps": [
        {
            "key": "lookup",
            "action": "search_contacts",
            "risk": "LOW",
            "params": {"query": "accounts affected by INC-2291"},
        },
        {
            "key": "draft",
            "action": "create_draft",
            "risk": "MEDIUM",
            "params": {"subject": "A credit for Tuesday's outage", "amount_eur": 25},
            "dependsOn": [{"step": "lookup"}],
        },
        {
            "key": "send",
            "action": "send_email",
            "risk": "HIGH",
            "params": {"batch": "INC-2291-affected"},
            "dependsOn": [{"step": "draft", "effect": "BLOCKS", "resolution": "ASK_USER"}],
        },
    ],
}

ITEM = """
  id state version
  steps {
    id key stepState risk assignees { users groups roles } decisions { actorId outcome rule }
  }
"""
SUBMIT = f"""mutation($input: SubmitItemInput!) {{
  submitItem(input: $input) {{ item {{ {ITEM} }} errors {{ code message }} }} }}"""
APPROVE = f"""mutation($input: DecideStepInput!) {{
  approveStep(input: $input) {{ item {{ {ITEM} }} errors {{ code message }} }} }}"""
OVERRIDE = f"""mutation($input: OverrideStepInput!) {{
  overrideStep(input: $input) {{ item {{ {ITEM} }} errors {{ code message field }} }} }}"""
REPORT = f"""mutation($input: ReportExecutionInput!) {{
  reportExecution(input: $input) {{ item {{ {ITEM} }} errors {{ code message }} }} }}"""
REOPEN = """mutation($input: ReopenAsIncidentReviewInput!) {
  reopenAsIncidentReview(input: $input) {
    item { id title state steps { key stepState } } errors { code message } } }"""
COMMENT = """mutation($input: AddCommentInput!) {
  addComment(input: $input) { comment { id threadId body mentions } errors { code } } }"""
UPLOAD = """mutation($input: RequestEvidenceUploadInput!) {
  requestEvidenceUpload(input: $input) { upload { url headers { name value } } errors { code } }
}"""
READ = f"""query($id: ID!) {{
  item(id: $id) {{ {ITEM} auditEvents(first: 200) {{ nodes {{ action actorId reason data }} }} }}
  comments(itemId: $id) {{ edges {{ node {{ id body replyToId }} }} }}
  evidence(itemId: $id) {{ name sha256 uploadedBy }}
}}"""
REVIEW = """query($id: ID!) {
  incidentReview(itemId: $id) { sourceKind reviewedItem { id state } snapshot { name } }
}"""
VERIFY = "{ verifyAuditChain { ok headSeq firstBreak { seq } } }"


class Desk:
    """The people of the scenario, each calling GraphQL with their own token."""

    def __init__(self, gql: Any, client: Any, clock: Any) -> None:
        self.gql, self.client, self.clock = gql, client, clock

    async def call(self, who: tuple[str, tuple[str, ...]], query: str, **variables: Any) -> Any:
        self.clock.advance(timedelta(minutes=1))
        data = await self.gql.data(query, variables, as_user=who[0], roles=who[1])
        (result,) = data.values() if len(data) == 1 else (data,)
        if isinstance(result, dict) and result.get("errors"):
            raise AssertionError(result["errors"])
        return result

    async def read(self, item_id: str, who: tuple[str, tuple[str, ...]] = SAM) -> Any:
        return await self.gql.data(READ, {"id": item_id}, as_user=who[0], roles=who[1])


def states(item: dict[str, Any]) -> dict[str, str]:
    return {s["key"]: s["stepState"] for s in item["steps"]}


def step_id(item: dict[str, Any], key: str) -> str:
    return next(s["id"] for s in item["steps"] if s["key"] == key)


async def test_the_demo_scenario_runs_end_to_end(
    gql, client, clock, settings, tenant, demo_templates, tmp_path: Path
):
    desk = Desk(gql, client, clock)

    # 1. The agent submits its plan; the low-risk lookup is approved by the template's policy.
    submitted = await desk.call(
        AGENT,
        SUBMIT,
        input={
            "templateKey": "agent-plan",
            "title": PLAN["title"],
            "payload": {"summary": PLAN["summary"]},
            "agentPlan": PLAN,
            "guards": {"idempotencyKey": "inc-2291-credit"},
        },
    )
    plan = submitted["item"]
    item_id = plan["id"]
    assert plan["state"] == "PENDING"
    assert states(plan) == {"lookup": "APPROVED", "draft": "ACTIVE", "send": "WAITING"}
    lookup = next(s for s in plan["steps"] if s["key"] == "lookup")
    assert lookup["decisions"][0]["rule"].startswith("policy 'low-risk-agent-steps'")

    # 2. A comment thread on the draft step, with the draft attached as evidence.
    asked = await desk.call(
        SAM,
        COMMENT,
        input={"stepId": step_id(plan, "draft"), "body": "Is 25 EUR right for 3 hours? @olga"},
    )
    assert asked["comment"]["mentions"] == ["olga"]
    await desk.call(
        AGENT,
        COMMENT,
        input={
            "replyToId": asked["comment"]["id"],
            "body": "Policy FIN-12: 25 EUR for outages under 4 hours. Draft attached.",
        },
    )
    draft_text = b"Dear customer,\nwe are sorry for Tuesday's outage. A credit of 25 EUR ...\n"
    ticket = await desk.call(
        AGENT,
        UPLOAD,
        input={
            "stepId": step_id(plan, "draft"),
            "fileName": "credit-email-draft.txt",
            "contentType": "text/plain",
            "size": len(draft_text),
            "sha256": hashlib.sha256(draft_text).hexdigest(),
            "description": "the email as it will be sent",
        },
    )
    url = urlsplit(ticket["upload"]["url"])
    put = await client.put(
        url.path + (f"?{url.query}" if url.query else ""),
        content=draft_text,
        headers={"content-type": "text/plain"},
    )
    assert put.status_code == 201, put.text
    seen = await desk.read(item_id)
    assert [c["node"]["body"][:9] for c in seen["comments"]["edges"]] == ["Is 25 EUR", "Policy FI"]
    assert seen["evidence"] == [
        {
            "name": "credit-email-draft.txt",
            "sha256": hashlib.sha256(draft_text).hexdigest(),
            "uploadedBy": "billing-agent",
        }
    ]

    # 3. Nobody decides for two hours: the escalation chain adds the agent operators.
    clock.advance(timedelta(hours=2))
    worker = ServiceContext(
        settings=dataclasses.replace(settings, timer_tenants=(tenant,)), clock=clock
    )
    fired = await timer_services.fire_due(worker)
    assert fired.fired >= 1
    seen = await desk.read(item_id)
    draft = next(s for s in seen["item"]["steps"] if s["key"] == "draft")
    assert "agent-operators" in draft["assignees"]["groups"]
    assert "step.escalate" in [e["action"] for e in seen["item"]["auditEvents"]["nodes"]]

    # 4. The supervisor approves the draft; the send step opens.
    approved = await desk.call(
        SAM,
        APPROVE,
        input={"stepId": step_id(plan, "draft"), "reason": "amount matches FIN-12"},
    )
    assert states(approved["item"]) == {
        "lookup": "APPROVED",
        "draft": "APPROVED",
        "send": "ACTIVE",
    }

    # 5. The status update goes out at 17:00; the duty manager overrides the send step.
    refused = await gql.data(
        OVERRIDE,
        {"input": {"stepId": step_id(plan, "send"), "justification": "urgent"}},
        as_user=OLGA[0],
        roles=OLGA[1],
    )
    assert refused["overrideStep"]["errors"][0]["code"] == "JUSTIFICATION_REQUIRED"
    overridden = await desk.call(
        OLGA,
        OVERRIDE,
        input={
            "stepId": step_id(plan, "send"),
            "justification": "customers must hear from us before the 17:00 status update",
        },
    )
    assert overridden["item"]["state"] == "APPROVED"

    # 6. The agent carries the plan out and reports each step.
    item = overridden["item"]
    for key in ("lookup", "draft", "send"):
        for status in ("RUNNING", "COMPLETED"):
            item = (
                await desk.call(
                    AGENT, REPORT, input={"stepId": step_id(plan, key), "status": status}
                )
            )["item"]
    assert item["state"] == "COMPLETED"

    # 7. A customer complains: the decided item is reopened as an incident review.
    review = (
        await desk.call(
            SAM,
            REOPEN,
            input={
                "itemId": item_id,
                "summary": "credit mail reached accounts closed before the outage",
                "severity": "MEDIUM",
            },
        )
    )["item"]
    assert review["state"] == "PENDING"
    reviewed = await gql.data(REVIEW, {"id": review["id"]}, as_user=SAM[0], roles=SAM[1])
    assert reviewed["incidentReview"]["sourceKind"] == "ITEM"
    assert reviewed["incidentReview"]["reviewedItem"] == {"id": item_id, "state": "COMPLETED"}
    assert reviewed["incidentReview"]["snapshot"]["name"] == "history.json"

    history = [e["action"] for e in (await desk.read(item_id))["item"]["auditEvents"]["nodes"]]
    for action in (
        "item.submitted",
        "comment.created",
        "evidence.attached",
        "step.escalate",
        "step.override",
        "item.reopened_as_review",
    ):
        assert action in history, action

    # 8. The auditor verifies the chain, then exports the item's trail and verifies the file.
    verified = await gql.data(VERIFY, as_user=AUDREY[0], roles=AUDREY[1])
    assert verified["verifyAuditChain"]["ok"] is True
    _, uuid_text = ids.decode(item_id, "itemId")  # the command takes the item's uuid
    env = {"SIGNOFF_DATABASE_URL": settings.database_url, "SIGNOFF_REDIS_URL": settings.redis_url}
    out = tmp_path / "inc-2291.ndjson"
    export = signoff(
        "audit", "export", "--tenant", tenant, "--item", uuid_text, "--out", str(out), **env
    )
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert {"step.override", "comment.created"} <= {r.get("action") for r in rows}
    check = signoff("audit", "verify", "--file", str(out), **env)
    assert check.returncode == 0, check.stderr + check.stdout
