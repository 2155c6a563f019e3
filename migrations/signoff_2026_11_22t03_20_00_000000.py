"""Notifications: user profiles (addresses, preferences), the planning cursor, the delivery log."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-22T03:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification pipeline"

FORWARDS = """
CREATE TABLE user_profile (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    user_id       text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    groups        text[] NOT NULL DEFAULT '{}',
    roles         text[] NOT NULL DEFAULT '{}',
    -- channel name -> address on that channel (e-mail, Slack user id, webhook URL)
    addresses     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- channels per event kind, quiet hours, digest kinds (docs/operations/notifications.md)
    preferences   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX user_profile_groups ON user_profile USING gin (groups);
CREATE INDEX user_profile_roles ON user_profile USING gin (roles);

-- How far each tenant's audit trail has been turned into deliveries.
CREATE TABLE notification_cursor (
    tenant_id   text PRIMARY KEY REFERENCES tenant(id) ON DELETE RESTRICT,
    last_seq    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Existing tenants start at their current head: history is not notified again.
INSERT INTO notification_cursor (tenant_id, last_seq) SELECT id, audit_seq FROM tenant;

CREATE TABLE notification_delivery (
    id                   bigserial PRIMARY KEY,
    tenant_id            text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    event_seq            bigint NOT NULL,
    event_kind           text NOT NULL,
    channel              text NOT NULL,
    recipient_id         text NOT NULL,
    address              text NOT NULL,
    idempotency_key      text NOT NULL UNIQUE,
    status               text NOT NULL CHECK (status IN
        ('queued', 'delivered', 'retrying', 'dead', 'suppressed', 'digested')),
    priority             text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL,
    next_attempt_at      timestamptz,
    last_error           text,
    -- the event as the plugins will see it (title, summary, item, step, link, ...)
    payload              jsonb NOT NULL DEFAULT '{}'::jsonb,
    thread_key           text,
    provider_message_id  text,
    digest_id            bigint REFERENCES notification_delivery(id) ON DELETE RESTRICT,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_delivery_due ON notification_delivery (next_attempt_at)
    WHERE status IN ('queued', 'retrying');
CREATE INDEX notification_delivery_dead ON notification_delivery (tenant_id, updated_at DESC)
    WHERE status = 'dead';
CREATE INDEX notification_delivery_held ON notification_delivery (tenant_id, channel, recipient_id)
    WHERE status = 'digested' AND digest_id IS NULL;
CREATE INDEX notification_delivery_recent
    ON notification_delivery (tenant_id, channel, recipient_id, created_at);
CREATE INDEX notification_delivery_thread
    ON notification_delivery (tenant_id, channel, recipient_id, thread_key)
    WHERE provider_message_id IS NOT NULL;

CREATE TABLE notification_attempt (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES notification_delivery(id) ON DELETE RESTRICT,
    attempt_no   integer NOT NULL,
    status       text NOT NULL,
    response     text,
    error        text,
    duration_ms  double precision,
    started_at   timestamptz NOT NULL,
    UNIQUE (delivery_id, attempt_no)
);
"""

BACKWARDS = """
DROP TABLE IF EXISTS notification_attempt, notification_delivery, notification_cursor,
    user_profile;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="signoff", description=DESCRIPTION)

    async def run() -> None:
        await run_sql_script(FORWARDS)

    async def run_backwards() -> None:
        await run_sql_script(BACKWARDS)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
