"""Shared payload types of the mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from signoff.api.errors import UserError, user_error
from signoff.api.types import Template, WorkflowItem
from signoff.domain.errors import DomainError
from signoff.services.engine import ItemView


@strawberry.type(description="Result of a mutation on an item: the item, or why it was refused.")
class ItemPayload:
    item: WorkflowItem | None = strawberry.field(description="The item after the change.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Result of a mutation on a template.")
class TemplatePayload:
    template: Template | None = strawberry.field(description="The template version.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


T = TypeVar("T")


async def item_payload(call: Callable[[], Awaitable[ItemView]]) -> ItemPayload:
    """Run a service call; map its item, or its refusal, into the payload."""
    try:
        view = await call()
    except DomainError as exc:
        return ItemPayload(item=None, errors=[user_error(exc)])
    return ItemPayload(item=WorkflowItem.from_view(view), errors=[])
