"""Incident reviews and the precedent query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from signoff.db import sql
from signoff.db.paging import KeyColumn, Window, keyset


@dataclass(frozen=True)
class IncidentReviewRecord:
    """What an incident review is about."""

    item_id: UUID
    tenant_id: str
    source_ref: str
    source_kind: str
    subject: str | None
    reviewed_item_id: UUID | None
    snapshot_evidence_id: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class PrecedentCandidate:
    """An earlier decided item that shares the template or the subject of another."""

    item_id: UUID
    created_at: datetime
    template_key: str
    same_template: bool
    same_subject: bool


def _review(row: asyncpg.Record) -> IncidentReviewRecord:
    return IncidentReviewRecord(
        item_id=row["item_id"],
        tenant_id=row["tenant_id"],
        source_ref=row["source_ref"],
        source_kind=row["source_kind"],
        subject=row["subject"],
        reviewed_item_id=row["reviewed_item_id"],
        snapshot_evidence_id=row["snapshot_evidence_id"],
        created_at=row["created_at"],
    )


async def insert_review(values: dict[str, Any]) -> IncidentReviewRecord:
    """Store what a new incident review is about."""
    row = await sql.fetchrow(
        """INSERT INTO incident_review (item_id, tenant_id, source_ref, source_kind, subject,
            reviewed_item_id, snapshot_evidence_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        values["item_id"],
        values["tenant_id"],
        values["source_ref"],
        values["source_kind"],
        values["subject"],
        values["reviewed_item_id"],
        values["snapshot_evidence_id"],
        values["now"],
    )
    assert row is not None
    return _review(row)


async def get_review(tenant_id: str, item_id: UUID) -> IncidentReviewRecord | None:
    """The incident review an item is, if it is one."""
    row = await sql.fetchrow(
        "SELECT * FROM incident_review WHERE tenant_id = $1 AND item_id = $2", tenant_id, item_id
    )
    return _review(row) if row else None


async def reviews_of(tenant_id: str, reviewed_item_id: UUID) -> list[IncidentReviewRecord]:
    """Incident reviews that reopened an item, oldest first."""
    rows = await sql.fetch(
        """SELECT * FROM incident_review WHERE tenant_id = $1 AND reviewed_item_id = $2
        ORDER BY created_at, item_id""",
        tenant_id,
        reviewed_item_id,
    )
    return [_review(r) for r in rows]


async def template_key_of(tenant_id: str, item_id: UUID) -> str | None:
    """The key of the template an item was submitted with."""
    row = await sql.fetchrow(
        """SELECT t.key FROM workflow_item i JOIN template t ON t.id = i.template_id
        WHERE i.tenant_id = $1 AND i.id = $2""",
        tenant_id,
        item_id,
    )
    return str(row["key"]) if row else None


PRECEDENT_KEY = (KeyColumn("i.created_at", "timestamptz"), KeyColumn("i.id", "uuid"))
"""The order of precedent: newest first by submission time, then item id."""


async def precedent_candidates(
    tenant_id: str,
    *,
    exclude: Sequence[UUID],
    before: datetime,
    template_key: str | None,
    subject: str | None,
    decided_states: Sequence[str],
    window: Window,
) -> list[PrecedentCandidate]:
    """A keyset window (`db/paging.py`, key `PRECEDENT_KEY`, descending) of the decided items
    created before `before` of the template `template_key` or about `subject` (their external
    reference, or the subject of an incident review), in the order they were read: the list's
    order, or reversed for a window read from its end."""
    conditions, order, params = keyset(PRECEDENT_KEY, True, window, 7)
    rows = await sql.fetch(
        f"""SELECT i.id, i.created_at, t.key AS template_key,
            (t.key = $4) AS same_template,
            ($5::text IS NOT NULL AND (i.external_ref = $5 OR r.subject = $5)) AS same_subject
        FROM workflow_item i
        JOIN template t ON t.id = i.template_id
        LEFT JOIN incident_review r ON r.item_id = i.id
        WHERE i.tenant_id = $1 AND NOT (i.id = ANY($2::uuid[])) AND i.created_at <= $3
          AND i.state = ANY($6::text[])
          AND (t.key = $4 OR ($5::text IS NOT NULL AND (i.external_ref = $5 OR r.subject = $5)))
          {conditions}{order}""",
        tenant_id,
        list(exclude),
        before,
        template_key,
        subject,
        list(decided_states),
        *params,
    )
    return [
        PrecedentCandidate(
            item_id=r["id"],
            created_at=r["created_at"],
            template_key=r["template_key"],
            same_template=bool(r["same_template"]),
            same_subject=bool(r["same_subject"]),
        )
        for r in rows
    ]
