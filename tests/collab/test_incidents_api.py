"""Incident reviews through GraphQL: open from a trace, read what it reviews, precedent."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.realtime.conftest import approve, global_id, submit

OPEN = """mutation($input: OpenIncidentReviewInput!) {
  openIncidentReview(input: $input) {
    item { id kind externalRef steps { key stepState } }
    errors { code field }
  }
}"""
REOPEN = """mutation($input: ReopenAsIncidentReviewInput!) {
  reopenAsIncidentReview(input: $input) { item { id title } errors { code field } }
}"""
REVIEW = """query($itemId: ID!) {
  incidentReview(itemId: $itemId) {
    sourceRef sourceKind subject
    reviewedItem { id state }
    snapshot { name contentType source downloadUrl }
  }
  precedent(itemId: $itemId) {
    nodes { item { id state } matchedBy decisions { actorId outcome reason } }
  }
}"""


async def test_open_read_and_reopen_through_the_api(gql, client, services, tenant, demo_templates):
    opened = (
        await gql.data(
            OPEN,
            {
                "input": {
                    "sourceRef": "dec-77",
                    "sourceKind": "DECISION",
                    "title": "Refund agent paid twice",
                    "subject": "agent:refunds",
                    "severity": "HIGH",
                    "snapshot": {"decision": "dec-77", "amount": 120},
                }
            },
            as_user="ivy",
            roles=("admin",),
        )
    )["openIncidentReview"]
    assert opened["errors"] == []
    review_id = opened["item"]["id"]
    assert (opened["item"]["kind"], opened["item"]["externalRef"]) == ("INCIDENT_REVIEW", "dec-77")
    read = await gql.data(REVIEW, {"itemId": review_id}, as_user="ivy", roles=("admin",))
    review = read["incidentReview"]
    assert (review["sourceRef"], review["sourceKind"], review["subject"]) == (
        "dec-77",
        "DECISION",
        "agent:refunds",
    )
    assert review["reviewedItem"] is None
    assert review["snapshot"]["source"] == "SNAPSHOT"
    url = urlsplit(review["snapshot"]["downloadUrl"])
    downloaded = await client.get(f"{url.path}?{url.query}")
    assert downloaded.json() == {"amount": 120, "decision": "dec-77"}

    bad = (
        await gql.data(
            OPEN,
            {"input": {"sourceRef": " ", "title": "x"}},
            as_user="ivy",
            roles=("admin",),
        )
    )["openIncidentReview"]
    assert bad == {"item": None, "errors": [{"code": "INVALID_INPUT", "field": "sourceRef"}]}

    view = await submit(services, tenant, "change-approval", "Deploy")
    await approve(services, tenant, view, "bob", "change-approver")
    reopened = (
        await gql.data(
            REOPEN,
            {"input": {"itemId": global_id("WorkflowItem", view.id)}},
            as_user="dave",
        )
    )["reopenAsIncidentReview"]
    assert reopened["errors"] == []
    assert reopened["item"]["title"] == "Review: Deploy"
    linked = await gql.data(REVIEW, {"itemId": reopened["item"]["id"]}, as_user="dave")
    assert linked["incidentReview"]["reviewedItem"] == {
        "id": global_id("WorkflowItem", view.id),
        "state": "APPROVED",
    }
    assert linked["incidentReview"]["snapshot"]["name"] == "history.json"
    assert linked["precedent"]["nodes"] == []  # the reviewed item is not its own precedent
