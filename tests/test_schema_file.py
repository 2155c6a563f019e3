"""`schema.graphql` is generated, committed and current; every part of the schema is described."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    specified_scalar_types,
)

from signoff.api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_file_is_current():
    assert SCHEMA_FILE.exists(), "schema.graphql is missing: run `signoff schema export`"
    expected = schema.as_str().rstrip() + "\n"
    assert SCHEMA_FILE.read_text() == expected, (
        "schema.graphql is out of date: run `signoff schema export`"
    )


def our_types() -> list[GraphQLNamedType]:
    """The schema's own named types: no introspection types, no built-in scalars."""
    return [
        gtype
        for name, gtype in schema._schema.type_map.items()
        if not name.startswith("__") and name not in specified_scalar_types
    ]


def described(thing: object) -> bool:
    return bool((getattr(thing, "description", None) or "").strip())


def test_schema_has_types():
    names = {t.name for t in our_types()}
    assert {"Query", "Mutation", "WorkflowItem", "ErrorCode"} <= names


def test_every_type_and_field_is_described():
    missing: list[str] = []
    for gtype in our_types():
        if not described(gtype):
            missing.append(gtype.name)
        if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            missing += [f"{gtype.name}.{n}" for n, f in gtype.fields.items() if not described(f)]
    assert missing == [], "add a description to: " + ", ".join(missing)


def test_every_argument_is_described():
    missing = [
        f"{gtype.name}.{field_name}({arg_name})"
        for gtype in our_types()
        if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType)
        for field_name, field in gtype.fields.items()
        for arg_name, arg in field.args.items()
        if not described(arg)
    ]
    assert missing == [], "add a description to: " + ", ".join(missing)


def test_every_enum_value_is_described():
    missing = [
        f"{gtype.name}.{value_name}"
        for gtype in our_types()
        if isinstance(gtype, GraphQLEnumType)
        for value_name, value in gtype.values.items()
        if not described(value)
    ]
    assert missing == [], "add a description to: " + ", ".join(missing)


def test_every_connection_has_edges_nodes_and_page_info_and_pages_both_ways():
    """One shape for every list a client pages through (docs/reference/pagination.md): a
    `…Connection` has `edges`, `nodes` and `pageInfo`, and every field returning one takes
    `first`/`after` and `last`/`before`; no field returns a bare list of a connection's
    elements beside it."""
    connections = {t.name for t in our_types() if t.name.endswith("Connection")}
    assert {"InboxConnection", "ItemConnection", "PrecedentEntryConnection"} <= connections
    problems = []
    for name in sorted(connections):
        gtype = schema._schema.type_map[name]
        assert isinstance(gtype, GraphQLObjectType)
        missing = {"edges", "nodes", "pageInfo"} - set(gtype.fields)
        problems += [f"{name} lacks {field}" for field in sorted(missing)]
    for gtype in our_types():
        if not isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType):
            continue
        for field_name, field in gtype.fields.items():
            returned = field.type
            while hasattr(returned, "of_type"):
                returned = returned.of_type
            if getattr(returned, "name", "") in connections:
                missing = {"first", "after", "last", "before"} - set(field.args)
                problems += [f"{gtype.name}.{field_name} lacks {arg}" for arg in sorted(missing)]
    assert problems == []
