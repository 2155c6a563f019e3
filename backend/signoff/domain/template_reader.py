"""Reading typed values out of an author's untrusted document, collecting problems (each
with the path of its field) instead of raising, so that every problem is reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from signoff.domain.durations import parse_duration
from signoff.domain.errors import DomainError, Problem

E = TypeVar("E", bound=StrEnum)
_MISSING = object()


class Reader:
    """Reads typed values out of untrusted mappings, recording problems instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(message, path))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {type_name(value)}")
            return None
        return value

    def unknown_keys(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.add(join_path(path, str(key)), f"unknown key {key!r}")

    def text(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> str | None:
        value = data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.add(join_path(path, key), "required")
            return None
        if not isinstance(value, str):
            self.add(join_path(path, key), f"expected a string, got {type_name(value)}")
            return None
        if required and not value.strip():
            self.add(join_path(path, key), "must not be empty")
            return None
        return value

    def flag(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(join_path(path, key), f"expected true or false, got {type_name(value)}")
            return default
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, path: str, default: int | None, minimum: int
    ) -> int | None:
        value = data.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(join_path(path, key), f"expected an integer, got {type_name(value)}")
            return default
        if value < minimum:
            self.add(join_path(path, key), f"must be at least {minimum}")
            return default
        return value

    def choice(
        self, data: Mapping[str, Any], key: str, path: str, enum: type[E], default: E | None
    ) -> E | None:
        value = data.get(key)
        if value is None:
            if default is None:
                self.add(join_path(path, key), "required")
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            self.add(join_path(path, key), f"unknown value {value!r} (allowed: {allowed})")
            return default

    def duration(self, value: Any, path: str, *, positive: bool = True) -> Any:
        try:
            td = parse_duration(value)
        except DomainError as exc:
            self.add(path, exc.message)
            return None
        if positive and not td:
            self.add(path, "must be longer than zero")
            return None
        return td

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.add(path, f"expected a list of strings, got {type_name(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(item)
            else:
                self.add(f"{path}[{i}]", "expected a non-empty string")
        return tuple(out)

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.add(path, f"expected a list, got {type_name(value)}")
            return []
        return list(value)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
