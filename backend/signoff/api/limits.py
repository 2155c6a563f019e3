"""Query limits: static cost, nodes, aliases and depth per request, introspection, and the
per-caller cost budget in Redis. The model is documented in `docs/reference/limits.md`.

`QueryLimits` is a schema extension. After validation (whose result is cached) it prices the
operation with `api/cost.py`; a refused operation never reaches a resolver, so it never
touches the database. Before execution it takes the price from the caller's bucket; after
execution it refunds what the result did not need, and reports the cost in
`extensions.cost`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from signoff.api.context import SignoffContext, authenticate
from signoff.api.cost import CostModel, FieldCost, Totals, actual_cost, analyse
from signoff.api.ratelimit import BucketState, RateLimiter
from signoff.domain.audit_export import EventKind
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.permissions import MAX_GRANTEES, Permission
from signoff.settings import Settings

log = logging.getLogger("signoff.api.limits")

_ERRORS = 50  # user errors / problems per payload
_NAMES = 100  # users, groups, roles of one principal or step


def cost_model(settings: Settings) -> CostModel:
    """Weights (statements per resolution) and list bounds of the schema's fields."""
    steps = settings.max_steps_per_template
    page = settings.max_page_size
    bounds: dict[str, FieldCost] = {
        # root reads: the statements each runs (DataLoader batches count once, here)
        "Query.inbox": FieldCost(weight=3),
        "InboxConnection.totalCount": FieldCost(weight=1),
        "InboxConnection.facets": FieldCost(weight=1),
        "InboxConnection.countsExact": FieldCost(weight=1),
        "Query.items": FieldCost(weight=3),
        "ItemConnection.totalCount": FieldCost(weight=1),
        "ItemConnection.facets": FieldCost(weight=1),
        "ItemConnection.countsExact": FieldCost(weight=1),
        "Query.node": FieldCost(weight=3),
        "Query.item": FieldCost(weight=3),
        "Query.templates": FieldCost(weight=1, max_items=page),
        "Query.overdueSteps": FieldCost(weight=1, default_page=50),
        "Query.stepTimers": FieldCost(weight=2, max_items=_ERRORS),
        "Query.deadLetters": FieldCost(weight=2, default_page=50),
        "Query.myNotificationPreferences": FieldCost(weight=2),
        "Query.simulate": FieldCost(weight=2),
        "Query.replayTemplate": FieldCost(weight=5),
        "Query.viewer": FieldCost(),
        "Query.comments": FieldCost(weight=2, default_page=50),
        "Query.comment": FieldCost(weight=2),
        "Query.evidence": FieldCost(weight=2, max_items=page),
        "Query.incidentReview": FieldCost(weight=3),
        "Query.incidentReviewsOf": FieldCost(weight=3, max_items=_ERRORS),
        "Query.precedent": FieldCost(weight=3, default_page=10),
        "Query.retentionPolicies": FieldCost(weight=1, max_items=_NAMES),
        "Query.legalHold": FieldCost(weight=1),
        "Query.redactionRules": FieldCost(weight=1, max_items=_NAMES),
        "RedactionRule.visibleTo": FieldCost(max_items=_ERRORS),
        "Query.permissions": FieldCost(weight=1, max_items=len(Permission)),
        "PermissionGrant.grantees": FieldCost(max_items=MAX_GRANTEES),
        "Query.itemRetention": FieldCost(weight=4),
        # the profile, the item with its steps and decisions, the link's use
        "Query.decisionLink": FieldCost(weight=5),
        # each decision of a batch is one approveStep (the mutation weight) per element
        "Mutation.decideSteps": FieldCost(
            weight=10, max_items=settings.max_batch_decisions, per_element="input.decisions"
        ),
        "DecideStepsPayload.results": FieldCost(max_items=settings.max_batch_decisions),
        # reads the whole chain, a batch of events per statement
        "Query.verifyAuditChain": FieldCost(weight=20),
        "Query.approvalAnalytics": FieldCost(weight=10),
        "Query.alertRules": FieldCost(weight=1, max_items=100),
        "Query.alerts": FieldCost(weight=2),
        "Query.auditExport": FieldCost(weight=1),
        "Query.auditExports": FieldCost(weight=1),
        "Subscription.itemEvents": FieldCost(weight=3),
        "Subscription.inboxChanged": FieldCost(weight=3),
        "Subscription.itemsChanged": FieldCost(weight=3),
        # per-object statements
        "WorkflowItem.auditEvents": FieldCost(weight=1, default_page=100),
        "Comment.revisions": FieldCost(weight=1, max_items=_ERRORS),
        # bounds of lists without paging
        "WorkflowItem.steps": FieldCost(max_items=steps),
        "Step.decisions": FieldCost(max_items=_ERRORS),
        "Step.paramsDiff": FieldCost(max_items=_NAMES),
        "Step.impactIfRejected": FieldCost(max_items=steps),
        "Step.impactIfModified": FieldCost(max_items=steps),
        "Assignees.users": FieldCost(max_items=_NAMES),
        "Assignees.groups": FieldCost(max_items=_NAMES),
        "Assignees.roles": FieldCost(max_items=_NAMES),
        "Viewer.roles": FieldCost(max_items=_NAMES),
        "Viewer.groups": FieldCost(max_items=_NAMES),
        "UserProfile.groups": FieldCost(max_items=_NAMES),
        "UserProfile.roles": FieldCost(max_items=_NAMES),
        "UserProfile.addresses": FieldCost(max_items=_ERRORS),
        "UserError.problems": FieldCost(max_items=_ERRORS),
        "InboxFacets.states": FieldCost(max_items=20),
        "InboxFacets.kinds": FieldCost(max_items=20),
        "InboxFacets.risks": FieldCost(max_items=20),
        "InboxFacets.overdue": FieldCost(max_items=2),
        "InboxFacets.claim": FieldCost(max_items=3),
        "ItemFacets.states": FieldCost(max_items=20),
        "ItemFacets.kinds": FieldCost(max_items=20),
        "ItemFacets.risks": FieldCost(max_items=20),
        "ItemFacets.overdue": FieldCost(max_items=2),
        "KindChannels.channels": FieldCost(max_items=20),
        "NotificationDelivery.attempts": FieldCost(max_items=max(settings.notify_max_attempts, 1)),
        "NotificationPreferences.channels": FieldCost(max_items=20),
        "NotificationPreferences.digestKinds": FieldCost(max_items=20),
        "NotificationPreferences.digestNotificationKinds": FieldCost(max_items=20),
        "AuditExportFilter.kinds": FieldCost(max_items=len(EventKind)),
        "AuditExportRedaction.readerRoles": FieldCost(max_items=_NAMES),
        "NotificationPreferences.addresses": FieldCost(max_items=_ERRORS),
        "ReplayedItem.differences": FieldCost(max_items=_NAMES),
        "Simulation.steps": FieldCost(max_items=steps),
        "Simulation.notifications": FieldCost(max_items=steps * 10),
        "Simulation.problems": FieldCost(max_items=_NAMES),
        "SimulatedStep.timers": FieldCost(max_items=20),
        "Step.seats": FieldCost(max_items=_NAMES),
        "Step.requiredPermissions": FieldCost(max_items=_NAMES),
        "StepHold.upstreams": FieldCost(max_items=steps),
        "StepHold.options": FieldCost(max_items=10),
        "Comment.mentions": FieldCost(max_items=_NAMES),
        "CommentRevision.mentions": FieldCost(max_items=_NAMES),
        "PrecedentEntry.matchedBy": FieldCost(max_items=20),
        "PrecedentEntry.decisions": FieldCost(max_items=_ERRORS),
        "EvidenceUpload.headers": FieldCost(max_items=20),
        "Template.fields": FieldCost(max_items=_NAMES),
        "TemplateField.allowedValues": FieldCost(max_items=_NAMES),
    }
    for payload in (
        "ItemPayload",
        "TemplatePayload",
        "BusinessCalendarPayload",
        "NotificationDeliveryPayload",
        "NotificationPreferencesPayload",
        "UserProfilePayload",
        "DecideStepsPayload",
        "ConfirmDecisionLinkPayload",
        "StepDecisionResult",
        "CommentPayload",
        "EvidenceUploadPayload",
        "RetentionPolicyPayload",
        "LegalHoldPayload",
        "RequestAuditExportPayload",
        "RedactionRulePayload",
        "AlertRulePayload",
        "AlertPayload",
        "SetPermissionPayload",
    ):
        bounds[f"{payload}.errors"] = FieldCost(max_items=_ERRORS)
    return CostModel(fields=bounds, default_page=min(20, page), mutation_weight=10)


@dataclass(frozen=True)
class LimitPolicy:
    """The limits of one deployment (from settings) and the cost model they apply to."""

    model: CostModel
    max_cost: int
    max_nodes: int
    max_aliases: int
    max_depth: int
    introspection: str  # "on", "off" or "admins"
    admin_roles: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitPolicy:
        """The policy configured by `settings`."""
        return cls(
            model=cost_model(settings),
            max_cost=settings.max_query_cost,
            max_nodes=settings.max_query_nodes,
            max_aliases=settings.max_query_aliases,
            max_depth=settings.max_query_depth,
            introspection=settings.effective_introspection,
            admin_roles=frozenset(settings.admin_roles),
        )


def limit_error(limit: str, found: int, maximum: int, totals: Totals) -> GraphQLError:
    """The typed refusal of an operation over a static limit; it names the limit, what the
    operation needs and the maximum, and carries the operation's price."""
    return GraphQLError(
        f"Query refused: its {limit} is {found}, the limit is {maximum}.",
        extensions={
            "code": ErrorCode.LIMIT_EXCEEDED.value,
            "limit": limit,
            "found": found,
            "maximum": maximum,
            "cost": {"requested": totals.cost, "nodes": totals.nodes},
        },
    )


class CostCache:
    """Static totals by (query text, operation, integer variables): the only inputs the
    analysis depends on besides the schema, so a repeated query is priced once."""

    def __init__(self, maxsize: int = 512) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Totals] = OrderedDict()
        self._maxsize = maxsize

    def totals(self, ctx: Any, model: CostModel) -> Totals:
        """The totals of the operation of `ctx` (a strawberry execution context)."""
        variables = _variables(ctx.variables)
        ints = tuple(
            sorted(
                (k, v)
                for k, v in variables.items()
                if isinstance(v, int) and not isinstance(v, bool)
            )
        )
        key = (ctx.query, ctx.operation_name, ints, tuple(_list_lengths(variables)))
        found = self._entries.get(key)
        if found is None:
            found = analyse(
                ctx.schema._schema, ctx.graphql_document, ctx.operation_name, variables, model
            )
            if ctx.query is not None:
                self._entries[key] = found
                if len(self._entries) > self._maxsize:
                    self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return found


class QueryLimits(SchemaExtension):
    """Refuses operations over the static limits and charges the caller's cost budget."""

    def __init__(
        self,
        *,
        policy: LimitPolicy,
        limiter: RateLimiter | None = None,
        cache: CostCache | None = None,
        execution_context: Any = None,
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.cache = cache or CostCache(maxsize=1)
        self.totals: Totals | None = None
        self.bucket: BucketState | None = None
        self.actual: int | None = None

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        # ValidationCache (earlier in the list) has set the validation errors by now.
        if ctx.pre_execution_errors == [] and ctx.graphql_document is not None:
            self.totals = self.cache.totals(ctx, self.policy.model)
            errors = self._violations(self.totals)
            if errors:
                ctx.pre_execution_errors = errors
        yield

    def _violations(self, totals: Totals) -> list[GraphQLError]:
        policy = self.policy
        errors = []
        if totals.cost > policy.max_cost:
            errors.append(limit_error("cost", totals.cost, policy.max_cost, totals))
        if totals.nodes > policy.max_nodes:
            errors.append(limit_error("nodes", totals.nodes, policy.max_nodes, totals))
        if totals.aliases > policy.max_aliases:
            errors.append(limit_error("aliases", totals.aliases, policy.max_aliases, totals))
        if totals.depth > policy.max_depth:
            errors.append(limit_error("depth", totals.depth, policy.max_depth, totals))
        if totals.introspection and not self._may_introspect():
            errors.append(
                GraphQLError(
                    "Introspection is disabled on this server.",
                    extensions={"code": ErrorCode.FORBIDDEN.value},
                )
            )
        return errors

    def _may_introspect(self) -> bool:
        mode = self.policy.introspection
        if mode != "admins":
            return mode == "on"
        try:
            actor = authenticate(self._context())
        except DomainError:
            return False
        return actor.principal.has_any_role(self.policy.admin_roles)

    def _context(self) -> SignoffContext:
        context: SignoffContext = self.execution_context.context
        return context

    def _bucket_key(self) -> str:
        context = self._context()
        try:
            principal = authenticate(context).principal
            return f"user:{principal.tenant_id}:{principal.user_id}"
        except DomainError:
            connection = context.request or context.websocket
            client = connection.client if connection is not None else None
            return f"addr:{client.host if client else 'unknown'}"

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        charged = 0
        if self.limiter is not None and self.totals is not None and ctx.result is None:
            charged = max(1, self.totals.cost)
            key = self._bucket_key()
            self.bucket = await self.limiter.take(key, charged)
            if not self.bucket.allowed:
                charged = 0
                ctx.result = GraphQLExecutionResult(data=None, errors=[self._rate_limited()])
        yield
        if self.totals is None or not charged or ctx.graphql_document is None:
            return
        result = ctx.result
        data = getattr(result, "data", None)
        self.actual = actual_cost(
            ctx.schema._schema,
            ctx.graphql_document,
            ctx.operation_name,
            data,
            self.policy.model,
            _variables(ctx.variables),
        )
        refund = charged - max(1, self.actual)
        if refund > 0 and self.limiter is not None:
            self.bucket = await self.limiter.take(self._bucket_key(), -refund)

    def _rate_limited(self) -> GraphQLError:
        assert self.bucket is not None and self.totals is not None and self.limiter is not None
        response = self._context().response
        if response is not None:
            response.status_code = 429
            response.headers["Retry-After"] = str(max(1, self.bucket.retry_after))
        return GraphQLError(
            f"Rate limited: this query costs {self.totals.cost} and {self.bucket.remaining} "
            f"of your {self.limiter.capacity} points are left; retry in "
            f"{max(1, self.bucket.retry_after)} s.",
            extensions={
                "code": ErrorCode.RATE_LIMITED.value,
                "retryAfter": max(1, self.bucket.retry_after),
                "cost": {"requested": self.totals.cost, "remaining": self.bucket.remaining},
            },
        )

    def get_results(self) -> dict[str, Any]:
        if self.totals is None:
            return {}
        cost: dict[str, Any] = {
            "requested": self.totals.cost,
            "actual": self.actual,
            "limit": self.policy.max_cost,
            "nodes": self.totals.nodes,
        }
        if self.bucket is not None and self.limiter is not None:
            cost["remaining"] = self.bucket.remaining
            cost["capacity"] = self.limiter.capacity
            cost["restoreRate"] = self.limiter.rate
        return {"cost": cost}


def _variables(variables: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return variables if isinstance(variables, Mapping) else {}


def _list_lengths(value: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """(path, length) of every list in the variables: a batch's price depends on its length."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _list_lengths(item, f"{path}.{key}")
    elif isinstance(value, list):
        yield path, len(value)
