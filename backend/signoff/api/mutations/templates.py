"""Saving and publishing templates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.api.mutations.common import TemplatePayload
from signoff.api.types import Template
from signoff.domain.errors import DomainError, invalid
from signoff.domain.records import TemplateVersion
from signoff.services import templates as template_services


@strawberry.input(description="A template document (the YAML format, as JSON).")
class SaveTemplateInput:
    definition: JSON = strawberry.field(description="See docs/reference/templates.md.")
    publish: bool = strawberry.field(
        default=False, description="Publish at once instead of saving a draft."
    )
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Which draft to publish.")
class PublishTemplateInput:
    id: strawberry.ID = strawberry.field(description="Global id of the draft.")
    guards: GuardsInput | None = guards_field(versioned=False)


async def _template_payload(call: Callable[[], Awaitable[TemplateVersion]]) -> TemplatePayload:
    try:
        version = await call()
    except DomainError as exc:
        return TemplatePayload(template=None, errors=[user_error(exc)])
    return TemplatePayload(template=Template.from_record(version), errors=[])


@strawberry.type
class TemplateMutations:
    @strawberry.mutation(
        description="Validate and save a template as the next draft version of its key; every "
        "problem is reported at once with the path to its field."
    )
    async def save_template(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            SaveTemplateInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> TemplatePayload:
        actor = actor_of(info)

        async def call() -> TemplateVersion:
            if not isinstance(input.definition, dict):
                raise invalid("definition must be an object", "definition")
            return await template_services.save_template(
                actor,
                services_of(info),
                input.definition,
                publish=input.publish,
                guards=key_guards(input.guards),
            )

        return await _template_payload(call)

    @strawberry.mutation(description="Publish a draft template version; it is immutable after.")
    async def publish_template(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            PublishTemplateInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> TemplatePayload:
        actor = actor_of(info)
        return await _template_payload(
            lambda: template_services.publish_template(
                actor,
                services_of(info),
                ids.decode_uuid(input.id, "Template"),
                key_guards(input.guards),
            )
        )
