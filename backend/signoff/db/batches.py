"""Reads of many rows by id at once, for dataloaders and event fan-out (never one per row)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from signoff.db import sql
from signoff.db.records import ITEM_JSON, TEMPLATE_JSON, item_of, step_of, template_of
from signoff.domain.records import Item, Step, TemplateVersion


async def items_by_ids(tenant_id: str, item_ids: Sequence[UUID]) -> list[Item]:
    """The items of `tenant_id` among `item_ids` (others are silently absent)."""
    rows = await sql.fetch(
        "SELECT * FROM workflow_item WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        list(item_ids),
    )
    return [item_of(sql.record_dict(r, ITEM_JSON)) for r in rows]


async def steps_by_ids(tenant_id: str, step_ids: Sequence[UUID]) -> list[Step]:
    """The steps of `tenant_id` among `step_ids`."""
    rows = await sql.fetch(
        "SELECT * FROM step WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        list(step_ids),
    )
    return [step_of(r) for r in rows]


async def templates_by_ids(tenant_id: str, template_ids: Sequence[UUID]) -> list[TemplateVersion]:
    """The template versions of `tenant_id` among `template_ids`."""
    rows = await sql.fetch(
        "SELECT * FROM template WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        list(template_ids),
    )
    return [template_of(sql.record_dict(r, TEMPLATE_JSON)) for r in rows]
