"""The walking skeleton: submit, read and approve over HTTP with a real token."""

from __future__ import annotations

import pytest

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) {
    item { id state version title steps { id key stepState assignees { roles } } }
    errors { code message field }
  }
}"""

APPROVE = """
mutation($input: DecideStepInput!) {
  approveStep(input: $input) {
    item { id state version steps { key stepState decisions { actorId outcome } } }
    errors { code message field }
  }
}"""

REJECT = APPROVE.replace("approveStep", "rejectStep")

ITEM = """
query($id: ID!) {
  item(id: $id) { id state title auditEvents { nodes { seq action actorId requestId data } } }
}"""

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}


async def submit(gql, title="Deploy payments"):
    data = await gql.data(
        SUBMIT,
        {"input": {"templateKey": "change-approval", "title": title, "payload": PAYLOAD}},
        as_user="alice",
    )
    assert data["submitItem"]["errors"] == []
    return data["submitItem"]["item"]


async def test_submit_read_approve(gql, demo_templates):
    item = await submit(gql)
    assert item["state"] == "PENDING"
    assert [s["stepState"] for s in item["steps"]] == ["ACTIVE"]
    step_id = item["steps"][0]["id"]

    data = await gql.data(
        APPROVE, {"input": {"stepId": step_id}}, as_user="bob", roles=("change-approver",)
    )
    result = data["approveStep"]
    assert result["errors"] == []
    assert result["item"]["state"] == "APPROVED"
    assert result["item"]["steps"][0]["decisions"] == [{"actorId": "bob", "outcome": "APPROVE"}]

    read = await gql.data(ITEM, {"id": item["id"]}, as_user="alice")
    actions = [e["action"] for e in read["item"]["auditEvents"]["nodes"]]
    assert actions == ["item.submitted", "step.activate", "step.approve", "item.approve"]
    seqs = [e["seq"] for e in read["item"]["auditEvents"]["nodes"]]
    assert seqs == list(range(seqs[0], seqs[0] + 4))


async def test_reject_needs_reason_and_changes_nothing(gql, demo_templates):
    item = await submit(gql)
    step_id = item["steps"][0]["id"]
    data = await gql.data(
        REJECT, {"input": {"stepId": step_id}}, as_user="bob", roles=("change-approver",)
    )
    assert data["rejectStep"]["item"] is None
    assert data["rejectStep"]["errors"][0]["code"] == "JUSTIFICATION_REQUIRED"
    read = await gql.data(ITEM, {"id": item["id"]}, as_user="alice")
    assert read["item"]["state"] == "PENDING"
    assert len(read["item"]["auditEvents"]["nodes"]) == 2

    data = await gql.data(
        REJECT,
        {"input": {"stepId": step_id, "reason": "no rollback tested"}},
        as_user="bob",
        roles=("change-approver",),
    )
    assert data["rejectStep"]["item"]["state"] == "REJECTED"


async def test_non_assignee_cannot_approve(gql, demo_templates):
    item = await submit(gql)
    data = await gql.data(APPROVE, {"input": {"stepId": item["steps"][0]["id"]}}, as_user="mallory")
    assert data["approveStep"]["errors"][0]["code"] == "FORBIDDEN"


async def test_requester_cannot_approve_own_item(gql, demo_templates):
    item = await submit(gql)
    data = await gql.data(
        APPROVE,
        {"input": {"stepId": item["steps"][0]["id"]}},
        as_user="alice",
        roles=("change-approver",),
    )
    assert data["approveStep"]["errors"][0]["code"] == "SEPARATION_OF_DUTIES"


@pytest.mark.parametrize("user", ["mallory"])
async def test_item_of_other_tenant_is_invisible(gql, demo_templates, user):
    item = await submit(gql)
    other = gql.token(user, "admin")
    gql.tenant = "someoneelse"
    response = await gql.run(ITEM, {"id": item["id"]}, token=gql.token(user, "admin"))
    assert response.json()["data"]["item"] is None
    assert other
