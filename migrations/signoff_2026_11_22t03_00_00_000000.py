"""Initial schema: tenants, templates, items, steps, decisions, idempotency keys, audit events."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-22T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "initial schema"

FORWARDS = """
CREATE TABLE tenant (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- head of the tenant's audit chain: the last sequence number and hash handed out
    audit_seq   bigint NOT NULL DEFAULT 0,
    audit_hash  text NOT NULL DEFAULT ''
);

CREATE TABLE template (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    key           text NOT NULL,
    version       integer NOT NULL CHECK (version > 0),
    name          text NOT NULL,
    kind          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
    definition    jsonb NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (tenant_id, key, version)
);

CREATE TABLE workflow_item (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    environment   text NOT NULL DEFAULT 'production',
    template_id   uuid NOT NULL REFERENCES template(id) ON DELETE RESTRICT,
    kind          text NOT NULL,
    title         text NOT NULL,
    state         text NOT NULL,
    priority      integer NOT NULL DEFAULT 0,
    risk          text NOT NULL DEFAULT 'low',
    requester_id  text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    plan          jsonb,
    external_ref  text,
    revision      integer NOT NULL DEFAULT 1,
    version       integer NOT NULL DEFAULT 1,
    due_at        timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_item_tenant_state ON workflow_item (tenant_id, state, created_at DESC);
CREATE INDEX workflow_item_requester ON workflow_item (tenant_id, requester_id, state);

CREATE TABLE step (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id           uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    key               text NOT NULL,
    name              text NOT NULL,
    kind              text NOT NULL,
    position          integer NOT NULL,
    state             text NOT NULL,
    assignees         jsonb NOT NULL DEFAULT '{}'::jsonb,
    quorum            jsonb NOT NULL DEFAULT '{}'::jsonb,
    risk              text NOT NULL DEFAULT 'low',
    sensitive         boolean NOT NULL DEFAULT false,
    action            text,
    params            jsonb NOT NULL DEFAULT '{}'::jsonb,
    original_params   jsonb,
    claimed_by        text,
    decision_value    text,
    result            jsonb,
    error             text,
    attempts          integer NOT NULL DEFAULT 0,
    escalation_level  integer NOT NULL DEFAULT 0,
    escalation_plan   jsonb,
    activated_at      timestamptz,
    due_at            timestamptz,
    decided_at        timestamptz,
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (item_id, key)
);
CREATE INDEX step_tenant_state_due ON step (tenant_id, state, due_at);

CREATE TABLE decision (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- insertion order: decisions made within one instant still list in the order they happened
    seq          bigserial NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id      uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    step_id      uuid NOT NULL REFERENCES step(id) ON DELETE RESTRICT,
    revision     integer NOT NULL,
    actor_id     text NOT NULL,
    acting_for   text,
    outcome      text NOT NULL,
    reason       text,
    rule         text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decision_step ON decision (step_id, revision, seq);
-- one person fills at most one seat of a step's quorum in one revision
CREATE UNIQUE INDEX decision_one_vote_per_person
    ON decision (step_id, revision, actor_id)
    WHERE outcome IN ('approve', 'reject');

CREATE TABLE idempotency_key (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    actor_id      text NOT NULL,
    key           text NOT NULL,
    operation     text NOT NULL,
    request_hash  text NOT NULL,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, actor_id, key)
);

CREATE TABLE audit_event (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    seq           bigint NOT NULL,
    item_id       uuid,
    step_id       uuid,
    action        text NOT NULL,
    actor_id      text NOT NULL,
    acting_for    text,
    reason        text,
    request_id    text,
    client_addr   text,
    user_agent    text,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    prev_hash     text NOT NULL,
    hash          text NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_event_item ON audit_event (item_id, seq);

-- The audit trail is append-only: no UPDATE, no DELETE, no TRUNCATE.
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

BACKWARDS = """
DROP TABLE IF EXISTS audit_event, idempotency_key, decision, step, workflow_item, template, tenant;
DROP FUNCTION IF EXISTS audit_event_append_only();
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
