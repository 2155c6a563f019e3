"""Breaking changes against the last released schema, and whether each was announced.

`schema.released.graphql` holds the schema as it was at the last release (`signoff schema
release` writes it when a version is cut). `signoff schema check` compares today's schema with
it using graphql-core's `find_breaking_changes` and refuses any break that is neither

- the removal of something the released schema had already deprecated (deprecate, then remove),
  nor
- announced: its schema coordinate (`Type.field`, `Enum.VALUE`, `Type`, `@directive`) is named in
  the `## Unreleased` section of `CHANGELOG.md`.

Dangerous changes (a new enum value, a new optional argument) are reported, never refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graphql import (
    BreakingChange,
    BreakingChangeType,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)

__all__ = ["Break", "SchemaComparison", "compare_schemas", "unreleased_section"]

_REMOVALS = {
    BreakingChangeType.FIELD_REMOVED,
    BreakingChangeType.VALUE_REMOVED_FROM_ENUM,
    BreakingChangeType.ARG_REMOVED,
}


@dataclass(frozen=True)
class Break:
    coordinate: str
    description: str
    announced: bool
    deprecated_first: bool

    @property
    def allowed(self) -> bool:
        return self.announced or self.deprecated_first


@dataclass(frozen=True)
class SchemaComparison:
    breaks: list[Break]
    dangerous: list[str]

    @property
    def unannounced(self) -> list[Break]:
        return [b for b in self.breaks if not b.allowed]


def unreleased_section(changelog: str) -> str:
    """The text of the changelog's `## Unreleased` section ('' when there is none)."""
    match = re.search(r"^## Unreleased\s*$(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    return match.group(1) if match else ""


_SPECIFIC = re.compile(r"@\w+(?:\(\w+:\))?|\b[A-Za-z_]\w*\.[A-Za-z_]\w*(?:\(\w+:\))?")


def _coordinate(change: BreakingChange, released: GraphQLSchema) -> str:
    """The schema coordinate a break is about (`Type.field(arg:)`, `Enum.VALUE`, `@directive`,
    `Type`), read from graphql-core's description of it."""
    text = change.description
    specific = _SPECIFIC.search(text)
    if specific:
        return specific.group(0)
    words = [w.strip(".,") for w in text.split()]
    if change.type is BreakingChangeType.TYPE_REMOVED_FROM_UNION:
        return words[-1]
    types = [w for w in words if w in released.type_map]
    return types[0] if types else text


def _deprecated_in(released: GraphQLSchema, change: BreakingChange, coordinate: str) -> bool:
    if change.type not in _REMOVALS:
        return False
    type_name, _, member = coordinate.partition(".")
    member, _, arg_part = member.partition("(")
    gtype = released.type_map.get(type_name)
    if isinstance(gtype, GraphQLEnumType):
        value = gtype.values.get(member)
        return bool(value and value.deprecation_reason)
    if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType):
        field = gtype.fields.get(member)
        if field is None:
            return False
        if change.type is BreakingChangeType.FIELD_REMOVED:
            return bool(field.deprecation_reason)
        arg = field.args.get(arg_part.rstrip(":)"))
        return bool(arg and arg.deprecation_reason)
    return False


def _named(coordinate: str, announcements: str) -> bool:
    """Whether the announcements name the coordinate (or, for an argument, its field)."""
    coordinate = coordinate.split("(", 1)[0]
    pattern = r"(?<![\w.@])" + re.escape(coordinate) + r"(?![\w])"
    return re.search(pattern, announcements) is not None


def compare_schemas(released_sdl: str, current_sdl: str, changelog: str) -> SchemaComparison:
    released = build_schema(released_sdl)
    current = build_schema(current_sdl)
    announcements = unreleased_section(changelog)
    breaks = []
    for change in find_breaking_changes(released, current):
        coordinate = _coordinate(change, released)
        breaks.append(
            Break(
                coordinate=coordinate,
                description=change.description,
                announced=_named(coordinate, announcements),
                deprecated_first=_deprecated_in(released, change, coordinate),
            )
        )
    dangerous = [change.description for change in find_dangerous_changes(released, current)]
    return SchemaComparison(breaks=breaks, dangerous=dangerous)
