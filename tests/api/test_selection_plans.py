"""The executor's selection plans answer exactly what graphql-core's generic path does.

`api/selection_plans.py` answers object selections (an object, a list of objects or of leaves,
their basic fields) from a plan and gives everything else, every error included, to the
generic path. The invariant: for any objects and any selection — drawn subsets of fields,
aliases, fragments (inline and named), merged selections, `__typename`, `@skip`/`@include`
with drawn variables, fields with resolvers, interfaces — the result (data, and errors with
their messages and paths) is the same with and without the plans. Values are drawn good, null,
of a type the field refuses, of another object type, or raising when read.

The same invariant over real requests through the HTTP app (status, headers, body, audit,
metrics, logs; callers with and without rights; bad input) is in
`tests/api/test_selection_plans_requests.py`.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from signoff.api import selection_plans
from signoff.api.schema import schema as signoff_schema
from signoff.api.selection_plans import PlannedExecutor
from signoff.api.shared_results import LiveExecutor
from tests.api.test_leaf_fields import Raising as Source


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leaf(Named):
    count: int
    maybe: str | None
    colours: list[Colour]
    maybe_colours: list[Colour | None] | None


@strawberry.type
class Branch:
    title: str
    at: datetime
    leaf: Leaf
    maybe_leaf: Leaf | None
    leaves: list[Leaf]
    maybe_leaves: list[Leaf | None] | None

    @strawberry.field
    def shout(self) -> str:
        return self.title.upper()


@strawberry.type
class Query:
    branches: list[Branch]


FAST = strawberry.Schema(query=Query, types=[Leaf], execution_context_class=PlannedExecutor)
GENERIC = strawberry.Schema(
    query=Query, types=[Leaf], execution_context_class=StrawberryGraphQLCoreExecutionContext
)


LEAF_FIELDS = ("name", "count", "maybe", "colours", "maybe_colours")
BAD = st.one_of(st.builds(object), st.floats(allow_nan=True), st.just(2**40), st.just("7"))
GOOD_COLOURS = st.lists(st.sampled_from(list(Colour)), max_size=3)
BAD_COLOURS = st.one_of(
    st.lists(st.one_of(st.none(), st.sampled_from(list(Colour)), st.just("green")), max_size=3),
    st.none(),
    st.just("RED"),  # a string is not a list
    st.tuples(st.sampled_from(list(Colour))),
)
GOOD_LEAF = {
    "name": st.text(max_size=3),
    "count": st.integers(-5, 5),
    "maybe": st.one_of(st.none(), st.text(max_size=3)),
    "colours": GOOD_COLOURS,
    "maybe_colours": st.one_of(st.none(), GOOD_COLOURS),
}
BAD_LEAF = {
    "name": st.one_of(st.none(), BAD),
    "count": st.one_of(st.none(), BAD),
    "maybe": BAD,
    "colours": BAD_COLOURS,
    "maybe_colours": BAD_COLOURS,
}


@st.composite
def values(draw: Any, good: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    """Good values for every field, and in half the cases one field's bad (null, of a type
    the field refuses, a list with a null or a foreign value, a string for a list)."""
    out = {name: draw(strategy) for name, strategy in good.items()}
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(bad)))
        out[name] = draw(bad[name])
    return out


@st.composite
def leaves(draw: Any) -> Any:
    fields = draw(values(GOOD_LEAF, BAD_LEAF))
    kind = draw(st.sampled_from(["real"] * 6 + ["stand-in", "none", "raising-read"]))
    if kind == "real":
        return Leaf(**fields)
    if kind == "none":
        return None
    raising = draw(st.sets(st.sampled_from(LEAF_FIELDS), max_size=1))
    return Source(fields, raising)  # not a `Leaf`: the interface's type check refuses it


GOOD_LISTS = st.lists(leaves(), max_size=3)
GOOD_BRANCH = {
    "title": st.text(max_size=3),
    "at": st.just(datetime(2026, 1, 2, tzinfo=UTC)),
    "leaf": leaves(),
    "maybe_leaf": leaves(),
    "leaves": GOOD_LISTS,
    "maybe_leaves": st.one_of(st.none(), GOOD_LISTS),
}
BAD_BRANCH = {
    "title": st.one_of(st.none(), BAD),
    "at": st.one_of(st.none(), BAD),
    "leaf": st.none(),
    "leaves": st.one_of(st.none(), st.just("x"), st.just((None,))),
    "maybe_leaves": st.just("x"),
}
BRANCH_FIELDS = tuple(GOOD_BRANCH)
BRANCH = st.builds(
    Source,
    values(GOOD_BRANCH, BAD_BRANCH),
    st.one_of(st.builds(set), st.sets(st.sampled_from(BRANCH_FIELDS))),
)

LEAF_SELECTIONS = [
    "name",
    "count",
    "maybe",
    "colours",
    "maybeColours",
    "__typename",
    "n2: name",
    "... on Leaf { count }",
    "... on Named { name }",
    "...LeafBits",
    "name @skip(if: $skip)",
    "count @include(if: $include)",
]
LEAF_OBJECT_FIELDS = ["leaf", "maybeLeaf", "leaves", "maybeLeaves", "other: leaf"]
BRANCH_SELECTIONS = ["title", "at", "shout", "__typename", "t2: title", "...BranchBits"]


@st.composite
def selections(draw: Any) -> str:
    parts = draw(st.lists(st.sampled_from(BRANCH_SELECTIONS), max_size=3))
    for name in draw(st.lists(st.sampled_from(LEAF_OBJECT_FIELDS), min_size=1, max_size=3)):
        sub = draw(st.lists(st.sampled_from(LEAF_SELECTIONS), min_size=1, max_size=4))
        directive = draw(st.sampled_from(["", " @include(if: $include)", " @skip(if: $skip)"]))
        parts.append(f"{name}{directive} {{ {' '.join(sub)} }}")
    body = " ".join(parts)
    # only what the body uses is declared (an unused variable or fragment fails validation)
    variables = [f"${v}: Boolean!" for v in ("skip", "include") if f"${v}" in body]
    fragments = {
        "...LeafBits": "fragment LeafBits on Leaf { maybe count }",
        "...BranchBits": "fragment BranchBits on Branch { at leaf { name } }",
    }
    head = f"query Q({', '.join(variables)})" if variables else "query Q"
    text = f"{head} {{ branches {{ {body} }} }}"
    for spread, fragment in fragments.items():
        if spread in text:
            text += "\n" + fragment
    return text


def shape(result: Any) -> tuple[Any, list[tuple[str, tuple[Any, ...]]]]:
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


@settings(max_examples=400, deadline=None)
@given(
    branches=st.lists(BRANCH, max_size=3),
    query=selections(),
    skip=st.booleans(),
    include=st.booleans(),
)
async def test_the_plans_answer_what_the_generic_path_answers(
    branches: list[Source], query: str, skip: bool, include: bool
) -> None:
    root = Query(branches=branches)  # type: ignore[arg-type]
    variables = {"skip": skip, "include": include}
    fast = await FAST.execute(query, root_value=root, variable_values=variables)
    generic = await GENERIC.execute(query, root_value=root, variable_values=variables)
    # the document is valid: every error is a field's, with its path
    assert all(e.path for e in generic.errors or []), generic.errors
    assert shape(fast) == shape(generic)


def good_leaf(name: str) -> Leaf:
    return Leaf(name=name, count=1, maybe=None, colours=[Colour.RED], maybe_colours=None)


def good_branch() -> Source:
    values = {
        "title": "t",
        "at": datetime(2026, 1, 2, tzinfo=UTC),
        "leaf": good_leaf("a"),
        "maybe_leaf": None,
        "leaves": [good_leaf("b"), good_leaf("c")],
        "maybe_leaves": [None, good_leaf("d")],
    }
    return Source(values, set())


async def test_good_values_take_a_plan_and_errors_do_not(monkeypatch: Any) -> None:
    planned: list[Any] = []
    real = PlannedExecutor._planned_value

    def counting(self: PlannedExecutor, plan: Any, source: Any) -> Any:
        value = real(self, plan, source)
        planned.append((plan[0], value is selection_plans._GENERIC))
        return value

    monkeypatch.setattr(PlannedExecutor, "_planned_value", counting)
    query = """{ branches { title leaves { __typename name k: count colours }
      maybeLeaves { name } } }"""
    result = await FAST.execute(query, root_value=Query(branches=[good_branch()]))  # type: ignore[list-item]
    assert result.errors is None
    assert result.data == {
        "branches": [
            {
                "title": "t",
                "leaves": [
                    {"__typename": "Leaf", "name": "b", "k": 1, "colours": ["RED"]},
                    {"__typename": "Leaf", "name": "c", "k": 1, "colours": ["RED"]},
                ],
                "maybeLeaves": [None, {"name": "d"}],
            }
        ]
    }
    # both lists were answered by their plans, none handed over
    assert ("leaves", False) in planned and ("maybeLeaves", False) in planned
    assert not [name for name, generic in planned if generic]

    planned.clear()
    bad = good_branch()
    bad._values["leaves"] = [good_leaf("b"), Source({"name": None}, set())]
    result = await FAST.execute(query, root_value=Query(branches=[bad]))  # type: ignore[list-item]
    assert ("leaves", True) in planned  # handed to the generic path, which reports the error
    assert [(e.message, tuple(e.path or ())) for e in result.errors or []] == [
        (
            "Expected value of type 'Leaf' but got: <Raising instance>.",
            ("branches", 0, "leaves", 1),
        )
    ]


def test_which_selections_of_the_served_schema_have_plans() -> None:
    """The bench's page selection has one; a field with a resolver or arguments has none."""
    assert issubclass(LiveExecutor, PlannedExecutor)
    core = signoff_schema._schema
    edge = core.get_type("InboxEdge")
    item = core.get_type("WorkflowItem")
    assert selection_plans._basic(edge.fields["node"])  # type: ignore[union-attr]
    assert not selection_plans._basic(item.fields["steps"])  # type: ignore[union-attr]
    assert not selection_plans._basic(item.fields["payload"])  # type: ignore[union-attr]
    assert selection_plans._is_strawberry_type_check(item.is_type_of)  # type: ignore[union-attr]
