"""Evidence rules without I/O: what a file's metadata may be, and the upload URL's token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.domain.errors import DomainError, ErrorCode, invalid

MAX_NAME = 255
MAX_DESCRIPTION = 2000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DESCRIPTION_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class EvidenceSource(StrEnum):
    """How an evidence file came to be."""

    UPLOAD = "upload"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class EvidenceRecord:
    """An evidence file's metadata; its content lives in the object store under `storage_key`
    (None once retention purged it)."""

    id: UUID
    seq: int
    tenant_id: str
    item_id: UUID
    step_id: UUID | None
    source: str
    name: str
    content_type: str
    size: int
    sha256: str
    description: str | None
    uploaded_by: str
    created_at: datetime
    storage_key: str | None
    purged_at: datetime | None
    redaction_due_at: datetime | None = None
    """Set while retention rewrites the content (a review's snapshot of an item whose content
    was removed): the file is not served until it is done."""


def encode_snapshot(snapshot: Any) -> bytes:
    """The bytes of a generated snapshot (a payload, an item's history): indented JSON with
    sorted keys, anything JSON lacks as its string."""
    return json.dumps(snapshot, sort_keys=True, ensure_ascii=False, default=str, indent=1).encode()


@dataclass(frozen=True)
class FileFacts:
    """What an uploader declares about a file before sending it (checked by `check_file`)."""

    name: str
    content_type: str
    size: int
    sha256: str | None
    description: str | None


def base_media_type(content_type: str) -> str:
    """`text/plain` of `Text/Plain; charset=utf-8`."""
    return content_type.split(";", 1)[0].strip().lower()


def check_file(
    name: str,
    content_type: str,
    size: int,
    sha256: str | None,
    description: str | None,
    *,
    max_bytes: int,
    allowed_types: Iterable[str],
) -> FileFacts:
    """Normalised file facts, or a typed refusal: INVALID_INPUT (name, size, sha256,
    description), LIMIT_EXCEEDED (too large), CONTENT_TYPE_NOT_ALLOWED."""
    clean_name = name.strip()
    if not clean_name or len(clean_name) > MAX_NAME:
        raise invalid(f"a file name is 1 to {MAX_NAME} characters", "fileName")
    if _CONTROL.search(clean_name) or "/" in clean_name or "\\" in clean_name:
        raise invalid("a file name may not contain slashes or control characters", "fileName")
    if clean_name in (".", ".."):
        raise invalid("not a file name", "fileName")
    media = content_type.strip().lower()
    if len(media) > 200 or not _MEDIA_TYPE.match(base_media_type(media)):
        raise invalid("not a media type (type/subtype)", "contentType")
    if base_media_type(media) not in {t.lower() for t in allowed_types}:
        raise DomainError(
            ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
            f"files of type {base_media_type(media)} are not accepted",
            "contentType",
        )
    if size < 1:
        raise invalid("a file has at least one byte", "size")
    if size > max_bytes:
        raise DomainError(ErrorCode.LIMIT_EXCEEDED, f"a file is at most {max_bytes} bytes", "size")
    digest = sha256.strip().lower() if sha256 else None
    if digest is not None and not _SHA256.match(digest):
        raise invalid("sha256 is 64 hexadecimal digits", "sha256")
    text = (description or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise invalid(f"a description is at most {MAX_DESCRIPTION} characters", "description")
    if _DESCRIPTION_CONTROL.search(text):
        raise invalid("a description may not contain control characters", "description")
    return FileFacts(clean_name, media, size, digest, text or None)


def upload_token(upload_id: UUID, key: bytes) -> str:
    """The unguessable part of an upload URL: the upload's id and its HMAC."""
    mac = hmac.new(key, b"upload:" + upload_id.bytes, hashlib.sha256).digest()
    return f"{upload_id.hex}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def upload_id_of(token: str, key: bytes) -> UUID | None:
    """The upload an upload token names, or None when it was not made with `key`."""
    raw_id, _, _ = token.partition(".")
    try:
        upload_id = UUID(hex=raw_id)
    except ValueError:
        return None
    if not hmac.compare_digest(upload_token(upload_id, key), token):
        return None
    return upload_id


def digest_of(text: str | None) -> str | None:
    """sha256 (hex) of a text, for content kept apart from the audit trail."""
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None
