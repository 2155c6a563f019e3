"""Leaf fields without graphql-core's per-field machinery.

Most of a page's fields are attributes of an object read as they are (`title`, `state`,
`dueAt`): strawberry resolves such a "basic" field by reading the attribute, without an `Info`,
arguments or extensions. graphql-core still builds a resolve-info object and walks the generic
completion of the field's type for each of them; on an inbox page of 20 rows those are ~160 of
its ~185 fields and most of the API's CPU per page (docs/architecture.md, "A page's leaf
fields").

`LeafFieldsExecutor.execute_field` answers such a field itself — the attribute, coerced by its
scalar or enum type — when the field is basic, takes no arguments, its type is a scalar or an
enum (optionally non-null), no middleware is installed, and the value completes without error.
Anything else, including every error (an exception from a property, a null for a non-null
field, a value its type refuses), goes the generic way, which produces exactly the error and
path graphql-core would have: the fast path only ever returns what the generic path returns.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# a field's plan: (its basic resolver, its leaf type, whether null is refused), or None when
# the field goes the generic way; computed once per field of a schema and kept with the schema
# (by the field's identity: the schema holds its fields for as long as it lives)
_Plan = tuple[Any, GraphQLLeafType, bool] | None
_PLANS = "_signoff_leaf_plans"
# what `_leaf_value` answers for a field the generic path must answer
_GENERIC = object()


def plans_of(schema: GraphQLSchema) -> dict[int, _Plan]:
    """The plans of `schema`'s fields found so far."""
    plans: dict[int, _Plan] | None = schema.__dict__.get(_PLANS)
    if plans is None:
        plans = schema.__dict__[_PLANS] = {}
    return plans


def plan_of(field_def: GraphQLField) -> _Plan:
    """How `field_def` is answered without the generic path, or None."""
    plan: _Plan = None
    resolve = field_def.resolve
    if resolve is not None and getattr(resolve, "_is_default", False) and not field_def.args:
        field_type = field_def.type
        non_null = isinstance(field_type, GraphQLNonNull)
        inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            plan = (resolve, inner, non_null)
    return plan


class LeafFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, answering basic leaf fields directly (see the module)."""

    _plans: dict[int, _Plan] | None = None

    @property
    def _leaf_plans(self) -> dict[int, _Plan]:
        # the schema's plans, looked up once per executor (not once per field)
        plans = self._plans
        if plans is None:
            plans = self._plans = plans_of(self.schema)
        return plans

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager
        # strawberry always installs a manager; it wraps nothing when no extension resolves
        if manager is None or manager._middleware_resolvers is None:
            node = field_details_list[0].node
            field_def = self.schema.get_field(parent_type, node.name.value)
            if field_def is not None and not node.arguments:
                plans = self._plans
                if plans is None:
                    plans = self._leaf_plans
                key = id(field_def)
                try:
                    plan = plans[key]
                except KeyError:
                    plan = plans[key] = plan_of(field_def)
                if plan is not None:
                    value = self._leaf_value(plan, source)
                    if value is not _GENERIC:
                        return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _leaf_value(self, plan: tuple[Any, GraphQLLeafType, bool], source: Any) -> Any:
        """The field's completed value, or `_GENERIC` for the generic path to answer (every
        error included: it reports it with its path as graphql-core does)."""
        resolve, leaf_type, non_null = plan
        try:
            value = resolve(source, None)
        except Exception:
            return _GENERIC
        if value is None:
            return _GENERIC if non_null else None
        if isinstance(value, BaseException) or self.is_awaitable(value):
            return _GENERIC
        try:
            coerced = leaf_type.coerce_output_value(value)
        except Exception:
            return _GENERIC
        if coerced is None or coerced is Undefined:
            return _GENERIC
        return coerced
