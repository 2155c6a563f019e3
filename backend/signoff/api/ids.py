"""Global object ids: opaque to clients, typed, and checked when they come back."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.global_ids import global_id


def encode(type_name: str, raw_id: UUID | str | int) -> str:
    """The global id of object `raw_id` of GraphQL type `type_name`."""
    return global_id(type_name, raw_id)


def decode(global_id: str, field: str = "id") -> tuple[str, str]:
    """(type name, raw id) of a global id; INVALID_INPUT when it is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        type_name, _, raw = text.partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise DomainError(ErrorCode.INVALID_INPUT, "not a valid id", field) from None
    if not type_name or not raw:
        raise DomainError(ErrorCode.INVALID_INPUT, "not a valid id", field)
    return type_name, raw


def decode_uuid(global_id: str, expected_type: str, field: str = "id") -> UUID:
    """The UUID inside a global id of `expected_type`; INVALID_INPUT otherwise."""
    type_name, raw = decode(global_id, field)
    if type_name != expected_type:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"expected a {expected_type} id, got a {type_name} id", field
        )
    try:
        return UUID(raw)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "not a valid id", field) from None
