"""piccolo table classes. The DDL lives in `migrations/`; a test checks that the two agree."""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Text,
    Time,
    Timestamptz,
)
from piccolo.columns.column_types import JSONB, OnDelete
from piccolo.table import Table

from signoff.db.engine import ENGINE


class Tenant(Table, tablename="tenant", db=ENGINE):
    """A tenant."""

    id = Text(primary_key=True)
    name = Text()
    created_at = Timestamptz()


class Template(Table, tablename="template", db=ENGINE):
    """One version of a review process. Published versions never change."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    key = Text()
    version = Integer()
    name = Text()
    kind = Text()
    status = Text()
    definition = JSONB()
    created_by = Text()
    created_at = Timestamptz()
    published_at = Timestamptz(null=True, default=None)


class WorkflowItem(Table, tablename="workflow_item", db=ENGINE):
    """One thing to be signed off: an approval request, exception, escalation, review or plan."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    environment = Text(default="production")
    template_id = ForeignKey(Template, on_delete=OnDelete.restrict, null=False)
    kind = Text()
    title = Text()
    state = Text()
    priority = Integer(default=0)
    risk = Text(default="low")
    requester_id = Text()
    payload = JSONB()
    plan = JSONB(null=True, default=None)
    external_ref = Text(null=True, default=None)
    revision = Integer(default=1)
    version = Integer(default=1)
    due_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Step(Table, tablename="step", db=ENGINE):
    """One step of an item, with its own state machine."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    key = Text()
    name = Text()
    kind = Text()
    position = Integer()
    state = Text()
    assignees = JSONB()
    quorum = JSONB()
    risk = Text(default="low")
    sensitive = Boolean(default=False)
    action = Text(null=True, default=None)
    params = JSONB()
    original_params = JSONB(null=True, default=None)
    claimed_by = Text(null=True, default=None)
    decision_value = Text(null=True, default=None)
    result = JSONB(null=True, default=None)
    error = Text(null=True, default=None)
    attempts = Integer(default=0)
    escalation_level = Integer(default=0)
    escalation_plan = JSONB(null=True, default=None)
    activated_at = Timestamptz(null=True, default=None)
    due_at = Timestamptz(null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    version = Integer(default=1)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    seats = JSONB(default=[])
    needed = Integer(default=1)
    declared_risk = Text(null=True, default=None)
    waived = Array(Text())
    hold = JSONB(null=True, default=None)


class Decision(Table, tablename="decision", db=ENGINE):
    """One person's vote or decision on a step, in one revision of the item."""

    id = UUID(primary_key=True)
    seq = BigSerial()
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    step_id = ForeignKey(Step, on_delete=OnDelete.restrict, null=False)
    revision = Integer()
    actor_id = Text()
    acting_for = Text(null=True, default=None)
    outcome = Text()
    reason = Text(null=True, default=None)
    rule = Text(null=True, default=None)
    created_at = Timestamptz()
    seat = Integer(null=True, default=None)
    # when the step was last activated before this decision (a reviewer's response time)
    step_activated_at = Timestamptz(null=True, default=None)


class IdempotencyKey(Table, tablename="idempotency_key", db=ENGINE):
    """The first result of a mutation sent with an idempotency key."""

    id = BigSerial(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    actor_id = Text()
    key = Text()
    operation = Text()
    request_hash = Text()
    result = JSONB(null=True, default=None)
    created_at = Timestamptz()


class AuditEvent(Table, tablename="audit_event", db=ENGINE):
    """An append-only, hash-chained record of one change."""

    id = BigSerial(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    seq = BigInt()
    item_id = UUID(null=True, default=None)
    step_id = UUID(null=True, default=None)
    action = Text()
    actor_id = Text()
    acting_for = Text(null=True, default=None)
    reason = Text(null=True, default=None)
    request_id = Text(null=True, default=None)
    client_addr = Text(null=True, default=None)
    user_agent = Text(null=True, default=None)
    data = JSONB()
    occurred_at = Timestamptz()
    prev_hash = Text()
    hash = Text()
    content_digest = Text(null=True, default=None)
    redacted_at = Timestamptz(null=True, default=None)
    environment = Text(null=True, default=None)


ALL_TABLES: tuple[type[Table], ...] = (
    Tenant,
    Template,
    WorkflowItem,
    Step,
    Decision,
    IdempotencyKey,
    AuditEvent,
)


class Timer(Table, tablename="timer", db=ENGINE):
    """A stored timer of a step: the truth the job queue only accelerates."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    step_id = ForeignKey(Step, on_delete=OnDelete.restrict, null=False)
    kind = Text()
    level = Integer(null=True, default=None)
    due_at = Timestamptz()
    token = Text()
    status = Text()
    payload = JSONB()
    fired_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class BusinessCalendarRow(Table, tablename="business_calendar", db=ENGINE):
    """A tenant's working hours for SLA arithmetic."""

    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False, primary_key=True)
    timezone = Text()
    workdays = Array(Integer())
    day_start = Time()
    day_end = Time()
    holidays = Array(Date())
    updated_at = Timestamptz()


ALL_TABLES = (*ALL_TABLES, Timer, BusinessCalendarRow)
