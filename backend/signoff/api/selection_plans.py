"""Object selections without graphql-core's per-field machinery.

An inbox page's result is a list of edges, each with a node, every field of them an attribute
read as it is. `LeafFieldsExecutor` answers the leaves; graphql-core still walks each edge and
node generically: a resolve-info object, a path, the completion of the field's type, the
object's type check and a lookup of its collected subfields, for every edge and node of the
page (docs/architecture.md, "A page's selection plans").

`PlannedExecutor.execute_field` answers a field whose value is an object, or a list of objects
or leaves, from a plan made once per selection in an operation's execution: for each response
name of the collected subfields (graphql-core's own collection, so fragments, aliases, merged
selections and `@skip`/`@include` are as the generic path sees them) how its value is read
and completed. A selection has a plan only when every field in it is answered without the
generic path's help:

- a basic field (strawberry reads the attribute: no resolver, no permission class, no field
  extension), without arguments or directives other than `@skip`/`@include`, whose type is a
  scalar, an enum, an object type whose type check is strawberry's own (or none), or a list
  of those; or `__typename`;
- and no middleware is installed (no extension resolves fields).

Every other selection goes the generic way, field by field (its leaves still take
`LeafFieldsExecutor`'s path). A planned field whose value the plan cannot complete as the
generic path would without an error — an attribute that raises, a null for a non-null field,
a value its type refuses, an object of another type, an awaitable, a list that is not a list
— is given to the generic path whole, from its resolution on: a plan reads attributes and
adds nothing to the result, the errors or anything else before it succeeds, so the generic
path then produces exactly the errors, paths and nulls it always would. Authorisation is
untouched by construction: a plan only reads attributes of objects that the field's
resolvers above it returned (those ran the generic way, with their checks), and any field
with a rule of its own (a resolver or a permission class) is not basic, so no selection that
contains one has a plan.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    TypeNameMetaFieldDef,
)
from graphql.pyutils import Path, Undefined

from signoff.api.leaf_fields import _GENERIC, LeafFieldsExecutor

# directives that only decide whether a field is collected: graphql-core's collection has
# applied them already
_COLLECTION_DIRECTIVES = frozenset({"skip", "include"})

# a field's plan: (response name, kind, resolve, completion, non-null)
_LEAF, _TYPENAME, _OBJECT, _LIST = range(4)
_FieldPlan = tuple[str, int, Any, Any, bool]
# an object's plan: (its type check or None, its fields' plans)
_ObjectPlan = tuple[Any, tuple[_FieldPlan, ...]]
# an item of a list: (kind: _LEAF or _OBJECT, completion, non-null)
_ItemPlan = tuple[int, Any, bool]
# what a plan found about a selection that has none
_NO_PLAN = object()


def _is_strawberry_type_check(is_type_of: Any) -> bool:
    """Whether `is_type_of` is strawberry's own check of an object type that implements
    interfaces (an `isinstance`: it reads nothing of the resolve info)."""
    return getattr(is_type_of, "__module__", None) == "strawberry.schema.schema_converter" and (
        getattr(is_type_of, "__qualname__", "").endswith("_get_is_type_of.<locals>.is_type_of")
    )


def _directives_allowed(field_details_list: Any) -> bool:
    for details in field_details_list:
        if getattr(details, "defer_usage", None) is not None:
            return False
        if getattr(details, "fragment_variable_values", None) is not None:
            return False
        node = details.node
        if node.arguments:
            return False
        for directive in node.directives or ():
            if directive.name.value not in _COLLECTION_DIRECTIVES:
                return False
    return True


def _basic(field_def: GraphQLField) -> bool:
    resolve = field_def.resolve
    return resolve is not None and getattr(resolve, "_is_default", False) and not field_def.args


class PlannedExecutor(LeafFieldsExecutor):
    """strawberry's executor, answering planned object selections directly (see the module)."""

    _selection_plans: dict[Any, tuple[Any, Any]] | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        executor: Any = super().build_per_event_executor(payload)
        # a shallow copy: its plans are keyed by lists its own execution makes (as its memo
        # of collected subfields is), so it keeps plans of its own
        executor._selection_plans = None
        return executor

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager
        if manager is None or manager._middleware_resolvers is None:
            plan = self._field_plan(parent_type, field_details_list)
            if plan is not None and plan[1] >= _OBJECT:
                value = self._planned_value(plan, source)
                if value is not _GENERIC:
                    return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    # -- plans, made once per selection of an execution ------------------------------------

    def _field_plan(self, parent_type: GraphQLObjectType, field_details_list: Any) -> Any:
        """The plan of a field of `parent_type` selected by `field_details_list`, or None."""
        plans = self._selection_plans
        if plans is None:
            plans = self._selection_plans = {}
        # like graphql-core's memo of collected subfields, keyed by the identity of the list
        # (kept alive beside its plan, so the identity is not reused during the execution)
        key = (parent_type, id(field_details_list))
        cached = plans.get(key)
        if cached is not None:
            return cached[1]
        plan = self._make_field_plan(parent_type, field_details_list)
        plans[key] = (field_details_list, plan)
        return plan

    def _make_field_plan(
        self, parent_type: GraphQLObjectType, field_details_list: Any
    ) -> _FieldPlan | None:
        node = field_details_list[0].node
        name = node.name.value
        response_name = node.alias.value if node.alias else name
        if not _directives_allowed(field_details_list):
            return None
        field_def = self.schema.get_field(parent_type, name)
        if field_def is None:
            return None
        if field_def is TypeNameMetaFieldDef:
            return (response_name, _TYPENAME, None, parent_type.name, True)
        if not _basic(field_def):
            return None
        field_type: GraphQLOutputType = field_def.type
        non_null = isinstance(field_type, GraphQLNonNull)
        inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            return (response_name, _LEAF, field_def.resolve, inner, non_null)
        if isinstance(inner, GraphQLObjectType):
            sub = self._object_plan(inner, field_details_list)
            if sub is None:
                return None
            return (response_name, _OBJECT, field_def.resolve, sub, non_null)
        if isinstance(inner, GraphQLList):
            item_type = inner.of_type
            item_non_null = isinstance(item_type, GraphQLNonNull)
            item = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
            item_plan: _ItemPlan
            if isinstance(item, GraphQLScalarType | GraphQLEnumType):
                item_plan = (_LEAF, item, item_non_null)
            elif isinstance(item, GraphQLObjectType):
                sub = self._object_plan(item, field_details_list)
                if sub is None:
                    return None
                item_plan = (_OBJECT, sub, item_non_null)
            else:
                return None
            return (response_name, _LIST, field_def.resolve, item_plan, non_null)
        return None

    def _object_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> _ObjectPlan | None:
        is_type_of = object_type.is_type_of
        if is_type_of is not None and not _is_strawberry_type_check(is_type_of):
            return None
        grouped, new_defer_usages, _forbidden = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        fields = []
        for sub_details in grouped.values():
            plan = self._field_plan(object_type, sub_details)
            if plan is None:
                return None
            fields.append(plan)
        return (is_type_of, tuple(fields))

    # -- values ------------------------------------------------------------------------------

    def _planned_value(self, plan: _FieldPlan, source: Any) -> Any:
        """The field's completed value, or `_GENERIC` when the generic path must answer it."""
        _name, kind, resolve, completion, non_null = plan
        if kind == _TYPENAME:
            return completion
        if kind == _LEAF:
            return self._leaf_value((resolve, completion, non_null), source)
        try:
            value = resolve(source, None)
        except Exception:
            return _GENERIC
        if value is None:
            return _GENERIC if non_null else None
        if kind == _OBJECT:
            return self._object_value(completion, value)
        if type(value) is not list and type(value) is not tuple:
            return _GENERIC
        item_kind, item_completion, item_non_null = completion
        out: list[Any] = []
        append = out.append
        for item in value:
            if item is None:
                if item_non_null:
                    return _GENERIC
                append(None)
                continue
            if item_kind == _OBJECT:
                completed = self._object_value(item_completion, item)
            else:
                completed = self._leaf_item(item_completion, item)
            if completed is _GENERIC:
                return _GENERIC
            append(completed)
        return out

    def _object_value(self, plan: _ObjectPlan, value: Any) -> Any:
        if isinstance(value, BaseException) or self.is_awaitable(value):
            return _GENERIC
        is_type_of, fields = plan
        if is_type_of is not None:
            try:
                if not is_type_of(value, None):
                    return _GENERIC
            except Exception:
                return _GENERIC
        result: dict[str, Any] = {}
        for field in fields:
            completed = self._planned_value(field, value)
            if completed is _GENERIC:
                return _GENERIC
            result[field[0]] = completed
        return result

    def _leaf_item(self, leaf_type: Any, item: Any) -> Any:
        # a list's item, not null: as `_leaf_value` completes an attribute
        if isinstance(item, BaseException) or self.is_awaitable(item):
            return _GENERIC
        try:
            coerced = leaf_type.coerce_output_value(item)
        except Exception:
            return _GENERIC
        if coerced is None or coerced is Undefined:
            return _GENERIC
        return coerced
