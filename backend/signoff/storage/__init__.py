"""Where evidence content is kept: a small object-storage interface and its backends.

`put` is atomic: an object appears whole or not at all, whatever fails (the source raising
half-way, the client disconnecting, the backend refusing). `open` streams an object in chunks,
optionally pinned to the exact version (`etag`) seen before. Keys are relative paths made by
signoff (`tenants/<tenant>/evidence/<uuid>`), never taken from a user.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class StorageError(Exception):
    """The object store could not do what was asked."""


class ObjectMissing(StorageError):
    """No object under the key."""


class ObjectChanged(StorageError):
    """The object is no longer the version that was asked for."""


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: its size and a backend tag that changes whenever it changes."""

    key: str
    size: int
    etag: str


class ObjectReader(Protocol):
    """An open object: its metadata, and its bytes as a stream of chunks (read once)."""

    @property
    def meta(self) -> StoredObject:
        """Size and version tag of the object being read."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The object's bytes, in order, in chunks of bounded size."""
        ...


class ObjectStorage(Protocol):
    """The operations signoff needs from an object store."""

    name: str

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> StoredObject:
        """Store the bytes of `chunks` under `key`, atomically (whole or nothing)."""
        ...

    async def open(self, key: str, *, etag: str | None = None) -> ObjectReader:
        """Open `key` for reading; ObjectMissing, or ObjectChanged when `etag` no longer
        matches."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (no error when it is already gone)."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    async def sweep_incomplete(self, older_than_seconds: float) -> int:
        """Remove leftovers of writes interrupted by a crash; return how many."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root (absolute, `..`, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key
