"""One validation layer for every input, applied before any resolver runs.

`InputGuard` walks the arguments of the operation (literals and variables alike, through
input objects, lists and JSON values) with their schema types and refuses, with
INVALID_INPUT naming the field, what no resolver should ever see:

- strings with NUL characters or lone surrogates, or longer than their bound (a default, or
  a tighter one for identifiers such as `externalRef`);
- global ids and cursors that are not base64url text of a sane length;
- paging arguments (`first`, `last`) outside 1 to their maximum;
- dates and times outside the years 1900 to 2999;
- JSON values nested deeper than `MAX_JSON_DEPTH`.

It also refuses documents nested deeper than `MAX_DOCUMENT_DEPTH` brackets before they are
parsed (the parser recurses). New arguments get all of this without their author doing
anything; a field that needs a tighter bound adds a line to `STRING_BOUNDS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from signoff.domain.errors import ErrorCode

DEFAULT_STRING_MAX = 10_000
MAX_ID_LENGTH = 200
MAX_CURSOR_LENGTH = 500
MAX_JSON_DEPTH = 32
MAX_DOCUMENT_DEPTH = 64
YEARS = (1900, 2999)
MAX_DIGITS = 40

STRING_BOUNDS: dict[str, int] = {
    # identifiers: short by nature, and some are copied into every audit event
    "SubmitItemInput.externalRef": 200,
    "SubmitItemInput.environment": 64,
    "SubmitItemInput.templateKey": 100,
    "SubmitItemInput.title": 300,
    "ResubmitItemInput.title": 300,
    "GuardsInput.idempotencyKey": 200,
    "DecideStepInput.value": 200,
    "ConfirmDecisionLinkInput.token": 2000,
    "InboxFilter.text": 200,
}
PAGING_BOUNDS: dict[str, int] = {
    "Query.overdueSteps.first": 500,
    "Query.overdueSteps.last": 500,
    "Query.auditExports.first": 100,
    "Query.auditExports.last": 100,
    "Query.replayTemplate.last": 200,
    "WorkflowItem.auditEvents.first": 500,
    "WorkflowItem.auditEvents.last": 500,
}
CURSOR_ARGUMENTS = ("after", "before")
PAGING_ARGUMENTS = ("first", "last")

_BASE64URL = re.compile(r"[A-Za-z0-9_\-=]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NESTING = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|[\[\]{}()]|\d{'
    + str(MAX_DIGITS + 1)
    + ",}"
)


class InputRefused(Exception):
    """One input the guard refuses: where it is and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def as_graphql(self) -> GraphQLError:
        """The typed GraphQL error (INVALID_INPUT with the field)."""
        return GraphQLError(
            f"{self.field}: {self.message}",
            extensions={"code": ErrorCode.INVALID_INPUT.value, "field": self.field},
        )


def check_text(value: str, field: str, max_length: int = DEFAULT_STRING_MAX) -> None:
    """Refuse NUL characters, lone surrogates and text longer than `max_length`."""
    if len(value) > max_length:
        raise InputRefused(field, f"at most {max_length} characters")
    if "\x00" in value:
        raise InputRefused(field, "must not contain NUL characters")
    if _LONE_SURROGATE.search(value):
        raise InputRefused(field, "must be valid Unicode (no lone surrogates)")


def check_json(value: Any, field: str, depth: int = 0) -> None:
    """Refuse JSON whose strings (keys too) are not clean, or that nests too deeply."""
    if depth > MAX_JSON_DEPTH:
        raise InputRefused(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, field, max_length=1_000_000)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(str(key), field, max_length=1_000)
            check_json(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, field, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise InputRefused(field, "integers must fit in 64 bits")


def check_document_nesting(query: str) -> None:
    """Refuse a document nested deeper than `MAX_DOCUMENT_DEPTH` before the parser sees it."""
    depth = 0
    for match in _NESTING.finditer(query):
        token = match.group()
        if token[0].isdigit():
            raise InputRefused("query", f"numbers have at most {MAX_DIGITS} digits")
        if token in "[{(":
            depth += 1
            if depth > MAX_DOCUMENT_DEPTH:
                raise InputRefused("query", f"nested deeper than {MAX_DOCUMENT_DEPTH} levels")
        elif token in "]})":
            depth -= 1


class _Walk:
    def __init__(
        self, schema: GraphQLSchema, variables: Mapping[str, Any], fragments: Mapping[str, Any]
    ):
        self.schema = schema
        self.variables = variables
        self.fragments = fragments
        self.seen_fragments: set[str] = set()

    def selection(self, parent: GraphQLNamedType | None, selection_set: SelectionSetNode) -> None:
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                self.field(parent, node)
            elif isinstance(node, InlineFragmentNode):
                cond = node.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                self.selection(target, node.selection_set)
            elif (
                isinstance(node, FragmentSpreadNode) and node.name.value not in self.seen_fragments
            ):
                self.seen_fragments.add(node.name.value)
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    self.selection(target, fragment.selection_set)

    def field(self, parent: GraphQLNamedType | None, node: FieldNode) -> None:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return
        for argument in node.arguments or ():
            name = argument.name.value
            arg = definition.args.get(name)
            if arg is None:
                continue
            coordinate = f"{parent.name}.{node.name.value}.{name}"
            if name in PAGING_ARGUMENTS:
                self.paging(coordinate, name, self.value(argument.value))
            elif name in CURSOR_ARGUMENTS:
                self.cursor(name, self.value(argument.value))
            self.check(arg.type, self.value(argument.value), name, argument.value)
        if node.selection_set is not None:
            self.selection(get_named_type(definition.type), node.selection_set)

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, ListValueNode | ObjectValueNode):
            return node  # walked below, so that variables inside are looked up
        return value_from_ast_untyped(node)

    def paging(self, coordinate: str, field: str, value: Any) -> None:
        maximum = PAGING_BOUNDS.get(coordinate)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if is_int and (value < 1 or (maximum is not None and value > maximum)):
            bound = f"1 and {maximum}" if maximum else "1 and the maximum page size"
            raise InputRefused(field, f"must be between {bound}")

    def cursor(self, field: str, value: Any) -> None:
        if isinstance(value, str) and (
            len(value) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(value)
        ):
            raise InputRefused(field, "not a cursor returned by this server")

    def check(self, type_: GraphQLInputType, value: Any, field: str, node: Any = None) -> None:
        if value is None:
            return
        nullable = get_nullable_type(type_)
        if isinstance(value, ListValueNode):
            element = nullable.of_type if isinstance(nullable, GraphQLList) else type_
            for item in value.values:
                self.check(element, self.value(item), field)
            return
        if is_list_type(nullable):
            for item in value if isinstance(value, list) else [value]:
                self.check(nullable.of_type, item, field)
            return
        named = get_named_type(type_)
        if isinstance(named, GraphQLInputObjectType):
            self.input_object(named, value, field)
            return
        self.scalar(named.name, value, field, f"{field}")

    def input_object(self, type_: GraphQLInputObjectType, value: Any, field: str) -> None:
        if isinstance(value, ObjectValueNode):
            items: Iterator[tuple[str, Any]] = (
                (f.name.value, self.value(f.value)) for f in value.fields
            )
        elif isinstance(value, Mapping):
            items = iter(value.items())
        else:
            return
        for name, item in items:
            definition = type_.fields.get(name)
            if definition is None:
                continue
            path = f"{field}.{name}"
            bound = STRING_BOUNDS.get(f"{type_.name}.{name}")
            if bound is not None and isinstance(item, str):
                check_text(item, path, bound)
            self.check(definition.type, item, path)

    def scalar(self, type_name: str, value: Any, field: str, path: str) -> None:
        if type_name in ("String", "ID") and isinstance(value, str):
            check_text(value, path)
            if type_name == "ID" and (
                len(value) > MAX_ID_LENGTH or not _BASE64URL.fullmatch(value)
            ):
                raise InputRefused(path, "not a valid id")
        elif type_name == "JSON":
            check_json(value, path)
        elif type_name in ("DateTime", "Date") and isinstance(value, str):
            self.moment(type_name, value, path)

    def moment(self, type_name: str, value: str, path: str) -> None:
        check_text(value, path, 64)
        try:
            parsed: date = (
                datetime.fromisoformat(value)
                if type_name == "DateTime"
                else date.fromisoformat(value)
            )
        except ValueError:
            raise InputRefused(path, f"not an ISO 8601 {type_name}") from None
        if not YEARS[0] <= parsed.year <= YEARS[1]:
            raise InputRefused(path, f"must be between the years {YEARS[0]} and {YEARS[1]}")


def check_operation(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> None:
    """Raise `InputRefused` for the first argument of the operation that is not clean."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is not None and (
            definition.name is None or definition.name.value != operation_name
        ):
            continue
        root = schema.get_root_type(definition.operation)
        walk = _Walk(schema, variables if isinstance(variables, Mapping) else {}, fragments)
        walk.selection(root, definition.selection_set)
        return


class DocumentGuard(SchemaExtension):
    """Refuses documents the parser should not see (nesting, huge numbers); goes before the
    parser cache in the schema's extensions."""

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        if query and self.execution_context.graphql_document is None:
            try:
                check_document_nesting(query)
            except InputRefused as refused:
                raise refused.as_graphql() from None
        yield


class InputGuard(SchemaExtension):
    """Refuses unclean arguments once the document is valid; goes after the validation
    cache in the schema's extensions."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.pre_execution_errors == [] and ctx.graphql_document is not None:
            try:
                check_operation(
                    ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables
                )
            except InputRefused as refused:
                ctx.pre_execution_errors = [refused.as_graphql()]
        yield
