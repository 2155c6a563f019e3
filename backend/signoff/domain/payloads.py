"""Validation of an item's payload against its template's small field schema.

The schema is deliberately small (types, required, max_length, enum): it catches the mistakes
integrators make, without becoming a second JSON-Schema implementation to maintain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from signoff.domain.errors import DomainError, ErrorCode, Problem

FIELD_TYPES = ("string", "number", "integer", "boolean", "object", "array")
"""The types a template field may declare."""


def _has_type(value: Any, ftype: str) -> bool:
    # bool is a subclass of int in Python, but `true` is not a number to an integrator
    if ftype == "string":
        return isinstance(value, str)
    if ftype == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if ftype == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ftype == "boolean":
        return isinstance(value, bool)
    if ftype == "object":
        return isinstance(value, Mapping)
    if ftype == "array":
        return isinstance(value, list | tuple)
    return False


def payload_problems(
    fields: Mapping[str, Mapping[str, Any]], payload: Mapping[str, Any], max_bytes: int
) -> list[Problem]:
    """Every problem of `payload` against `fields`, as a list (empty when valid)."""
    problems: list[Problem] = []
    if not isinstance(payload, Mapping):
        return [Problem("payload must be a JSON object", "payload")]
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        problems.append(Problem("payload is not representable as JSON", "payload"))
    else:
        if size > max_bytes:
            problems.append(
                Problem(f"payload is {size} bytes as JSON; the limit is {max_bytes}", "payload")
            )
    for name in payload:
        if name not in fields:
            problems.append(Problem(f"unknown field {name!r}", f"payload.{name}"))
    for name, spec in fields.items():
        path = f"payload.{name}"
        if name not in payload or payload[name] is None:
            if spec.get("required"):
                problems.append(Problem("required", path))
            continue
        value = payload[name]
        ftype = spec.get("type", "string")
        if not _has_type(value, ftype):
            problems.append(Problem(f"expected {ftype}, got {type(value).__name__}", path))
            continue
        max_length = spec.get("max_length")
        if max_length is not None and ftype in ("string", "array") and len(value) > max_length:
            unit = "characters" if ftype == "string" else "items"
            problems.append(Problem(f"longer than {max_length} {unit}", path))
        enum = spec.get("enum")
        if enum is not None and value not in enum:
            problems.append(Problem(f"{value!r} is not one of {', '.join(map(str, enum))}", path))
    return problems


def validate_payload(
    fields: Mapping[str, Mapping[str, Any]], payload: Mapping[str, Any], max_bytes: int
) -> None:
    """Refuse a payload with every problem at once as `DomainError(INVALID_INPUT)`."""
    problems = payload_problems(fields, payload, max_bytes)
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "payload is invalid: " + "; ".join(f"{p.path}: {p.message}" for p in problems[:5]),
            field="payload",
            problems=problems,
        )
