"""Evidence files and upload slots; rows become records here and nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.domain.evidence import EvidenceRecord


@dataclass(frozen=True)
class UploadSlot:
    """An upload slot as stored."""

    id: UUID
    tenant_id: str
    item_id: UUID
    step_id: UUID | None
    uploader_id: str
    uploader_roles: tuple[str, ...]
    uploader_groups: tuple[str, ...]
    name: str
    content_type: str
    size: int
    sha256: str | None
    description: str | None
    status: str
    storage_key: str
    expires_at: datetime


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """A transaction for upload bookkeeping (claiming, releasing, expiring slots): no audit."""
    async with ENGINE.transaction():
        yield


def _slot(row: asyncpg.Record) -> UploadSlot:
    return UploadSlot(
        id=row["id"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        step_id=row["step_id"],
        uploader_id=row["uploader_id"],
        uploader_roles=tuple(row["uploader_roles"]),
        uploader_groups=tuple(row["uploader_groups"]),
        name=row["name"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        description=row["description"],
        status=row["status"],
        storage_key=row["storage_key"],
        expires_at=row["expires_at"],
    )


def _record(row: asyncpg.Record) -> EvidenceRecord:
    return EvidenceRecord(
        id=row["id"],
        seq=row["seq"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        step_id=row["step_id"],
        source=row["source"],
        name=row["name"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        description=row["description"],
        uploaded_by=row["uploaded_by"],
        created_at=row["created_at"],
        storage_key=row["storage_key"],
        purged_at=row["purged_at"],
        redaction_due_at=row.get("redaction_due_at"),
    )


async def insert_slot(values: dict[str, Any]) -> UploadSlot:
    """Store a new upload slot."""
    row = await sql.fetchrow(
        """INSERT INTO evidence_upload (id, tenant_id, item_id, step_id, uploader_id,
            uploader_roles, uploader_groups, name, content_type, size, sha256, description,
            status, storage_key, expires_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $15, $15)
        RETURNING *""",
        values["id"],
        values["tenant_id"],
        values["item_id"],
        values["step_id"],
        values["uploader_id"],
        list(values["uploader_roles"]),
        list(values["uploader_groups"]),
        values["name"],
        values["content_type"],
        values["size"],
        values["sha256"],
        values["description"],
        values["storage_key"],
        values["expires_at"],
        values["now"],
    )
    assert row is not None
    return _slot(row)


async def get_slot(upload_id: UUID, *, lock: bool = False) -> UploadSlot | None:
    """One upload slot (by its id alone: its token is the capability, checked before)."""
    suffix = " FOR UPDATE" if lock else ""
    row = await sql.fetchrow("SELECT * FROM evidence_upload WHERE id = $1" + suffix, upload_id)
    return _slot(row) if row else None


async def set_slot_status(upload_id: UUID, status: str, now: datetime) -> None:
    """Move an upload slot to `status`."""
    await sql.execute(
        "UPDATE evidence_upload SET status = $2, updated_at = $3 WHERE id = $1",
        upload_id,
        status,
        now,
    )


async def release_slot(upload_id: UUID, now: datetime) -> None:
    """Put a slot whose upload failed back to `pending` (a retry may use the URL again)."""
    await sql.execute(
        """UPDATE evidence_upload SET status = 'pending', updated_at = $2
        WHERE id = $1 AND status = 'receiving'""",
        upload_id,
        now,
    )


async def expired_slots(now: datetime, limit: int) -> list[UploadSlot]:
    """Unfinished slots past their expiry, locked (skipping those another sweeper holds)."""
    rows = await sql.fetch(
        """SELECT * FROM evidence_upload
        WHERE status IN ('pending', 'receiving') AND expires_at < $1
        ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [_slot(r) for r in rows]


async def insert_evidence(values: dict[str, Any]) -> EvidenceRecord:
    """Store an evidence file's metadata."""
    row = await sql.fetchrow(
        """INSERT INTO evidence (id, tenant_id, item_id, step_id, source, name, content_type,
            size, sha256, description, description_sha256, uploaded_by, created_at, storage_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        RETURNING *""",
        values["id"],
        values["tenant_id"],
        values["item_id"],
        values["step_id"],
        values["source"],
        values["name"],
        values["content_type"],
        values["size"],
        values["sha256"],
        values["description"],
        values["description_sha256"],
        values["uploaded_by"],
        values["now"],
        values["storage_key"],
    )
    assert row is not None
    return _record(row)


async def get_evidence(tenant_id: str, evidence_id: UUID) -> EvidenceRecord | None:
    """One evidence file of `tenant_id`."""
    row = await sql.fetchrow(
        "SELECT * FROM evidence WHERE tenant_id = $1 AND id = $2", tenant_id, evidence_id
    )
    return _record(row) if row else None


async def evidence_of_item(
    tenant_id: str, item_id: UUID, step_id: UUID | None
) -> list[EvidenceRecord]:
    """An item's evidence (only a step's, when given), oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM evidence WHERE tenant_id = $1 AND item_id = $2
            AND ($3::uuid IS NULL OR step_id = $3)
        ORDER BY seq""",
        tenant_id,
        item_id,
        step_id,
    )
    return [_record(r) for r in rows]


async def count_of_item(tenant_id: str, item_id: UUID) -> int:
    """How many evidence files an item has."""
    row = await sql.fetchrow(
        "SELECT count(*) AS n FROM evidence WHERE tenant_id = $1 AND item_id = $2",
        tenant_id,
        item_id,
    )
    return int(row["n"]) if row else 0
