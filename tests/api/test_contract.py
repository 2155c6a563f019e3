"""The schema's contract rules, checked by walking the exported schema, so that they stay true
as the schema grows (what frontend tooling such as relay-compiler and graphql-codegen needs)."""

from __future__ import annotations

from collections import defaultdict

from graphql import GraphQLObjectType, GraphQLScalarType, build_schema, specified_scalar_types

from signoff.api.nodes import RESOLVERS
from tests.conftest import REPO

SCHEMA = build_schema((REPO / "schema.graphql").read_text())


def _objects_with_ids() -> list[GraphQLObjectType]:
    return [
        t
        for name, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLObjectType) and not name.startswith("__") and "id" in t.fields
    ]


def test_fields_shared_by_objects_with_ids_have_one_type():
    """A `node(id:)` query with fragments on two types merges their fields by name: a name
    with two types fails validation in every client (relay-compiler, codegen, inspector)."""
    types_of: dict[str, dict[str, str]] = defaultdict(dict)
    for object_type in _objects_with_ids():
        for name, field in object_type.fields.items():
            types_of[name][object_type.name] = str(field.type)
    conflicts = {name: by for name, by in types_of.items() if len(set(by.values())) > 1}
    assert conflicts == {}


def test_custom_scalars_name_their_specification():
    custom = [
        t
        for name, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLScalarType) and name not in specified_scalar_types
    ]
    assert custom
    assert [t.name for t in custom if not t.specified_by_url] == []


def test_every_object_with_an_id_is_a_node_that_node_id_resolves():
    with_ids = {t.name for t in _objects_with_ids()}
    nodes = {t.name for t in SCHEMA.get_possible_types(SCHEMA.type_map["Node"])}
    assert with_ids == nodes
    assert set(RESOLVERS) == nodes
