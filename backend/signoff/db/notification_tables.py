"""piccolo table classes of the notification pipeline (DDL: migration 2026-11-22T03:20)."""

from __future__ import annotations

from piccolo.columns import (
    Array,
    BigInt,
    BigSerial,
    DoublePrecision,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
)
from piccolo.columns.column_types import JSONB, OnDelete
from piccolo.table import Table

from signoff.db.engine import ENGINE
from signoff.db.tables import Tenant


class UserProfile(Table, tablename="user_profile", db=ENGINE):
    """Who a user is for notifications: groups, roles, channel addresses, preferences."""

    id = BigSerial(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    user_id = Text()
    display_name = Text(default="")
    groups = Array(Text())
    roles = Array(Text())
    addresses = JSONB()
    preferences = JSONB()
    created_at = Timestamptz()
    updated_at = Timestamptz()


class NotificationCursor(Table, tablename="notification_cursor", db=ENGINE):
    """The last audit sequence number of a tenant already turned into deliveries."""

    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False, primary_key=True)
    last_seq = BigInt(default=0)
    updated_at = Timestamptz()


class NotificationDelivery(Table, tablename="notification_delivery", db=ENGINE):
    """One notification to one recipient on one channel: the unit of retry and de-duplication."""

    id = BigSerial(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    event_seq = BigInt()
    event_kind = Text()
    channel = Text()
    recipient_id = Text()
    address = Text()
    idempotency_key = Text(unique=True)
    status = Text()
    priority = Text()
    attempts = Integer(default=0)
    max_attempts = Integer()
    next_attempt_at = Timestamptz(null=True, default=None)
    last_error = Text(null=True, default=None)
    payload = JSONB()
    thread_key = Text(null=True, default=None)
    provider_message_id = Text(null=True, default=None)
    digest_id: ForeignKey[NotificationDelivery] = ForeignKey(
        "self", on_delete=OnDelete.restrict, null=True, default=None
    )
    created_at = Timestamptz()
    updated_at = Timestamptz()


class NotificationAttempt(Table, tablename="notification_attempt", db=ENGINE):
    """One delivery attempt as it happened: status, provider response, error, duration."""

    id = BigSerial(primary_key=True)
    delivery_id = ForeignKey(NotificationDelivery, on_delete=OnDelete.restrict, null=False)
    attempt_no = Integer()
    status = Text()
    response = Text(null=True, default=None)
    error = Text(null=True, default=None)
    duration_ms = DoublePrecision(null=True, default=None)
    started_at = Timestamptz()


NOTIFICATION_TABLES: tuple[type[Table], ...] = (
    UserProfile,
    NotificationCursor,
    NotificationDelivery,
    NotificationAttempt,
)
