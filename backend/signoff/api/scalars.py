"""The custom scalars of the schema, each with the specification it follows (`@specifiedBy`).

Date, DateTime and Time keep strawberry's ISO 8601 parsing and serialisation; only their
descriptions and specification links are ours. JSON carries strawberry's own link (ECMA-404).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from strawberry.schema.types.base_scalars import DateDefinition, DateTimeDefinition, TimeDefinition
from strawberry.types.scalar import ScalarDefinition

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {
    dt.datetime: dataclasses.replace(
        DateTimeDefinition,
        description="A point in time, RFC 3339 with its offset (`2026-11-29T17:00:00+00:00`).",
        specified_by_url="https://scalars.graphql.org/andimarek/date-time",
    ),
    dt.date: dataclasses.replace(
        DateDefinition,
        description="A calendar date, RFC 3339 `full-date` (`2026-11-29`).",
        specified_by_url="https://scalars.graphql.org/andimarek/local-date",
    ),
    dt.time: dataclasses.replace(
        TimeDefinition,
        description="A local time of day, `HH:MM[:SS[.ffffff]]` (`09:30`).",
        specified_by_url="https://scalars.graphql.org/andimarek/local-time",
    ),
}
"""Passed to the schema as `scalar_overrides`."""
