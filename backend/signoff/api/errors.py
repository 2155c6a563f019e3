"""The one place where domain errors become GraphQL: typed user errors and coded errors."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError

from signoff import metrics
from signoff.api.enums import ErrorCodeEnum
from signoff.domain.errors import DomainError, ErrorCode

log = logging.getLogger("signoff.api")

__all__ = ["ErrorCodeEnum"]


@strawberry.type(description="One problem with the input, with the path to the offending field.")
class FieldProblem:
    message: str = strawberry.field(description="What is wrong.")
    path: str | None = strawberry.field(description="Path of the offending input field.")


@strawberry.type(description="A refusal the user can act on. Nothing was changed.")
class UserError:
    code: ErrorCode = strawberry.field(description="Stable error code.")
    message: str = strawberry.field(description="Human-readable explanation.")
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    problems: list[FieldProblem] = strawberry.field(
        description="Every problem found, when the input was checked as a whole."
    )


def user_error(exc: DomainError) -> UserError:
    """The typed user error for a domain refusal."""
    metrics.GRAPHQL_ERRORS.labels(exc.code.value, "user").inc()
    return UserError(
        code=exc.code,
        message=exc.message,
        field=exc.field,
        problems=[FieldProblem(message=p.message, path=p.path) for p in exc.problems],
    )


class CodedError(GraphQLError):
    """A GraphQL error carrying a stable `extensions.code` (used by queries)."""

    def __init__(self, exc: DomainError) -> None:
        extensions: dict[str, Any] = {"code": exc.code.value}
        if exc.field:
            extensions["field"] = exc.field
        super().__init__(exc.message, extensions=extensions, original_error=exc)


def should_mask(error: GraphQLError) -> bool:
    """Mask everything except our coded errors and GraphQL's own validation errors."""
    original = error.original_error
    if original is None or isinstance(original, DomainError | CodedError):
        return False
    if error.path is None and isinstance(original, ValueError | TypeError | OverflowError):
        return False  # a scalar refused a literal while the document was validated
    return not isinstance(original, GraphQLError)
