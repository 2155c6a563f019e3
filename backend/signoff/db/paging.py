"""Keyset pages of ordered lists: the SQL of one page, never an OFFSET.

A list is ordered by a key (one or more columns, all ascending or all descending, the last one
unique). A page reads the rows after a key, or, paging backwards, the rows before a key read
from the end; it reads one row more than it shows, so the caller knows whether more follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    """Which rows of an ordered list one page reads: the first `limit` after `after`, or with
    `from_end` the last `limit` before `before` (either key may be None: from the start or
    from the end)."""

    limit: int
    after: tuple[Any, ...] | None = None
    before: tuple[Any, ...] | None = None
    from_end: bool = False


@dataclass(frozen=True)
class KeyColumn:
    """One column of a list's key: its SQL expression and the type its parameters take."""

    expression: str
    cast: str


def keyset(
    key: Sequence[KeyColumn], descending: bool, window: Window, first_param: int
) -> tuple[str, str, list[Any]]:
    """The conditions (` AND ...`, empty when none) and the ` ORDER BY ... LIMIT ...` of one
    page of a list ordered by `key`, and their parameters, numbered from `$first_param`.

    The conditions compare the key as one row value, which an index on the key's columns
    reads as one range.
    """
    params: list[Any] = []

    def placeholders(values: tuple[Any, ...]) -> str:
        marks = []
        for column, value in zip(key, values, strict=True):
            params.append(value)
            marks.append(f"${first_param + len(params) - 1}::{column.cast}")
        return "(" + ", ".join(marks) + ")"

    columns = "(" + ", ".join(c.expression for c in key) + ")"
    conditions = ""
    if window.after is not None:
        conditions += f" AND {columns} {'<' if descending else '>'} {placeholders(window.after)}"
    if window.before is not None:
        conditions += f" AND {columns} {'>' if descending else '<'} {placeholders(window.before)}"
    reading_descending = descending != window.from_end
    direction = "DESC" if reading_descending else "ASC"
    order = ", ".join(f"{c.expression} {direction}" for c in key)
    params.append(window.limit)
    return conditions, f" ORDER BY {order} LIMIT ${first_param + len(params) - 1}", params


def in_list_order(rows: Sequence[T], window: Window) -> list[T]:
    """Rows read for `window` in the list's own order (a page from the end is read reversed)."""
    return list(reversed(rows)) if window.from_end else list(rows)
