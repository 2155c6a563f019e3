"""`node(id:)`: any object with a global id, by its id (the Relay convention).

Every object type with an `id` implements `Node`, and each has a resolver here (a test checks
both, so a new type cannot be forgotten). A resolver reads through the service that owns the
object, with its permission check; what the caller may not read is null, never an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.alerts import alert_node, alert_rule_node
from signoff.api.audit_exports import audit_export_node
from signoff.api.comments import Comment
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError
from signoff.api.event_cursors import encode_cursor
from signoff.api.evidence import Evidence
from signoff.api.notifications import NotificationDelivery
from signoff.api.types import Node, Step, Template, WorkflowItem, person
from signoff.db import feed
from signoff.db import items as items_repo
from signoff.db import templates as template_repo
from signoff.domain.errors import DomainError, ErrorCode, invalid
from signoff.services import audit_exports as export_services
from signoff.services import comments as comment_services
from signoff.services import evidence as evidence_services
from signoff.services import items as item_services
from signoff.services import notification_admin

Resolver = Callable[[Info[SignoffContext, Any], str], Awaitable[Node | None]]


async def _item(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    # Read like `item(id:)`: on one snapshot, whose event cursor it answers.
    actor = actor_of(info)
    item_id = _uuid(raw)
    async with feed.snapshot_read(actor.tenant_id) as head:
        view = await item_services.get_item(actor, services_of(info), item_id)
    item = WorkflowItem.from_view(view)
    item.event_cursor = encode_cursor(actor.tenant_id, head)
    return item


async def _step(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    actor = actor_of(info)
    step_id = _uuid(raw)
    item_id = await items_repo.item_id_of_step(actor.tenant_id, step_id)
    if item_id is None:
        return None
    view = await item_services.get_item(actor, services_of(info), item_id)
    step = next(s for s in view.steps if s.id == step_id)
    return Step.from_record(step, view.definition, view.snapshot)


async def _template(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    row = await template_repo.get(actor_of(info).tenant_id, _uuid(raw))
    return Template.from_record(row) if row else None


async def _comment(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    record = await comment_services.get_comment(actor_of(info), services_of(info), _uuid(raw))
    return Comment.from_record(record)


async def _evidence(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    record = await evidence_services.get_evidence(actor_of(info), services_of(info), _uuid(raw))
    return Evidence.from_record(record)


async def _delivery(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    if not raw.isdigit():
        raise invalid("not a valid id", "id")
    row = await notification_admin.delivery(actor_of(info), services_of(info), int(raw))
    attempts = await notification_admin.attempts_of([row["id"]])
    return NotificationDelivery.from_row(row, attempts.get(row["id"], []))


async def _audit_export(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    row = await export_services.get_export(actor_of(info), services_of(info), _uuid(raw))
    return audit_export_node(info, row)


async def _alert(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    return await alert_node(actor_of(info), services_of(info), raw)


async def _alert_rule(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    return await alert_rule_node(actor_of(info), services_of(info), raw)


async def _person(info: Info[SignoffContext, Any], raw: str) -> Node | None:
    return await person(info, raw)


def _uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise invalid("not a valid id", "id") from None


RESOLVERS: dict[str, Resolver] = {
    "WorkflowItem": _item,
    "Step": _step,
    "Template": _template,
    "Comment": _comment,
    "Evidence": _evidence,
    "NotificationDelivery": _delivery,
    "Person": _person,
    "AuditExport": _audit_export,
    "Alert": _alert,
    "AlertRule": _alert_rule,
}
"""The resolver of each type implementing `Node`, by type name."""


@strawberry.type
class NodeQueries:
    """Global object lookup (a base of `Query`)."""

    @strawberry.field(
        description="Any object by its global id (every type implementing `Node`); null when "
        "absent, of another tenant, or not readable by the caller."
    )
    async def node(
        self,
        info: Info[SignoffContext, Any],
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        try:
            type_name, raw = ids.decode(id)
            resolver = RESOLVERS.get(type_name)
            return await resolver(info, raw) if resolver is not None else None
        except DomainError as exc:
            if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
                return None
            raise CodedError(exc) from None
