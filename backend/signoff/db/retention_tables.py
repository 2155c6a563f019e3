"""piccolo table classes of retention and redaction (DDL: migration 2026-11-30T09:00)."""

from __future__ import annotations

from piccolo.columns import UUID, Array, ForeignKey, Integer, Text, Timestamptz
from piccolo.columns.column_types import OnDelete
from piccolo.table import Table

from signoff.db.engine import ENGINE
from signoff.db.tables import Tenant, WorkflowItem


class RetentionPolicyRow(Table, tablename="retention_policy", db=ENGINE):
    """After `days` days, redact or purge the content of decided items (of one template, or
    of every template when `template_key` is empty)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    template_key = Text(default="")
    days = Integer()
    action = Text()
    updated_by = Text()
    updated_at = Timestamptz()


class LegalHold(Table, tablename="legal_hold", db=ENGINE):
    """An item retention must not touch, with why and by whom."""

    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False, primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    reason = Text()
    placed_by = Text()
    placed_at = Timestamptz()


class ItemRetention(Table, tablename="item_retention", db=ENGINE):
    """What retention did to an item's content, once."""

    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False, primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    action = Text()
    policy_key = Text()
    days = Integer()
    payload_sha256 = Text()
    applied_at = Timestamptz()


class RedactionRuleRow(Table, tablename="redaction_rule", db=ENGINE):
    """A payload field only the listed roles may see."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    template_key = Text(default="")
    path = Text()
    visible_to = Array(Text())
    updated_by = Text()
    updated_at = Timestamptz()


RETENTION_TABLES: tuple[type[Table], ...] = (
    RetentionPolicyRow,
    LegalHold,
    ItemRetention,
    RedactionRuleRow,
)
