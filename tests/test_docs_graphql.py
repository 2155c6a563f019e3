"""Every GraphQL block in the docs is real: an operation validates against `schema.graphql` (so a
renamed field or argument breaks this test, not a reader's first try), and a schema excerpt
(`type Query { inbox(...): ... }`) states its fields exactly as the schema has them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    GraphQLObjectType,
    ObjectTypeDefinitionNode,
    build_schema,
    parse,
    print_ast,
    validate,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = build_schema((REPO / "schema.graphql").read_text())
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "console" / "README.md"]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        if not page.exists():
            continue
        text = page.read_text()
        for match in re.finditer(r"```graphql\n(.*?)```", text, flags=re.S):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{page.relative_to(REPO)}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def test_the_docs_have_graphql_blocks():
    assert len(BLOCKS) >= 20  # the collection is not vacuous (21 blocks when written)


def _excerpt_matches(document: DocumentNode, where: str) -> None:
    for definition in document.definitions:
        assert isinstance(definition, ObjectTypeDefinitionNode), where
        actual = SCHEMA.get_type(definition.name.value)
        assert isinstance(actual, GraphQLObjectType), f"{where}: no type {definition.name.value}"
        for field in definition.fields or ():
            name = f"{definition.name.value}.{field.name.value}"
            assert field.name.value in actual.fields, f"{where}: no field {name}"
            real = actual.fields[field.name.value]
            assert print_ast(field.type) == str(real.type), f"{where}: {name}'s type"
            written = {a.name.value: print_ast(a.type) for a in field.arguments or ()}
            assert written == {n: str(a.type) for n, a in real.args.items()}, (
                f"{where}: {name}'s arguments"
            )


@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_graphql_block_matches_the_schema(where, block):
    document = parse(block)
    if any(isinstance(d, ObjectTypeDefinitionNode) for d in document.definitions):
        _excerpt_matches(document, where)
        return
    errors = validate(SCHEMA, document)
    assert not errors, f"{where}: {[e.message for e in errors]}"
