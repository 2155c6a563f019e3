"""Every object with an id is reachable with `node(id:)`, and the read paths between them:
a step's item, an item's template with its fields, people with their display names."""

from __future__ import annotations

from signoff.services import comments as comment_services
from tests.conftest import actor
from tests.realtime.conftest import global_id, submit

NODE = """query($id: ID!) { node(id: $id) { __typename id } }"""
ITEM = """query($id: ID!) { item(id: $id) {
  id requester { id userId displayName }
  template { id key version status fields { name type required maxLength allowedValues } }
  steps { id stepState item { id } claimant { userId }
          decisions { actor { displayName } } }
} }"""
PROFILE = """mutation($input: UserProfileInput!) {
  upsertUserProfile(input: $input) { errors { code } } }"""
OPEN = """mutation($input: OpenIncidentReviewInput!) {
  openIncidentReview(input: $input) { item { id } errors { code } } }"""
EVIDENCE = """query($itemId: ID!) { evidence(itemId: $itemId) { id uploader { userId } } }"""
COMMENTS = """query($itemId: ID!) { comments(itemId: $itemId) {
  edges { node { id author { displayName } } } } }"""


async def test_node_resolves_every_kind_of_object_and_the_links_between_them(
    gql, services, tenant, demo_templates
):
    admin = {"as_user": "root", "roles": ("admin",)}
    await gql.data(PROFILE, {"input": {"userId": "dave", "displayName": "Dave Requester"}}, **admin)
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    item = (await gql.data(ITEM, {"id": item_id}, as_user="dave"))["item"]

    assert item["requester"]["userId"] == "dave"
    assert item["requester"]["displayName"] == "Dave Requester"
    template = item["template"]
    assert (template["key"], template["status"]) == ("change-approval", "PUBLISHED")
    fields = {f["name"]: f for f in template["fields"]}
    assert fields["rollback_plan"] == {
        "name": "rollback_plan",
        "type": "STRING",
        "required": True,
        "maxLength": 4000,
        "allowedValues": None,
    }
    assert fields["risk"]["allowedValues"] == ["low", "medium", "high"]
    step = item["steps"][0]
    assert step["item"]["id"] == item_id
    assert step["claimant"] is None

    await comment_services.add_comment(
        actor(tenant, "dave"),
        services,
        comment_services.AddCommentInput(body="context", item_id=view.id),
    )
    comments = await gql.data(COMMENTS, {"itemId": item_id}, as_user="dave")
    [edge] = comments["comments"]["edges"]
    assert edge["node"]["author"]["displayName"] == "Dave Requester"

    opened = await gql.data(
        OPEN,
        {"input": {"sourceRef": "d-1", "sourceKind": "DECISION", "title": "t", "snapshot": {}}},
        **admin,
    )
    review_id = opened["openIncidentReview"]["item"]["id"]
    [evidence] = (await gql.data(EVIDENCE, {"itemId": review_id}, **admin))["evidence"]
    assert evidence["uploader"]["userId"]

    person_id = item["requester"]["id"]
    expected = {
        item_id: "WorkflowItem",
        step["id"]: "Step",
        template["id"]: "Template",
        edge["node"]["id"]: "Comment",
        evidence["id"]: "Evidence",
        person_id: "Person",
    }
    for node_id, type_name in expected.items():
        found = (await gql.data(NODE, {"id": node_id}, **admin))["node"]
        assert found == {"__typename": type_name, "id": node_id}
    # another tenant's ids, or ids the caller may not read, are null, not errors
    other = await gql.data(NODE, {"id": item_id}, as_user="stranger")
    assert other["node"] is None
