"""Evidence on the local file system: the default, under the data directory of `signoff dev`.

A write goes to a temporary file in `<root>/.partial/`, is flushed to disk, and is renamed into
place only when complete (a rename within one file system is atomic); on any failure the
temporary file is removed. A crash in between leaves only a temporary file, which
`sweep_incomplete` removes later.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from signoff.storage import ObjectChanged, ObjectMissing, StoredObject, check_key

CHUNK = 256 * 1024
PARTIAL = ".partial"


def _etag(stat: os.stat_result) -> str:
    return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"


class _LocalReader:
    def __init__(self, key: str, file: Any, stat: os.stat_result) -> None:
        self._file = file
        self._meta = StoredObject(key, stat.st_size, _etag(stat))

    @property
    def meta(self) -> StoredObject:
        return self._meta

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._file.read(CHUNK):
                yield chunk
        finally:
            await self._file.aclose()


class LocalStorage:
    """Objects as files under `root`."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> StoredObject:
        target = self._path(key)
        partial_dir = self.root / PARTIAL
        await anyio.Path(partial_dir).mkdir(parents=True, exist_ok=True)
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        temp = partial_dir / f"{uuid.uuid4().hex}.part"
        try:
            async with await anyio.open_file(temp, "wb") as out:
                async for chunk in chunks:
                    await out.write(chunk)
                await out.flush()
                await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
            await anyio.to_thread.run_sync(os.replace, temp, target)
        except BaseException:
            # Cancelled or failed: nothing half-written stays behind.
            temp.unlink(missing_ok=True)
            raise
        stat = await anyio.Path(target).stat()
        return StoredObject(key, stat.st_size, _etag(stat))

    async def open(self, key: str, *, etag: str | None = None) -> _LocalReader:
        path = self._path(key)
        try:
            file = await anyio.open_file(path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        # The open file is the object from here on, whatever happens to the path.
        stat = await anyio.to_thread.run_sync(os.fstat, file.wrapped.fileno())
        if etag is not None and _etag(stat) != etag:
            await file.aclose()
            raise ObjectChanged(key)
        return _LocalReader(key, file, stat)

    async def delete(self, key: str) -> None:
        await anyio.Path(self._path(key)).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await anyio.Path(self._path(key)).is_file()

    async def sweep_incomplete(self, older_than_seconds: float) -> int:
        partial_dir = anyio.Path(self.root / PARTIAL)
        if not await partial_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        async for path in partial_dir.iterdir():
            stat = await path.stat()
            if stat.st_mtime < cutoff:
                await path.unlink(missing_ok=True)
                removed += 1
        return removed
