"""Comments through GraphQL: the mutations' payloads and typed errors, the paged query."""

from __future__ import annotations

from signoff.services import comments as comment_services
from tests.conftest import actor
from tests.realtime.conftest import global_id, submit

ADD = """mutation($input: AddCommentInput!) {
  addComment(input: $input) {
    comment {
      id threadId replyToId stepId authorId body bodySha256 mentions version edited deleted
    }
    errors { code field message }
  }
}"""
EDIT = """mutation($input: EditCommentInput!) {
  editComment(input: $input) {
    comment { id body version revision edited revisions { revision body editorId reason } }
    errors { code field }
  }
}"""
DELETE = """mutation($input: DeleteCommentInput!) {
  deleteComment(input: $input) { comment { id body deleted deletedBy mentions } errors { code } }
}"""
LIST = """query($itemId: ID!, $stepId: ID, $first: Int, $after: String) {
  comments(itemId: $itemId, stepId: $stepId, first: $first, after: $after) {
    edges { cursor node { id body deleted replyToId } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_a_thread_through_the_api(gql, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    added = (
        await gql.data(ADD, {"input": {"itemId": item_id, "body": " Hi @bob "}}, as_user="dave")
    )["addComment"]
    assert added["errors"] == []
    root = added["comment"]
    assert (root["body"], root["mentions"], root["version"], root["threadId"]) == (
        "Hi @bob",
        ["bob"],
        1,
        root["id"],
    )
    reply = (
        await gql.data(
            ADD,
            {"input": {"replyToId": root["id"], "body": "here"}},
            as_user="bob",
            roles=("change-approver",),
        )
    )["addComment"]["comment"]
    assert (reply["threadId"], reply["replyToId"]) == (root["id"], root["id"])

    edited = (
        await gql.data(
            EDIT,
            {
                "input": {
                    "commentId": root["id"],
                    "body": "Hi @bob!",
                    "guards": {"expectedVersion": 1},
                }
            },
            as_user="dave",
        )
    )["editComment"]
    assert edited["errors"] == []
    assert [r["body"] for r in edited["comment"]["revisions"]] == ["Hi @bob", "Hi @bob!"]

    stale = (
        await gql.data(
            EDIT,
            {"input": {"commentId": root["id"], "body": "late", "guards": {"expectedVersion": 1}}},
            as_user="dave",
        )
    )["editComment"]
    assert stale == {
        "comment": None,
        "errors": [{"code": "VERSION_CONFLICT", "field": "guards.expectedVersion"}],
    }

    deleted = (await gql.data(DELETE, {"input": {"commentId": root["id"]}}, as_user="dave"))[
        "deleteComment"
    ]
    assert deleted["comment"] == {
        "id": root["id"],
        "body": None,
        "deleted": True,
        "deletedBy": "dave",
        "mentions": [],
    }

    first = (await gql.data(LIST, {"itemId": item_id, "first": 1}, as_user="dave"))["comments"]
    assert [e["node"]["id"] for e in first["edges"]] == [root["id"]]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (
        await gql.data(
            LIST, {"itemId": item_id, "after": first["pageInfo"]["endCursor"]}, as_user="dave"
        )
    )["comments"]
    assert [e["node"] for e in rest["edges"]] == [
        {"id": reply["id"], "body": "here", "deleted": False, "replyToId": root["id"]}
    ]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_refusals_are_typed_and_change_nothing(gql, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    # Unclean text is refused by the API's input layer before the mutation runs.
    for body in ("x" * 10001, "a\x00b"):
        response = await gql.run(
            ADD, {"input": {"itemId": item_id, "body": body}}, token=gql.token("dave")
        )
        (error,) = response.json()["errors"]
        assert (error["extensions"]["code"], error["extensions"]["field"]) == (
            "INVALID_INPUT",
            "input.body",
        )
    cases = [
        ({"body": "nowhere"}, "dave", "INVALID_INPUT", "itemId"),
        ({"itemId": "not-an-id", "body": "x"}, "dave", "INVALID_INPUT", "itemId"),
        ({"stepId": item_id, "body": "x"}, "dave", "INVALID_INPUT", "stepId"),
        ({"itemId": item_id, "body": "x"}, "eve", "NOT_FOUND", None),
    ]
    for variables, user, code, field in cases:
        result = (await gql.data(ADD, {"input": variables}, as_user=user))["addComment"]
        assert result["comment"] is None
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], variables
    listed = (await gql.data(LIST, {"itemId": item_id}, as_user="dave"))["comments"]
    assert listed["edges"] == []
    # Someone who may not read the item gets a coded error, not the comments.
    response = await gql.run(LIST, {"itemId": item_id}, token=gql.token("eve"))
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    too_big = await gql.run(LIST, {"itemId": item_id, "first": 1000}, token=gql.token("dave"))
    assert too_big.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


BACKWARDS = """query($itemId: ID!, $last: Int, $before: String, $first: Int) {
  comments(itemId: $itemId, last: $last, before: $before, first: $first) {
    edges { node { body } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_comments_page_backwards_with_last_and_before(gql, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "paged")
    item_id = global_id("WorkflowItem", view.id)
    for n in range(5):
        await comment_services.add_comment(
            actor(tenant, "dave"),
            services,
            comment_services.AddCommentInput(body=f"c{n}", item_id=view.id),
        )

    async def page(**variables):
        data = await gql.data(BACKWARDS, {"itemId": item_id, **variables}, as_user="dave")
        return data["comments"]

    newest = await page(last=2)
    assert [e["node"]["body"] for e in newest["edges"]] == ["c3", "c4"]
    assert (newest["pageInfo"]["hasPreviousPage"], newest["pageInfo"]["hasNextPage"]) == (
        True,
        False,
    )
    older = await page(last=2, before=newest["pageInfo"]["startCursor"])
    assert [e["node"]["body"] for e in older["edges"]] == ["c1", "c2"]
    assert (older["pageInfo"]["hasPreviousPage"], older["pageInfo"]["hasNextPage"]) == (
        True,
        True,
    )
    oldest = await page(last=2, before=older["pageInfo"]["startCursor"])
    assert [e["node"]["body"] for e in oldest["edges"]] == ["c0"]
    assert oldest["pageInfo"]["hasPreviousPage"] is False

    mixed = await gql.run(
        BACKWARDS, {"itemId": item_id, "last": 2, "first": 2}, token=gql.token("dave")
    )
    [error] = mixed.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
