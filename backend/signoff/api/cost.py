"""Static cost of a GraphQL operation, computed from the document before anything runs.

Two numbers, as GitHub's API has them (see `docs/reference/limits.md`):

- **cost**: the database statements the operation may need at most. A field that runs its
  own statement costs its weight once per time it is resolved, and a field inside a list is
  resolved once per element, so nested lists multiply. Batched fields (DataLoaders) cost
  nothing extra: they run one statement per request however often they are asked for.
- **nodes**: the objects the response may hold at most (each element of a list of objects
  counts, times the size of every list around it).

A list's size is its `first`/`last` argument when it has one, the paging argument of the
connection it belongs to (`edges` and `nodes` of `inbox(first: 50)` or `inbox(last: 50)`;
without either, the page size the field reads by default), or the bound declared for it here
(or in its field's `metadata={"max_items": n}`). Every list field has a bound: a test walks
the schema and fails on one that has none.

Fragments are priced once each (memoised) and then added wherever they are spread, so a
fragment spread a thousand times costs a thousand times, and nesting spreads cannot make the
analysis itself slow. Aliases and the depth are counted the same way (the depth here, not by
strawberry's QueryDepthLimiter, which expands fragments and is exponential in nested spreads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
)

PAGING_ARGUMENTS = ("first", "last")


@dataclass(frozen=True)
class FieldCost:
    """What one field costs: statements per resolution, the size bound of a list, and the
    page size a paged field reads when it is given no `first` or `last`."""

    weight: int = 0
    max_items: int | None = None
    # `weight` is paid once per element of this list argument ("input.decisions": a batch
    # mutation costs what its entries would cost one by one); `max_items` bounds an unknown
    # length
    per_element: str | None = None
    default_page: int | None = None


@dataclass(frozen=True)
class CostModel:
    """Weights and list bounds by `Type.field`; every other field weighs nothing."""

    fields: Mapping[str, FieldCost]
    default_page: int = 20
    mutation_weight: int = 10

    def rule(self, type_name: str, field_name: str, definition: GraphQLField) -> FieldCost:
        """The cost rule of one field: declared here, else in its strawberry metadata."""
        rule = self.fields.get(f"{type_name}.{field_name}")
        if rule is not None:
            return rule
        declared = _metadata(definition).get("max_items")
        return FieldCost(max_items=declared) if isinstance(declared, int) else FieldCost()


def _metadata(definition: GraphQLField) -> Mapping[str, Any]:
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    metadata = getattr(strawberry_field, "metadata", None)
    return metadata if isinstance(metadata, Mapping) else {}


@dataclass
class Totals:
    """Cost, nodes, aliases, depth and whether the schema is introspected, of one selection."""

    cost: int = 0
    nodes: int = 0
    aliases: int = 0
    depth: int = 0
    introspection: bool = False

    def add(self, other: Totals, times: int = 1) -> None:
        """Add `other`, resolved `times` times (aliases are counted once: they are text)."""
        self.cost += other.cost * times
        self.nodes += other.nodes * times
        self.aliases += other.aliases
        self.depth = max(self.depth, other.depth)
        self.introspection = self.introspection or other.introspection


@dataclass
class _Walk:
    schema: GraphQLSchema
    model: CostModel
    variables: Mapping[str, Any]
    fragments: dict[str, FragmentDefinitionNode]
    memo: dict[tuple[str, int | None], Totals] = field(default_factory=dict)
    mutation_root: GraphQLObjectType | None = None

    def selection(
        self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None, page: int | None
    ) -> Totals:
        totals = Totals()
        if selection_set is None:
            return totals
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                totals.add(self.field(parent, node, page))
            elif isinstance(node, InlineFragmentNode):
                cond = node.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                totals.add(self.selection(target or parent, node.selection_set, page))
            elif isinstance(node, FragmentSpreadNode):
                totals.add(self.spread(node.name.value, page))
        return totals

    def spread(self, name: str, page: int | None) -> Totals:
        key = (name, page)
        if key not in self.memo:
            self.memo[key] = Totals()  # a cycle (refused by validation anyway) adds nothing
            fragment = self.fragments.get(name)
            if fragment is not None:
                target = self.schema.get_type(fragment.type_condition.name.value)
                if target is not None:
                    self.memo[key] = self.selection(target, fragment.selection_set, page)
        return self.memo[key]

    def field(self, parent: GraphQLNamedType, node: FieldNode, page: int | None) -> Totals:
        name = node.name.value
        totals = Totals(aliases=1 if node.alias else 0, depth=1)
        if name.startswith("__"):
            # introspection is refused (or allowed) as a whole; its depth is not priced
            totals.introspection = name != "__typename"
            return totals
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return totals
        definition = parent.fields.get(name)
        if definition is None:
            return totals
        rule = self.model.rule(parent.name, name, definition)
        weight = rule.weight
        if parent is self.mutation_root:
            weight = max(weight, self.model.mutation_weight)
        weight *= elements(node, rule, self.variables)
        own_page = self._paging(node, definition, rule)
        field_type = get_nullable_type(definition.type)
        named = get_named_type(definition.type)
        composite = is_composite_type(named)
        if is_list_type(field_type):
            size = own_page or rule.max_items or page or self.model.default_page
            child = self.selection(named, node.selection_set, None)
            totals.cost = weight + size * child.cost
            totals.nodes = size * (1 + child.nodes) if composite else 0
            totals.aliases += child.aliases
            totals.depth = 1 + child.depth
            totals.introspection = child.introspection
            return totals
        child = self.selection(named, node.selection_set, own_page)
        totals.add(child)
        totals.depth = 1 + child.depth
        totals.cost += weight
        totals.nodes += 1 if composite else 0
        return totals

    def _paging(self, node: FieldNode, definition: GraphQLField, rule: FieldCost) -> int | None:
        """The page size of a paged field: its `first` or `last` (the larger, should both be
        given: the resolver refuses that, the price must not be lower), else its default."""
        names = [name for name in PAGING_ARGUMENTS if name in definition.args]
        if not names:
            return None
        given = [v for v in (self._argument(node, name) for name in names) if v is not None]
        if given:
            return max(*given, 0)
        defaults = [definition.args[name].default_value for name in names]
        declared = [d for d in defaults if isinstance(d, int) and not isinstance(d, bool)]
        if declared:
            return max(*declared, 0)
        return rule.default_page or self.model.default_page

    def _argument(self, node: FieldNode, name: str) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            literal = argument.value
            if isinstance(literal, IntValueNode):
                return _int(literal.value)
            if isinstance(literal, VariableNode):
                value = self.variables.get(literal.name.value)
                return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None


def elements(node: FieldNode, rule: FieldCost, variables: Mapping[str, Any]) -> int:
    """How many times `rule`'s weight is paid for `node`: once, or once per element of its
    `per_element` list argument (literal or variable; `max_items` when it cannot be read)."""
    if rule.per_element is None:
        return 1
    name, *path = rule.per_element.split(".")
    value: Any = None
    for argument in node.arguments or ():
        if argument.name.value == name:
            value = argument.value
    for key in path:
        value = _resolved(value, variables)
        if isinstance(value, ObjectValueNode):
            value = next((f.value for f in value.fields if f.name.value == key), None)
        elif isinstance(value, Mapping):
            value = value.get(key)
        else:
            value = None
    value = _resolved(value, variables)
    if isinstance(value, ListValueNode):
        return len(value.values)
    if isinstance(value, list):
        return len(value)
    return rule.max_items or 1


def _resolved(value: Any, variables: Mapping[str, Any]) -> Any:
    return variables.get(value.name.value) if isinstance(value, VariableNode) else value


def _int(text: str) -> int | None:
    # Oversized literals are refused elsewhere (input limits); here they only must not raise.
    return int(text) if len(text) <= 18 else 10**18


def _operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is None or (definition.name and definition.name.value == operation_name):
            return definition
    return None


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    model: CostModel,
) -> Totals:
    """The static totals of the operation `operation_name` of `document` (validated before)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return Totals()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = schema.get_root_type(operation.operation)
    if root is None:
        return Totals()
    walk = _Walk(
        schema,
        model,
        variables or {},
        fragments,
        mutation_root=schema.get_root_type(OperationType.MUTATION),
    )
    return walk.selection(root, operation.selection_set, None)


def actual_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    data: Any,
    model: CostModel,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The statements the operation's result needed, by the same weights: each weighed field
    counts once per time it appears in `data` (lists at their real length)."""
    operation = _operation(document, operation_name)
    root = schema.get_root_type(operation.operation) if operation else None
    if operation is None or root is None or not isinstance(data, dict):
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    mutation_root = schema.get_root_type(OperationType.MUTATION)
    counted = 0

    def fields_of(
        parent: GraphQLNamedType, selection_set: SelectionSetNode | None, seen: frozenset[str]
    ) -> list[tuple[GraphQLNamedType, FieldNode]]:
        out: list[tuple[GraphQLNamedType, FieldNode]] = []
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                out.append((parent, node))
            elif isinstance(node, InlineFragmentNode):
                cond = node.type_condition
                target = (schema.get_type(cond.name.value) if cond else parent) or parent
                out.extend(fields_of(target, node.selection_set, seen))
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                spread = schema.get_type(fragment.type_condition.name.value) if fragment else None
                if fragment is not None and spread is not None:
                    out.extend(fields_of(spread, fragment.selection_set, seen | {node.name.value}))
        return out

    weighed: dict[tuple[str, int], bool] = {}

    def weighs(parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> bool:
        # Whether any field at or below this selection weighs something: a result is walked
        # only where it can count, not through every element of a page of weightless fields.
        key = (parent.name, id(selection_set))
        if key not in weighed:
            weighed[key] = False  # a cycle through fragments adds nothing
            found = False
            for owner, node in fields_of(parent, selection_set, frozenset()):
                if not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
                    continue
                definition = owner.fields.get(node.name.value)
                if definition is None:
                    continue
                if (
                    owner is mutation_root
                    or model.rule(owner.name, node.name.value, definition).weight
                ):
                    found = True
                elif node.selection_set is not None:
                    found = weighs(get_named_type(definition.type), node.selection_set)
                if found:
                    break
            weighed[key] = found
        return weighed[key]

    def visit(parent: GraphQLNamedType, selection_set: SelectionSetNode | None, value: Any) -> None:
        nonlocal counted
        if not weighs(parent, selection_set):
            return
        if isinstance(value, list):
            for element in value:
                visit(parent, selection_set, element)
            return
        if not isinstance(value, dict):
            return
        seen_keys: set[str] = set()
        for owner, node in fields_of(parent, selection_set, frozenset()):
            key = node.alias.value if node.alias else node.name.value
            if key in seen_keys or key not in value:
                continue
            seen_keys.add(key)
            if not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
                continue
            definition = owner.fields.get(node.name.value)
            if definition is None:
                continue
            rule = model.rule(owner.name, node.name.value, definition)
            weight = rule.weight
            if owner is mutation_root:
                weight = max(weight, model.mutation_weight)
            weight *= elements(node, rule, variables or {})
            counted += weight
            if node.selection_set is not None and value[key] is not None:
                visit(get_named_type(definition.type), node.selection_set, value[key])

    visit(root, operation.selection_set, data)
    return counted
