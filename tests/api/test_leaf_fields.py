"""The executor's leaf-field fast path answers exactly what graphql-core's generic path does.

`api/leaf_fields.py` answers basic scalar and enum fields itself and hands everything else,
every error included, to the generic path. The invariant: for any object and any selection,
the result (data, and errors with their messages and paths) is the same with and without the
fast path. Checked over generated values of every leaf kind — nullable and non-null, good,
null and values the type refuses, attributes whose reading raises — plus the schema signoff
serves.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from signoff.api.leaf_fields import LeafFieldsExecutor, plan_of
from signoff.api.schema import schema as signoff_schema


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Boom(Exception):
    pass


@strawberry.type
class Thing:
    name: str
    maybe_name: str | None
    count: int
    maybe_count: int | None
    colour: Colour
    maybe_colour: Colour | None
    at: datetime
    flag: bool

    @strawberry.field
    def computed(self) -> str:
        return self.name.upper()


@strawberry.type
class Query:
    things: list[Thing]


def build(executor: type) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=executor)


FAST = build(LeafFieldsExecutor)
GENERIC = build(StrawberryGraphQLCoreExecutionContext)

QUERY = """{ things { name maybeName count maybeCount colour maybeColour at flag computed
  again: name } }"""


class Raising:
    """A source whose attribute reads may raise (as a property can)."""

    def __init__(self, values: dict[str, Any], raising: set[str]) -> None:
        self._values = values
        self._raising = raising

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._raising:
            raise Boom(f"cannot read {name}")
        return self._values[name]


FIELDS = ("name", "maybe_name", "count", "maybe_count", "colour", "maybe_colour", "at", "flag")

# good values, nulls, and values their types refuse (a string for an Int, an int out of
# 32-bit range, a foreign enum value, an object for a String)
ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(min_value=-(2**33), max_value=2**33),
    st.sampled_from(list(Colour)),
    st.sampled_from(["red", "RED", "green"]),
    st.just(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    st.booleans(),
    st.floats(allow_nan=True),
    st.builds(object),
)
THING = st.builds(
    Raising,
    st.fixed_dictionaries({f: ANY_VALUE for f in FIELDS}),
    st.sets(st.sampled_from(FIELDS)),
)


def shape(result: Any) -> tuple[Any, list[tuple[str, tuple[Any, ...]]]]:
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


@settings(max_examples=300, deadline=None)
@given(things=st.lists(THING, max_size=4))
async def test_the_fast_path_answers_what_the_generic_path_answers(things: list[Raising]) -> None:
    for thing in things:
        # `computed` has a resolver: always the generic way; give it a string to upper-case
        thing._values.setdefault("name", "x")
    root = Query(things=things)  # type: ignore[arg-type]
    fast = await FAST.execute(QUERY, root_value=root)
    generic = await GENERIC.execute(QUERY, root_value=root)
    assert shape(fast) == shape(generic)


async def test_good_values_take_the_fast_path_and_errors_do_not() -> None:
    good = Raising(
        {
            "name": "a",
            "maybe_name": None,
            "count": 3,
            "maybe_count": None,
            "colour": Colour.RED,
            "maybe_colour": None,
            "at": datetime(2026, 1, 2, tzinfo=UTC),
            "flag": True,
        },
        set(),
    )
    result = await FAST.execute(QUERY, root_value=Query(things=[good]))  # type: ignore[list-item]
    assert result.errors is None
    assert result.data == {
        "things": [
            {
                "name": "a",
                "maybeName": None,
                "count": 3,
                "maybeCount": None,
                "colour": "RED",
                "maybeColour": None,
                "at": "2026-01-02T00:00:00+00:00",
                "flag": True,
                "computed": "A",
                "again": "a",
            }
        ]
    }
    for bad, error in [
        (
            Raising({**good._values, "count": None}, set()),
            ("Cannot return null for non-nullable field Thing.count.", ("things", 0, "count")),
        ),
        (Raising(good._values, {"flag"}), ("cannot read flag", ("things", 0, "flag"))),
    ]:
        result = await FAST.execute(QUERY, root_value=Query(things=[bad]))  # type: ignore[list-item]
        # a non-null field's error reaches the non-null list's parent
        assert result.data is None
        assert [(e.message, tuple(e.path or ())) for e in result.errors or []] == [error]


def test_which_fields_of_the_served_schema_are_answered_directly() -> None:
    """Basic leaf fields are; fields with a resolver, arguments or an object type are not."""
    core = signoff_schema._schema
    item = core.get_type("WorkflowItem")
    edge = core.get_type("InboxEdge")
    assert plan_of(item.fields["title"]) is not None  # type: ignore[union-attr]
    assert plan_of(item.fields["state"]) is not None  # type: ignore[union-attr]
    assert plan_of(edge.fields["dueAt"]) is not None  # type: ignore[union-attr]
    assert plan_of(item.fields["steps"]) is None  # type: ignore[union-attr]
    assert plan_of(item.fields["payload"]) is None  # type: ignore[union-attr]
    assert plan_of(edge.fields["node"]) is None  # type: ignore[union-attr]
