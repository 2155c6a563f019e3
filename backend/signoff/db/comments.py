"""Comments and their revisions; rows become `CommentRecord`s here and nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from signoff.db import sql
from signoff.domain.comments import CommentRecord, CommentRevisionRecord

# The comment with the content of its current revision.
_SELECT = """SELECT c.*, r.body, r.body_sha256, r.mentions
    FROM comment c
    JOIN comment_revision r ON r.comment_id = c.id AND r.revision = c.revision"""


def _record(row: asyncpg.Record) -> CommentRecord:
    return CommentRecord(
        id=row["id"],
        seq=row["seq"],
        tenant_id=row["tenant_id"],
        item_id=row["item_id"],
        step_id=row["step_id"],
        thread_id=row["thread_id"],
        reply_to_id=row["reply_to_id"],
        author_id=row["author_id"],
        revision=row["revision"],
        version=row["version"],
        body=row["body"],
        body_sha256=row["body_sha256"],
        mentions=tuple(row["mentions"]),
        deleted_at=row["deleted_at"],
        deleted_by=row["deleted_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _revision(row: asyncpg.Record) -> CommentRevisionRecord:
    return CommentRevisionRecord(
        comment_id=row["comment_id"],
        revision=row["revision"],
        body=row["body"],
        body_sha256=row["body_sha256"],
        mentions=tuple(row["mentions"]),
        editor_id=row["editor_id"],
        reason=row["reason"],
        created_at=row["created_at"],
        purged_at=row["purged_at"],
    )


async def insert_comment(values: dict[str, Any]) -> UUID:
    """Store a new comment with its first revision; return its id."""
    comment_id = values.get("id") or uuid4()
    await sql.execute(
        """INSERT INTO comment (id, tenant_id, item_id, step_id, thread_id, reply_to_id,
            author_id, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)""",
        comment_id,
        values["tenant_id"],
        values["item_id"],
        values["step_id"],
        values.get("thread_id") or comment_id,
        values["reply_to_id"],
        values["author_id"],
        values["now"],
    )
    await insert_revision(
        values["tenant_id"],
        comment_id,
        1,
        body=values["body"],
        digest=values["body_sha256"],
        mentions=values["mentions"],
        editor_id=values["author_id"],
        reason=None,
        now=values["now"],
    )
    return comment_id


async def insert_revision(
    tenant_id: str,
    comment_id: UUID,
    revision: int,
    *,
    body: str,
    digest: str,
    mentions: Sequence[str],
    editor_id: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Store one body of a comment."""
    await sql.execute(
        """INSERT INTO comment_revision (tenant_id, comment_id, revision, body, body_sha256,
            mentions, editor_id, reason, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        tenant_id,
        comment_id,
        revision,
        body,
        digest,
        list(mentions),
        editor_id,
        reason,
        now,
    )


async def get_comment(
    tenant_id: str, comment_id: UUID, *, lock: bool = False
) -> CommentRecord | None:
    """One comment of `tenant_id`; `lock` holds its row until commit (serialises changes)."""
    if lock:
        # Lock the comment row alone (a join would lock the revision too), then read it.
        locked = await sql.fetchrow(
            "SELECT id FROM comment WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant_id,
            comment_id,
        )
        if locked is None:
            return None
    row = await sql.fetchrow(
        f"{_SELECT} WHERE c.tenant_id = $1 AND c.id = $2", tenant_id, comment_id
    )
    return _record(row) if row else None


async def comments_of_item(
    tenant_id: str,
    item_id: UUID,
    *,
    step_id: UUID | None,
    after_seq: int | None,
    limit: int,
    before_seq: int | None = None,
    from_end: bool = False,
) -> list[CommentRecord]:
    """An item's comments (only a step's, when given) in the order they were written: the
    first `limit` after `after_seq`, or with `from_end` the last `limit` before `before_seq`."""
    rows = await sql.fetch(
        f"""{_SELECT} WHERE c.tenant_id = $1 AND c.item_id = $2
            AND ($3::uuid IS NULL OR c.step_id = $3) AND c.seq > $4
            AND ($6::bigint IS NULL OR c.seq < $6)
        ORDER BY CASE WHEN $7 THEN -c.seq ELSE c.seq END LIMIT $5""",
        tenant_id,
        item_id,
        step_id,
        after_seq or 0,
        limit,
        before_seq,
        from_end,
    )
    records = [_record(r) for r in rows]
    return records[::-1] if from_end else records


async def count_of_item(tenant_id: str, item_id: UUID) -> int:
    """How many comments an item has (deleted ones included)."""
    row = await sql.fetchrow(
        "SELECT count(*) AS n FROM comment WHERE tenant_id = $1 AND item_id = $2",
        tenant_id,
        item_id,
    )
    return int(row["n"]) if row else 0


async def update_comment(comment_id: UUID, values: dict[str, Any], now: datetime) -> None:
    """Bump a comment's version and apply `values` (revision, deleted_at, deleted_by)."""
    allowed = {"revision", "deleted_at", "deleted_by"}
    assert set(values) <= allowed, set(values) - allowed
    names = sorted(values)
    sets = "".join(f", {name} = ${i + 3}" for i, name in enumerate(names))
    await sql.execute(
        f"UPDATE comment SET version = version + 1, updated_at = $2{sets} WHERE id = $1",
        comment_id,
        now,
        *[values[n] for n in names],
    )


async def revisions_of(tenant_id: str, comment_id: UUID) -> list[CommentRevisionRecord]:
    """Every body of a comment, oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM comment_revision WHERE tenant_id = $1 AND comment_id = $2
        ORDER BY revision""",
        tenant_id,
        comment_id,
    )
    return [_revision(r) for r in rows]
