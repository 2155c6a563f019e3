"""Evidence in an S3-compatible object store, through obstore.

obstore (Rust's `object_store` behind a small Python API) streams a put from an async iterator
as a multipart upload with bounded memory (`chunk_size` times `max_concurrency`) and aborts the
upload when the iterator raises, so no object appears; reads stream with `If-Match` on the
version seen before. A process that dies mid-upload leaves an incomplete multipart upload,
invisible but billed: give the bucket a lifecycle rule that aborts incomplete multipart
uploads after a day (see docs/collaboration.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import obstore
from obstore.exceptions import PreconditionError
from obstore.store import S3Store

from signoff.storage import ObjectChanged, ObjectMissing, StoredObject, check_key

PART_SIZE = 5 * 1024 * 1024
READ_CHUNK = 256 * 1024


class _S3Reader:
    def __init__(self, key: str, result: Any) -> None:
        self._result = result
        meta = result.meta
        self._meta = StoredObject(key, int(meta["size"]), str(meta["e_tag"] or ""))

    @property
    def meta(self) -> StoredObject:
        return self._meta

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._result.stream(min_chunk_size=READ_CHUNK):
            yield bytes(chunk)


class S3Storage:
    """Objects in one bucket (under an optional prefix) of an S3-compatible store."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str | None = None,
        max_concurrency: int = 2,
    ) -> None:
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
            config["virtual_hosted_style_request"] = False
        if region:
            config["region"] = region
        if access_key_id:
            config["access_key_id"] = access_key_id
        if secret_access_key:
            config["secret_access_key"] = secret_access_key
        client: dict[str, Any] = {"allow_http": bool(endpoint and endpoint.startswith("http:"))}
        self.store = S3Store(bucket, prefix=prefix or None, config=config, client_options=client)  # type: ignore[arg-type]
        self.max_concurrency = max_concurrency

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> StoredObject:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        result = await obstore.put_async(
            self.store,
            check_key(key),
            counted(),
            chunk_size=PART_SIZE,
            max_concurrency=self.max_concurrency,
        )
        return StoredObject(key, size, str(result["e_tag"] or ""))

    async def open(self, key: str, *, etag: str | None = None) -> _S3Reader:
        options: Any = {"if_match": etag} if etag else None
        try:
            result = await obstore.get_async(self.store, check_key(key), options=options)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except PreconditionError:
            raise ObjectChanged(key) from None
        return _S3Reader(key, result)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self.store, check_key(key))

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, check_key(key))
        except FileNotFoundError:
            return False
        return True

    async def sweep_incomplete(self, older_than_seconds: float) -> int:
        # Incomplete multipart uploads are the bucket lifecycle rule's to abort.
        return 0
