"""Template versions: drafts, publishing, lookups. Rows become records in `db/records.py`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.db.records import TEMPLATE_JSON, template_of
from signoff.domain.records import TemplateStatus, TemplateVersion
from signoff.domain.template_model import TemplateKind


def _record(row: Any) -> TemplateVersion:
    return template_of(sql.record_dict(row, TEMPLATE_JSON))


async def latest_version(tenant_id: str, key: str) -> int:
    """The highest version number of `key` (0 when there is none)."""
    row = await sql.fetchrow(
        "SELECT coalesce(max(version), 0) AS v FROM template WHERE tenant_id = $1 AND key = $2",
        tenant_id,
        key,
    )
    return int(row["v"]) if row else 0


async def insert(
    tenant_id: str,
    *,
    key: str,
    version: int,
    name: str,
    kind: TemplateKind,
    status: TemplateStatus,
    definition: Mapping[str, Any],
    created_by: str,
    published_at: datetime | None = None,
) -> TemplateVersion:
    """Store a template version and return it."""
    row = await sql.fetchrow(
        """INSERT INTO template
            (tenant_id, key, version, name, kind, status, definition, created_by, published_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) RETURNING *""",
        tenant_id,
        key,
        version,
        name,
        kind.value,
        status.value,
        sql.dumps(dict(definition)),
        created_by,
        published_at,
    )
    assert row is not None
    return _record(row)


async def get(tenant_id: str, template_id: UUID, *, lock: bool = False) -> TemplateVersion | None:
    """One template version by id, inside `tenant_id`."""
    suffix = " FOR UPDATE" if lock else ""
    row = await sql.fetchrow(
        "SELECT * FROM template WHERE tenant_id = $1 AND id = $2" + suffix, tenant_id, template_id
    )
    return _record(row) if row else None


async def find_published(tenant_id: str, key: str, version: int | None) -> TemplateVersion | None:
    """The given published version of `key`, or its newest published version."""
    if version is None:
        row = await sql.fetchrow(
            """SELECT * FROM template WHERE tenant_id = $1 AND key = $2 AND status = 'published'
            ORDER BY version DESC LIMIT 1""",
            tenant_id,
            key,
        )
    else:
        row = await sql.fetchrow(
            """SELECT * FROM template
            WHERE tenant_id = $1 AND key = $2 AND version = $3 AND status = 'published'""",
            tenant_id,
            key,
            version,
        )
    return _record(row) if row else None


async def update_draft(
    tenant_id: str,
    template_id: UUID,
    *,
    name: str,
    kind: TemplateKind,
    definition: Mapping[str, Any],
) -> TemplateVersion:
    """Replace a draft's definition."""
    row = await sql.fetchrow(
        """UPDATE template SET name = $3, kind = $4, definition = $5::jsonb
        WHERE tenant_id = $1 AND id = $2 AND status = 'draft' RETURNING *""",
        tenant_id,
        template_id,
        name,
        kind.value,
        sql.dumps(dict(definition)),
    )
    assert row is not None
    return _record(row)


async def publish(tenant_id: str, template_id: UUID, when: datetime) -> TemplateVersion:
    """Mark a draft published; from then on it never changes."""
    row = await sql.fetchrow(
        """UPDATE template SET status = 'published', published_at = $3
        WHERE tenant_id = $1 AND id = $2 AND status = 'draft' RETURNING *""",
        tenant_id,
        template_id,
        when,
    )
    assert row is not None
    return _record(row)


async def list_for_tenant(tenant_id: str, key: str | None = None) -> list[TemplateVersion]:
    """Every template version of a tenant (optionally of one key), newest first."""
    rows = await sql.fetch(
        """SELECT * FROM template WHERE tenant_id = $1 AND ($2::text IS NULL OR key = $2)
        ORDER BY key, version DESC""",
        tenant_id,
        key,
    )
    return [_record(r) for r in rows]
