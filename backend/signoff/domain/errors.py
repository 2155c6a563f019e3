"""Errors with stable codes. The domain raises them; one place in the API maps them to GraphQL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes a client can switch on. Never rename a member; add new ones."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    SEPARATION_OF_DUTIES = "SEPARATION_OF_DUTIES"
    JUSTIFICATION_REQUIRED = "JUSTIFICATION_REQUIRED"
    TEMPLATE_INVALID = "TEMPLATE_INVALID"
    TEMPLATE_NOT_PUBLISHED = "TEMPLATE_NOT_PUBLISHED"
    TEMPLATE_IMMUTABLE = "TEMPLATE_IMMUTABLE"
    DEPENDENCY_UNMET = "DEPENDENCY_UNMET"
    ALREADY_DECIDED = "ALREADY_DECIDED"
    ALREADY_CLAIMED = "ALREADY_CLAIMED"
    CONTENT_TYPE_NOT_ALLOWED = "CONTENT_TYPE_NOT_ALLOWED"
    INTEGRITY_CHECK_FAILED = "INTEGRITY_CHECK_FAILED"
    UPLOAD_EXPIRED = "UPLOAD_EXPIRED"
    UPLOAD_IN_PROGRESS = "UPLOAD_IN_PROGRESS"
    RATE_LIMITED = "RATE_LIMITED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_TENANT = "UNKNOWN_TENANT"
    LINK_INVALID = "LINK_INVALID"
    LINK_EXPIRED = "LINK_EXPIRED"
    LINK_USED = "LINK_USED"
    EXPORT_EXPIRED = "EXPORT_EXPIRED"


@dataclass(frozen=True)
class Problem:
    """One problem found while validating input: a message and the path to the field."""

    message: str
    path: str | None = None


@dataclass
class DomainError(Exception):
    """A refusal the caller can act on. `field` names the offending input field, if any."""

    code: ErrorCode
    message: str
    field: str | None = None
    problems: list[Problem] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def not_found(what: str, ident: object) -> DomainError:
    """The object does not exist or is not visible to the caller (the two are indistinguishable)."""
    return DomainError(ErrorCode.NOT_FOUND, f"{what} {ident} not found")


def forbidden(message: str) -> DomainError:
    """The caller is known but lacks the right for this action."""
    return DomainError(ErrorCode.FORBIDDEN, message)


def invalid(message: str, field: str | None = None) -> DomainError:
    """The input is malformed or violates a rule; nothing was changed."""
    return DomainError(ErrorCode.INVALID_INPUT, message, field)
