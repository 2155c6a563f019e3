"""Queries of redaction rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from signoff.db import sql
from signoff.domain.redaction import RedactionRule


def _rule(row: Any) -> RedactionRule:
    return RedactionRule(
        row["template_key"], tuple(row["path"].split(".")), frozenset(row["visible_to"])
    )


async def rules_of(tenant_id: str) -> list[RedactionRule]:
    """The tenant's redaction rules, by template key and path."""
    rows = await sql.fetch(
        """SELECT template_key, path, visible_to FROM redaction_rule WHERE tenant_id = $1
        ORDER BY template_key, path""",
        tenant_id,
    )
    return [_rule(r) for r in rows]


async def put_rule(
    tenant_id: str, rule: RedactionRule, updated_by: str, now: datetime
) -> RedactionRule | None:
    """Create or replace the rule of (`rule.template_key`, `rule.path`); the one replaced."""
    before = await sql.fetchrow(
        """SELECT template_key, path, visible_to FROM redaction_rule
        WHERE tenant_id = $1 AND template_key = $2 AND path = $3""",
        tenant_id,
        rule.template_key,
        rule.dotted,
    )
    await sql.execute(
        """INSERT INTO redaction_rule (id, tenant_id, template_key, path, visible_to, updated_by,
            updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, template_key, path) DO UPDATE SET
            visible_to = excluded.visible_to, updated_by = excluded.updated_by,
            updated_at = excluded.updated_at""",
        uuid.uuid4(),
        tenant_id,
        rule.template_key,
        rule.dotted,
        sorted(rule.visible_to),
        updated_by,
        now,
    )
    return _rule(before) if before else None


async def delete_rule(tenant_id: str, template_key: str, path: str) -> RedactionRule | None:
    """Remove a rule; the one removed, if any."""
    row = await sql.fetchrow(
        """DELETE FROM redaction_rule WHERE tenant_id = $1 AND template_key = $2 AND path = $3
        RETURNING template_key, path, visible_to""",
        tenant_id,
        template_key,
        path,
    )
    return _rule(row) if row else None
