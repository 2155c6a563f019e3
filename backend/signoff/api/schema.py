"""The GraphQL schema: queries, mutations, and the extensions that keep it fast and safe."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.extensions import (
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from signoff.api import ids
from signoff.api.alerts import AlertMutations, AlertQueries
from signoff.api.analytics import AnalyticsQueries
from signoff.api.audit import AuditQueries
from signoff.api.audit_exports import AuditExportMutations, AuditExportQueries
from signoff.api.comments import CommentQueries
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.decision_links import DecisionLinkMutations, DecisionLinkQueries
from signoff.api.errors import CodedError
from signoff.api.event_cursors import encode_cursor
from signoff.api.evidence import EvidenceMutations, EvidenceQueries
from signoff.api.extension_hooks import RememberValidDocuments
from signoff.api.guarded_schema import GuardedSchema, OperationTimeout
from signoff.api.inbox import InboxQueries
from signoff.api.incidents import IncidentMutations, IncidentQueries
from signoff.api.inputs import DocumentGuard, InputGuard
from signoff.api.item_lists import ItemListQueries, ItemListSubscription
from signoff.api.limits import CostCache, LimitPolicy, QueryLimits
from signoff.api.mutations.actions import ActionMutations
from signoff.api.mutations.batch import BatchMutations
from signoff.api.mutations.comments import CommentMutations
from signoff.api.mutations.execution import ExecutionMutations
from signoff.api.mutations.items import ItemMutations
from signoff.api.mutations.templates import TemplateMutations
from signoff.api.nodes import NodeQueries
from signoff.api.notifications import NotificationMutations, NotificationQueries
from signoff.api.operation_metrics import OperationMetrics
from signoff.api.permissions import PermissionMutations, PermissionQueries
from signoff.api.ratelimit import RateLimiter
from signoff.api.redaction import RedactionMutations, RedactionQueries
from signoff.api.retention import RetentionMutations, RetentionQueries
from signoff.api.scalars import SCALAR_OVERRIDES
from signoff.api.shared_results import LiveExecutor
from signoff.api.simulation import SimulationQueries
from signoff.api.subscriptions import Subscription as LiveSubscription
from signoff.api.timers import TimerMutations, TimerQueries
from signoff.api.types import Template, WorkflowItem
from signoff.db import feed
from signoff.db import templates as template_repo
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import items as item_services
from signoff.settings import Settings


@strawberry.type(description="The authenticated caller.")
class Viewer:
    user_id: str = strawberry.field(description="User id (the token's `sub`).")
    tenant_id: str = strawberry.field(description="Tenant every read and write is bound to.")
    roles: list[str] = strawberry.field(description="Roles from the token.")
    groups: list[str] = strawberry.field(description="Groups from the token.")


@strawberry.type(description="Live updates over graphql-transport-ws. Resume with `after`.")
class Subscription(LiveSubscription, ItemListSubscription):
    pass


@strawberry.type(description="Reads. Every field needs a bearer token.")
class Query(
    SimulationQueries,
    TimerQueries,
    InboxQueries,
    ItemListQueries,
    NodeQueries,
    NotificationQueries,
    CommentQueries,
    EvidenceQueries,
    IncidentQueries,
    AuditQueries,
    RetentionQueries,
    AuditExportQueries,
    RedactionQueries,
    AnalyticsQueries,
    DecisionLinkQueries,
    AlertQueries,
    PermissionQueries,
):
    @strawberry.field(description="The authenticated caller.")
    def viewer(self, info: Info[SignoffContext, Any]) -> Viewer:
        principal = actor_of(info).principal
        return Viewer(
            user_id=principal.user_id,
            tenant_id=principal.tenant_id,
            roles=sorted(principal.roles),
            groups=sorted(principal.groups),
        )

    @strawberry.field(description="One item by global id; null when absent or not visible.")
    async def item(
        self,
        info: Info[SignoffContext, Any],
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the item.")],
    ) -> WorkflowItem | None:
        actor = actor_of(info)
        try:
            raw_id = ids.decode_uuid(id, "WorkflowItem")
            async with feed.snapshot_read(actor.tenant_id) as head:
                view = await item_services.get_item(actor, services_of(info), raw_id)
        except DomainError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise CodedError(exc) from None
        item = WorkflowItem.from_view(view)
        item.event_cursor = encode_cursor(actor.tenant_id, head)
        return item

    @strawberry.field(description="Template versions of the tenant, newest first per key.")
    async def templates(
        self,
        info: Info[SignoffContext, Any],
        key: Annotated[str | None, strawberry.argument(description="Only this key.")] = None,
    ) -> list[Template]:
        actor = actor_of(info)
        versions = await template_repo.list_for_tenant(actor.tenant_id, key)
        return [Template.from_record(v) for v in versions]


@strawberry.type(
    description="Writes. Each takes an optional idempotency key and returns typed user errors."
)
class Mutation(
    ItemMutations,
    BatchMutations,
    ActionMutations,
    ExecutionMutations,
    TemplateMutations,
    TimerMutations,
    NotificationMutations,
    CommentMutations,
    EvidenceMutations,
    IncidentMutations,
    RetentionMutations,
    AuditExportMutations,
    RedactionMutations,
    DecisionLinkMutations,
    AlertMutations,
    PermissionMutations,
):
    """Every mutation takes an optional idempotency key and returns typed user errors."""


def build_schema(
    settings: Settings | None = None, *, limiter: RateLimiter | None = None
) -> strawberry.Schema:
    """The schema with its extensions, built once per process. Validation rules are made here
    once, so that the validation cache stays effective; see docs/reference/limits.md."""
    settings = settings or Settings()
    policy = LimitPolicy.from_settings(settings)
    costs = CostCache(maxsize=512)
    production = not settings.is_development
    extensions: list[Any] = [
        OperationMetrics,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        DocumentGuard,
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        RememberValidDocuments,
        InputGuard,
        lambda: QueryLimits(policy=policy, limiter=limiter, cache=costs),
        # Last: its execute hook is the innermost, entered when the others' are (strawberry
        # does not unwind hooks already entered when a later one fails to enter).
        lambda: OperationTimeout(seconds=settings.query_timeout_seconds or None),
    ]
    return GuardedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=LiveExecutor,
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=production),
        scalar_overrides=SCALAR_OVERRIDES,
        mask=production,
        hide_suggestions=production,
        # what these decide depends on the document's text alone: a known document skips them
        document_level=(
            MaxTokensLimiter,
            DocumentGuard,
            ParserCache,
            ValidationCache,
            RememberValidDocuments,
        ),
    )


schema = build_schema()
"""The schema as exported to `schema.graphql` (`signoff schema export`)."""
