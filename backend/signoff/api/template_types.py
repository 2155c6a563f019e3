"""Template versions in GraphQL, with the fields of the payload their items carry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, services_of
from signoff.api.enums import PayloadFieldType
from signoff.api.node import Node
from signoff.domain import diagram_svg, records
from signoff.domain.diagram_svg import DiagramFormat
from signoff.domain.records import TemplateStatus
from signoff.domain.templates import TemplateKind
from signoff.services.templates import definition_of


@strawberry.type(description="One field of the payload a template's items carry.")
class TemplateField:
    name: str = strawberry.field(description="The payload key.")
    type: PayloadFieldType = strawberry.field(description="The JSON type of its value.")
    required: bool = strawberry.field(description="Whether an item must give it.")
    max_length: int | None = strawberry.field(
        description="At most this many characters (a string) or items (an array)."
    )
    allowed_values: list[JSON] | None = strawberry.field(
        description="The only values it may take, when the template lists them."
    )

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> TemplateField:
        """Map one entry of a definition's `fields`."""
        allowed = spec.get("enum")
        return cls(
            name=name,
            type=PayloadFieldType(spec.get("type", "string")),
            required=bool(spec.get("required", False)),
            max_length=spec.get("max_length"),
            allowed_values=list(allowed) if allowed is not None else None,
        )


@strawberry.type(description="One version of a review process.")
class Template(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    key: str = strawberry.field(description="Stable key shared by all versions.")
    version: int = strawberry.field(description="Version number, from 1.")
    name: str = strawberry.field(description="Display name.")
    kind: TemplateKind = strawberry.field(description="Kind of item it reviews.")
    status: TemplateStatus = strawberry.field(description="Where the version stands.")
    definition: JSON = strawberry.field(description="The normalised definition.")
    created_by: str = strawberry.field(description="Who saved it.")
    created_at: datetime = strawberry.field(description="When it was saved.")
    published_at: datetime | None = strawberry.field(description="When it was published.")
    field_specs: strawberry.Private[Mapping[str, Any]]
    record: strawberry.Private[records.TemplateVersion]

    @strawberry.field(
        description="The fields of the payload its items carry, in the template's order: what "
        "a form needs to render (and check) an item's `payload`."
    )
    def fields(self) -> list[TemplateField]:
        return [TemplateField.from_spec(name, spec) for name, spec in self.field_specs.items()]

    @strawberry.field(
        description="Its step graph as Mermaid flowchart text or as SVG laid out on the "
        "server (docs/reference/diagrams.md)."
    )
    def diagram(
        self,
        info: Info[SignoffContext, Any],
        fmt: Annotated[
            DiagramFormat,
            strawberry.argument(name="format", description="Mermaid text (default) or SVG."),
        ] = DiagramFormat.MERMAID,
    ) -> str:
        return diagram_svg.draw(definition_of(self.record, services_of(info).settings), None, fmt)

    @classmethod
    def from_record(cls, template: records.TemplateVersion) -> Template:
        """Map a template version record."""
        return cls(
            id=strawberry.ID(ids.encode("Template", template.id)),
            key=template.key,
            version=template.version,
            name=template.name,
            kind=template.kind,
            status=template.status,
            definition=JSON(dict(template.definition)),
            created_by=template.created_by,
            created_at=template.created_at,
            published_at=template.published_at,
            field_specs=dict(template.definition.get("fields") or {}),
            record=template,
        )
