"""The evidence store a deployment's settings name."""

from __future__ import annotations

from functools import lru_cache

from signoff.settings import Settings
from signoff.storage import ObjectStorage
from signoff.storage.local import LocalStorage
from signoff.storage.s3 import S3Storage


@lru_cache(maxsize=8)
def storage_for(settings: Settings) -> ObjectStorage:
    """The store of `settings` (`local` under the data directory by default, or `s3`)."""
    if settings.evidence_storage == "s3":
        return S3Storage(
            settings.evidence_s3_bucket,
            endpoint=settings.evidence_s3_endpoint or None,
            region=settings.evidence_s3_region or None,
            access_key_id=settings.evidence_s3_access_key_id or None,
            secret_access_key=settings.evidence_s3_secret_access_key or None,
            prefix=settings.evidence_s3_prefix or None,
        )
    return LocalStorage(settings.evidence_dir)
