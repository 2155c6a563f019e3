"""Relay cursor connections: the paging arguments every connection takes, checked in one place,
their cursors, and the page information they answer with.

A connection takes `first`/`after` (forwards) or `last`/`before` (backwards), never both
directions at once; page sizes run from 1 to a maximum (`SIGNOFF_MAX_PAGE_SIZE` unless the
list has its own). Lists read pages by keyset (`db/paging.py`), never by OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import strawberry

from signoff.db.paging import Window
from signoff.domain.errors import DomainError, ErrorCode

DEFAULT_PAGE_SIZE = 20
T = TypeVar("T")

First = Annotated[
    int | None,
    strawberry.argument(description="Page size, 1 to the list's maximum: page forwards."),
]
After = Annotated[str | None, strawberry.argument(description="`endCursor` of the previous page.")]
Last = Annotated[
    int | None,
    strawberry.argument(
        description="The last this many (1 to the list's maximum), instead of `first`: page "
        "backwards."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(description="`startCursor` of the next page: page backwards."),
]


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether items follow this page (paging backwards: whether it was "
        "requested before a cursor)."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether items precede this page (paging forwards: whether it was "
        "requested after a cursor)."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first edge; pass as `before` for the page before it."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last edge; pass as `after` for the page after it."
    )


@dataclass(frozen=True)
class PageArgs:
    """A checked page request: `size` rows after `after`, or (`backwards`) the last `size`
    rows before `before`."""

    size: int
    backwards: bool = False
    after: str | None = None
    before: str | None = None

    @property
    def cursor(self) -> str | None:
        """The cursor the page starts from, if any."""
        return self.before if self.backwards else self.after

    @property
    def cursor_field(self) -> str:
        """The argument that carries the cursor, for errors."""
        return "before" if self.backwards else "after"

    def window(self, key: tuple[Any, ...] | None) -> Window:
        """What to read: one row more than the page, from `key` (the decoded cursor)."""
        if self.backwards:
            return Window(self.size + 1, before=key, from_end=True)
        return Window(self.size + 1, after=key)

    def trim(self, rows: Sequence[T]) -> tuple[list[T], bool]:
        """The page out of the rows read (in the list's order), and whether more rows lie
        beyond it in the direction of paging."""
        more = len(rows) > self.size
        page = rows[len(rows) - self.size :] if self.backwards and more else rows[: self.size]
        return list(page), more

    def info(self, cursors: Sequence[str], more: bool) -> PageInfo:
        """The page information of a page with these edge cursors."""
        return PageInfo(
            has_next_page=self.before is not None if self.backwards else more,
            has_previous_page=more if self.backwards else self.after is not None,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


def page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    max_size: int,
    default: int = DEFAULT_PAGE_SIZE,
) -> PageArgs:
    """Check paging arguments: one direction, a size from 1 to `max_size` (INVALID_INPUT)."""
    backwards = last is not None or before is not None
    if backwards and (first is not None or after is not None):
        raise DomainError(
            ErrorCode.INVALID_INPUT, "page with first/after or with last/before, not both", "last"
        )
    given = last if backwards else first
    size = given if given is not None else min(default, max_size)
    if not 1 <= size <= max_size:
        name = "last" if backwards else "first"
        raise DomainError(ErrorCode.INVALID_INPUT, f"{name} must be between 1 and {max_size}", name)
    return PageArgs(size, backwards, after, before)


def encode_keyset(kind: str, values: Sequence[Any]) -> str:
    """An opaque cursor holding a row's key in a list of `kind`."""
    text = json.dumps([kind, *(key_text(v) for v in values)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_keyset(
    cursor: str, kind: str, parts: Sequence[Callable[[Any], Any]], field: str
) -> tuple[Any, ...]:
    """The key a cursor of `kind` holds, each value read by its part of `parts`
    (INVALID_INPUT for anything else: another list's cursor, a forged or damaged one)."""
    bad = DomainError(ErrorCode.INVALID_INPUT, f"not a cursor of this list ({kind})", field)
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        decoded = json.loads(text)
        if not isinstance(decoded, list) or len(decoded) != len(parts) + 1 or decoded[0] != kind:
            raise bad
        return tuple(part(value) for part, value in zip(parts, decoded[1:], strict=True))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError):
        raise bad from None


def bigint(value: Any) -> int:
    """A key part that is a stored bigint (a sequence number, a serial id)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError("not a bigint")
    return value


def timestamp(value: Any) -> datetime:
    """A key part that is a time with its offset (ISO 8601)."""
    if not isinstance(value, str):
        raise ValueError("not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a time without offset")
    return moment


def uuid_part(value: Any) -> UUID:
    """A key part that is a UUID."""
    if not isinstance(value, str):
        raise ValueError("not a UUID")
    return UUID(value)


def key_text(value: Any) -> Any:
    """A key value as it is kept in a cursor (times and UUIDs as text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


N = TypeVar("N")
R = TypeVar("R")


@strawberry.type(description="One element of a page, with its cursor.")
class Edge(Generic[N]):
    cursor: str = strawberry.field(
        description="Opaque position of the element: pass as `after` (or `before`)."
    )
    node: N = strawberry.field(description="The element.")


@strawberry.type(
    description="A page of a list with Relay cursors: `first`/`after` page forwards, "
    "`last`/`before` backwards."
)
class Connection(Generic[N]):
    edges: list[Edge[N]] = strawberry.field(description="The elements of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")

    @strawberry.field(description="The elements of this page without their cursors.")
    def nodes(self) -> list[N]:
        return [edge.node for edge in self.edges]


@dataclass(frozen=True)
class KeysetOrder(Generic[R]):
    """How rows of one list are found by cursor: the cursors' kind, how each part of a key is
    read back from one, and a row's key."""

    kind: str
    parts: tuple[Callable[[Any], Any], ...]
    key_of: Callable[[R], Sequence[Any]]

    def window(self, page: PageArgs) -> Window:
        """What the page reads (INVALID_INPUT for a cursor of another list)."""
        key = (
            decode_keyset(page.cursor, self.kind, self.parts, page.cursor_field)
            if page.cursor
            else None
        )
        return page.window(key)

    def cursor(self, row: R) -> str:
        """The cursor of `row`."""
        return encode_keyset(self.kind, self.key_of(row))


def connection(
    page: PageArgs, order: KeysetOrder[R], rows: Sequence[R], node_of: Callable[[R], N]
) -> Connection[N]:
    """The connection of the rows read for `page` (one more than it shows, if there are)."""
    shown, more = page.trim(rows)
    edges = [Edge(cursor=order.cursor(row), node=node_of(row)) for row in shown]
    return Connection(edges=edges, page_info=page.info([e.cursor for e in edges], more))
