"""Real requests are answered alike with and without the executor's selection plans.

Each example runs one sequence of real requests through the HTTP app twice, each time in a
tenant of its own (`tests/api/test_known_documents.py::Sequencer`): once with every field
taken graphql-core's generic way (leaves still on `LeafFieldsExecutor`'s path), once with the
plans of `api/selection_plans.py`. Status, headers, body, audit trail, metrics and log lines
must be the same. The sequences draw inbox selections (aliases, fragments, `__typename`,
`@skip`/`@include`, fields with resolvers beside planned ones), variables, filters, orders and
cursors (good, foreign, garbage), and callers with and without rights (a reviewer, an
approver, the requester, no token, a refused token).

The invariant on rights: a plan answers only basic fields of objects that the generic path's
resolvers returned, with their checks; so a caller sees with plans exactly what the generic
path shows them, refusals included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api.leaf_fields import LeafFieldsExecutor
from signoff.api.selection_plans import PlannedExecutor
from tests.api.test_known_documents import (
    APPROVER,
    READER,
    REQUESTER,
    Call,
    Run,
    Sequencer,
    sequencer,  # noqa: F401  (the fixture)
)

NODE_FIELDS = [
    "id",
    "title",
    "priority",
    "risk",
    "state",
    "kind",
    "__typename",
    "t: title",
    "version createdAt",
    "steps { key stepState }",  # a resolver: never planned
    "... on WorkflowItem { requesterId }",
    "...ItemBits",
    "externalRef @include(if: $flag)",
    "environment @skip(if: $flag)",
]
EDGE_FIELDS = ["cursor", "dueAt", "overdue", "claim", "__typename", "c: cursor"]
PAGE_FIELDS = [
    "pageInfo { hasNextPage endCursor }",
    "pageInfo { hasPreviousPage startCursor __typename }",
    "totalCount",
    "eventCursor",
    "nodes { id title }",
    "__typename",
]
FILTERS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "states": st.lists(st.sampled_from(["PENDING", "IN_REVIEW", "APPROVED"]), max_size=2),
            "priorityMin": st.integers(-3, 3),
            "text": st.sampled_from(["Change", "x", "%", "\u0000"]),
            "claim": st.sampled_from(["MINE", "UNCLAIMED", "OTHERS"]),
            "overdue": st.booleans(),
        },
    ),
    st.just({"states": ["NOT_A_STATE"]}),  # bad input: a typed error
)
SORTS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"field": st.sampled_from(["DUE", "PRIORITY", "RISK", "CREATED"])},
        optional={"direction": st.sampled_from(["ASC", "DESC"])},
    ),
)
CURSORS = st.one_of(
    st.none(),
    st.sampled_from(["garbage", "WyJkdWUiLCBmYWxzZSwgbnVsbCwgIngiXQ", ""]),
)
WHO = st.sampled_from([APPROVER, APPROVER, APPROVER, READER, REQUESTER, None, "refused"])


@st.composite
def inbox_calls(draw: Any) -> Call:
    node = " ".join(draw(st.lists(st.sampled_from(NODE_FIELDS), min_size=1, max_size=5)))
    edge = " ".join(draw(st.lists(st.sampled_from(EDGE_FIELDS), max_size=3)))
    page = " ".join(draw(st.lists(st.sampled_from(PAGE_FIELDS), max_size=2)))
    alias = draw(st.sampled_from(["", "box: ", "edges2: "]))
    body = f"{alias}inbox(filter: $filter, sort: $sort, first: $first, after: $after) {{ "
    body += f"edges {{ {edge} node {{ {node} }} }} {page} }}"
    text = (
        "query Page($filter: InboxFilter, $sort: InboxSort, $first: Int, $after: String"
        + (", $flag: Boolean!" if "$flag" in body else "")
        + f") {{ {body} }}"
    )
    if "...ItemBits" in text:
        text += "\nfragment ItemBits on WorkflowItem { priority risk title }"
    variables: dict[str, Any] = {
        "filter": draw(FILTERS),
        "sort": draw(SORTS),
        "first": draw(st.sampled_from([None, 1, 5, 0, 1000])),
        "after": draw(CURSORS),
    }
    if "$flag" in body:
        variables["flag"] = draw(st.booleans())
    return Call(text, variables, who=draw(WHO))


async def _compare(runner: Sequencer, calls: list[Call], monkeypatch: Any) -> Run:
    with monkeypatch.context() as patch:
        patch.setattr(PlannedExecutor, "execute_field", LeafFieldsExecutor.execute_field)
        generic = await runner.run(calls, known=True, monkeypatch=monkeypatch)
    planned = await runner.run(calls, known=True, monkeypatch=monkeypatch)
    # what it answered, wrote to the audit trail, counted and logged
    assert planned == generic
    return planned


FIXED = [
    Call(
        """query Inbox($first: Int, $after: String) {
  inbox(first: $first, after: $after) {
    edges { cursor dueAt claim node { id title priority risk state } }
    pageInfo { hasNextPage endCursor }
  }
}""",
        {"first": 5, "after": None},
        who=who,
    )
    for who in (READER, APPROVER, REQUESTER, None, "refused")
] + [
    Call(
        """query Rich($flag: Boolean!) {
  box: inbox(first: 3) {
    __typename
    edges { __typename c: cursor claim node { __typename ...ItemBits t: title kind
      environment @skip(if: $flag) externalRef @include(if: $flag) } }
    pageInfo { __typename hasNextPage }
  }
}
fragment ItemBits on WorkflowItem { id priority risk state version }""",
        {"flag": flag},
        who=APPROVER,
    )
    for flag in (True, False)
]


async def test_the_bench_page_is_answered_alike_with_plans_or_without(
    sequencer: Sequencer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned_fields: list[str] = []
    real = PlannedExecutor._object_value

    def counting(self: PlannedExecutor, plan: Any, value: Any) -> Any:
        completed = real(self, plan, value)
        planned_fields.append(type(value).__name__)
        return completed

    monkeypatch.setattr(PlannedExecutor, "_object_value", counting)
    run = await _compare(sequencer, FIXED, monkeypatch)
    statuses = [answer[0] for answer in run.answers]
    assert statuses == [200, 200, 200, 401, 401, 200, 200], statuses
    pages = [answer[4] for answer in run.answers[:3]]
    rich = [answer[4]["data"]["box"]["edges"] for answer in run.answers[5:]]
    assert [len(edges) for edges in rich] == [1, 1], rich
    assert rich[0][0]["node"]["__typename"] == "WorkflowItem"
    # the approver sees the item (the reviewer and the requester see none); the plans
    # answered its edge and node
    assert [json.dumps(page).count('"title"') for page in pages] == [0, 1, 0], pages
    assert "InboxEdge" in planned_fields and "WorkflowItem" in planned_fields


@given(st.lists(inbox_calls(), min_size=1, max_size=6))
@hsettings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_any_inbox_sequence_is_answered_alike_with_plans_or_without(
    sequencer: Sequencer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    calls: list[Call],
) -> None:
    await _compare(sequencer, calls, monkeypatch)
